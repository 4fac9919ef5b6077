"""The model zoo: registry, weight loading (local, pretrained through torch.hub), hubconf, CLI."""

from __future__ import annotations

import dataclasses
import email.message
import hashlib
import io
import json
import urllib.error
from pathlib import Path

import pytest
import torch

from pnag import zoo
from pnag.cli import main
from pnag.errors import DataError, PnagError
from pnag.nn.cost import arch_cost
from pnag.nn.mobilenetv3 import MobileNetV3

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / ".." / "shared" / "reference"


def _published_layout_state_dict(name: str, seed: int = 0) -> dict:
    """Random tensors with exactly the published keys and shapes (from the reference layouts)."""
    path = REFERENCE / "state-dict-layouts.json"
    if not path.is_file():
        pytest.skip(f"no reference layouts at {path}")
    layout = json.loads(path.read_text())["pnag_models"][name]
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(seed + 1) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
            for k, s in layout}


class _Arbitrary:
    pass


def _same_weights(model: torch.nn.Module, sd: dict) -> bool:
    return all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())


# -- registry ------------------------------------------------------------------------------------
def test_registry_lists_the_fifteen_published_models():
    names = zoo.list_models()
    assert len(names) == 15 and len(set(names)) == 15
    assert names[0] == "pnag_cpu_30" and names[-1] == "pnag_mobile_200"
    assert zoo.list_models("gpu") == ["pnag_gpu_90", "pnag_gpu_115", "pnag_gpu_140", "pnag_gpu_165", "pnag_gpu_190"]
    with pytest.raises(PnagError, match="platform: 'tpu' is not a zoo platform; allowed: cpu, gpu or mobile"):
        zoo.list_models("tpu")


def test_registry_matches_the_published_reference():
    path = REFERENCE / "pnag-model-zoo.json"
    if not path.is_file():
        pytest.skip(f"no reference zoo at {path}")
    ref = json.loads(path.read_text())
    assert [m["name"] for m in ref["models"]] == zoo.list_models()
    for m in ref["models"]:
        info = zoo.get_model_info(m["name"])
        assert (info.platform, info.device, info.budget_ms, info.arch_string, info.weights_url) == (
            m["platform"], m["device"], m["budget_ms"], m["arch"], m["weights"])
        assert (info.reported_latency_ms, info.reported_top1) == (m["reported"]["latency_ms"], m["reported"]["top1"])
        assert (info.width, info.resolution) == (ref["width"], ref["resolution"])
        assert info.arch.to_legacy() == m["arch"]
        assert len(info.hash_prefix) == 8 and info.file_name.endswith(f"-{info.hash_prefix}.pt")


def test_names_with_hyphens_and_unknown_names():
    assert zoo.get_model_info("pnag-cpu-30") is zoo.get_model_info("pnag_cpu_30")
    assert zoo.get_model_info(" PNAG-GPU-90 ").name == "pnag_gpu_90"
    with pytest.raises(PnagError) as info:
        zoo.get_model_info("pnag_cpu_31")
    msg = str(info.value)
    assert "model: 'pnag_cpu_31' is not a published model" in msg
    assert all(n in msg for n in zoo.list_models())


def test_create_model_random_weights():
    m = zoo.create_model("pnag-mobile-80", pretrained=False)
    assert isinstance(m, MobileNetV3)
    assert m.arch == zoo.get_model_info("pnag_mobile_80").arch and m.arch.width == 1.2
    assert m.training  # untouched: no weights loaded
    assert zoo.create_model("pnag_cpu_30", pretrained=False, n_classes=10).classifier.linear.out_features == 10


# -- local weights -------------------------------------------------------------------------------
@pytest.mark.parametrize("wrap", ["bare", "state_dict", "module_prefix"])
def test_local_weights_in_the_published_layout_load(tmp_path, wrap):
    sd = _published_layout_state_dict("pnag_gpu_115")
    obj = {"bare": sd, "state_dict": {"state_dict": sd, "epoch": 3},
           "module_prefix": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    m = zoo.create_model("pnag-gpu-115", weights=path)
    assert _same_weights(m, sd)
    assert not m.training


def test_wrong_layouts_name_the_first_problem(tmp_path):
    sd = _published_layout_state_dict("pnag_cpu_30")
    first = next(iter(sd))
    cases = {
        "missing": ({k: v for k, v in sd.items() if k != first}, f"key '{first}' is missing (1 missing in all)"),
        "unexpected": ({**sd, "extra.weight": torch.zeros(1)}, "key 'extra.weight' is unexpected"),
        "shape": ({**sd, "classifier.linear.bias": torch.zeros(10)},
                  "key 'classifier.linear.bias' has shape [10]; the model for arch"),
    }
    for what, (bad, fragment) in cases.items():
        path = tmp_path / f"{what}.pt"
        torch.save(bad, path)
        with pytest.raises(DataError) as info:
            zoo.create_model("pnag_cpu_30", weights=path)
        assert fragment in str(info.value), what
        assert str(path) in str(info.value)
    # A different model's published weights do not fit either (shape error, not silence).
    path = tmp_path / "other.pt"
    torch.save(_published_layout_state_dict("pnag_cpu_50"), path)
    with pytest.raises(DataError, match="is missing|has shape"):
        zoo.create_model("pnag_cpu_30", weights=path)


def test_unsafe_or_bad_weight_files(tmp_path):
    with pytest.raises(DataError, match="is not a file; allowed: a path to a .pt/.pth state-dict file"):
        zoo.create_model("pnag_cpu_30", weights=tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="cannot be read as a weights-only torch file"):
        zoo.create_model("pnag_cpu_30", weights=junk)
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": _Arbitrary()}, pickled)  # an arbitrary pickled object is refused
    with pytest.raises(DataError, match="weights-only"):
        zoo.create_model("pnag_cpu_30", weights=pickled)
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(DataError, match="not a state dict"):
        zoo.create_model("pnag_cpu_30", weights=listed)


# -- pretrained weights through torch.hub --------------------------------------------------------
def test_pretrained_calls_torch_hub_with_hash_check(monkeypatch):
    sd = _published_layout_state_dict("pnag_cpu_35")
    calls = []

    def fake_loader(url, **kwargs):
        calls.append((url, kwargs))
        return sd

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_loader)
    m = zoo.create_model("pnag-cpu-35")  # pretrained=True is the default
    assert _same_weights(m, sd)
    info = zoo.get_model_info("pnag_cpu_35")
    assert calls == [(info.weights_url, {"map_location": "cpu", "progress": True, "check_hash": True,
                                         "file_name": "pnag-cpu-35-a4f4b023.pt", "weights_only": True})]


class _FakeResponse(io.BytesIO):
    def info(self):
        meta = email.message.Message()
        meta["Content-Length"] = str(len(self.getvalue()))
        return meta


def _serve(monkeypatch, tmp_path, payload: bytes | Exception) -> Path:
    """Route torch.hub's real download code to ``payload`` and its cache to tmp_path."""
    def fake_urlopen(req, *a, **k):
        if isinstance(payload, Exception):
            raise payload
        return _FakeResponse(payload)

    monkeypatch.setattr(torch.hub, "urlopen", fake_urlopen)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_pretrained_real_download_path_with_matching_hash(monkeypatch, tmp_path):
    sd = _published_layout_state_dict("pnag_gpu_90", seed=4)
    buf = io.BytesIO()
    torch.save(sd, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest()[:8]
    entry = zoo.get_model_info("pnag_gpu_90")
    url = f"https://example.invalid/pnag-gpu-90-{digest}.pt"
    monkeypatch.setattr(zoo, "_registry", lambda: {entry.name: dataclasses.replace(entry, weights_url=url)})
    cache = _serve(monkeypatch, tmp_path, payload)
    m = zoo.create_model("pnag_gpu_90", progress=False)
    assert _same_weights(m, sd)
    assert (cache / f"pnag-gpu-90-{digest}.pt").read_bytes() == payload


def test_pretrained_hash_mismatch_is_a_clear_error(monkeypatch, tmp_path):
    buf = io.BytesIO()
    torch.save(_published_layout_state_dict("pnag_cpu_30"), buf)  # right layout, wrong file
    cache = _serve(monkeypatch, tmp_path, buf.getvalue())
    with pytest.raises(DataError) as info:
        zoo.create_model("pnag_cpu_30", progress=False)
    msg = str(info.value)
    assert "downloading the pretrained weights from https://github.com/guoyongcs/PNAG" in msg
    assert "sha256 does not start with 048f7ba8" in msg
    assert "weights='/path/to/pnag-cpu-30-048f7ba8.pt'" in msg and "pretrained=False" in msg
    assert not any(cache.iterdir())  # nothing half-written left in the cache


def test_offline_is_a_clear_error(monkeypatch, tmp_path, capsys):
    _serve(monkeypatch, tmp_path, urllib.error.URLError("Name or service not known"))
    with pytest.raises(DataError, match=r"failed \(URLError: .*Name or service not known.*--weights FILE"):
        zoo.create_model("pnag_mobile_200", progress=False)
    rc = main(["export", "pnag_mobile_200", "--pretrained", "-o", str(tmp_path / "m.onnx")])
    out, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err
    assert "pnag: error: model pnag_mobile_200: downloading the pretrained weights" in err
    assert "--no-pretrained" in err
    assert not (tmp_path / "m.onnx").exists()
    assert "Downloading" not in out  # torch.hub's notice goes to stderr, stdout stays clean


# -- hubconf -------------------------------------------------------------------------------------
def test_torch_hub_local_entry_points(tmp_path):
    m = torch.hub.load(str(ROOT), "pnag_cpu_30", source="local", pretrained=False)
    assert isinstance(m, MobileNetV3) and m.arch == zoo.get_model_info("pnag_cpu_30").arch
    sd = _published_layout_state_dict("pnag_mobile_140", seed=2)
    torch.save(sd, tmp_path / "w.pt")
    m2 = torch.hub.load(str(ROOT), "pnag_mobile_140", source="local", weights=str(tmp_path / "w.pt"))
    assert _same_weights(m2, sd)


def test_hubconf_has_one_documented_entry_per_model():
    import importlib.util
    import inspect

    spec = importlib.util.spec_from_file_location("pnag_test_hubconf", ROOT / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    public = sorted(n for n in vars(hub) if callable(getattr(hub, n)) and not n.startswith("_"))
    assert public == sorted(zoo.list_models())
    assert "torch" in hub.dependencies
    for name in zoo.list_models():
        fn = getattr(hub, name)
        assert list(inspect.signature(fn).parameters) == ["pretrained", "kwargs"]
        assert inspect.signature(fn).parameters["pretrained"].default is True
        assert name in fn.__doc__ and "ms" in fn.__doc__


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_zoo_list_json(capsys):
    assert main(["zoo", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == zoo.list_models()
    for r in rows:
        cost = arch_cost(zoo.get_model_info(r["name"]).arch)
        assert r["madds_m"] == pytest.approx(cost.madds_m, abs=1e-3)
        assert r["params_m"] == pytest.approx(cost.params_m, abs=1e-4)
        assert {"name", "arch", "madds_m", "params_m", "platform", "budget_ms", "reported_latency_ms",
                "reported_top1"} <= set(r)
    assert rows[0]["madds_m"] == pytest.approx(336.166, abs=1e-3)


def test_cli_zoo_list_table(capsys):
    assert main(["zoo", "list", "--platform", "mobile"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert "reported latency (ms)" in lines[0] and "MAdds (M)" in lines[0] and "params (M)" in lines[0]
    assert len(lines) == 2 + 5 and lines[2].split()[:5] == ["pnag_mobile_80", "mobile", "80", "79.9", "78.3"]
    assert main(["zoo", "list", "--platform", "tpu"]) == 2
    assert "allowed: cpu, gpu or mobile" in capsys.readouterr().err
