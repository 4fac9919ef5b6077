"""Export to ONNX (checked in onnxruntime, dynamic batch) and TorchScript; the export CLI."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from pnag import zoo
from pnag.cli import main
from pnag.errors import ArchError, PnagError
from pnag.export import calibrate_random_bn, export_model, resolve_model, verify_onnx
from pnag.space.mbv3 import MBV3Space

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def _run_onnx(path, x: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def _torch_out(model, x):
    with torch.no_grad():
        return model.eval()(x).numpy()


@pytest.fixture(scope="module")
def zoo_onnx(tmp_path_factory):
    model = resolve_model("pnag_cpu_30")  # random weights, batch norm calibrated, eval mode
    path = tmp_path_factory.mktemp("onnx") / "pnag_cpu_30.onnx"
    return model, export_model(model, path), path


def test_zoo_model_onnx_matches_pytorch_at_batch_1_and_3(zoo_onnx):
    model, result, path = zoo_onnx
    assert result.fmt == "onnx" and result.batch_sizes == (1, 3) and result.max_abs_diff <= 1e-4
    g = torch.Generator().manual_seed(7)
    for b in (1, 3):
        x = torch.randn(b, 3, 224, 224, generator=g)
        ref, got = _torch_out(model, x), _run_onnx(path, x)
        assert got.shape == (b, 1000)
        assert np.abs(got - ref).max() <= 1e-4
    # The comparison means something: outputs are O(0.1) and depend on the input.
    x = torch.randn(2, 3, 224, 224, generator=g)
    out = _torch_out(model, x)
    assert np.abs(out[0] - out[1]).max() > 1e-2
    assert 0.01 < out.std() < 100


def test_onnx_file_declares_a_dynamic_batch_axis(zoo_onnx):
    _, result, path = zoo_onnx
    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 224, 224]
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert result.n_bytes == path.stat().st_size


def test_random_arch_onnx_at_its_resolution(tmp_path):
    arch = MBV3Space(width=1.0, resolution=160).sample(1, seed=21)[0]
    model = resolve_model(arch)
    result = export_model(model, tmp_path / "a.onnx")
    assert result.resolution == 160 and result.max_abs_diff <= 1e-4
    x = torch.randn(3, 3, 160, 160)
    assert np.abs(_run_onnx(tmp_path / "a.onnx", x) - _torch_out(model, x)).max() <= 1e-4
    # An independent re-check through the public verifier at other batch sizes.
    assert verify_onnx(tmp_path / "a.onnx", model, batch_sizes=(2, 5), resolution=160, seed=3) <= 1e-4


def test_random_weights_are_calibrated_and_deterministic():
    a = resolve_model("pnag_gpu_90")
    b = resolve_model("pnag_gpu_90")
    assert not a.training
    bn = a.first_conv.bn
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert torch.equal(a.blocks[3].mobile_inverted_conv.point_linear.bn.running_mean,
                       b.blocks[3].mobile_inverted_conv.point_linear.bn.running_mean)
    assert calibrate_random_bn(a, 224, seed=1) is a


def test_export_errors_write_nothing(tmp_path):
    out = tmp_path / "x.onnx"
    with pytest.raises(PnagError, match="format: 'tflite' is not an export format; allowed: onnx or torchscript"):
        export_model("pnag_cpu_30", out, fmt="tflite")
    with pytest.raises(ArchError, match="neither a zoo model name nor an architecture"):
        export_model("resnet50", out)
    with pytest.raises(PnagError, match="is not a published model, so it has no published weights"):
        resolve_model(MBV3Space().sample(1, seed=0)[0], pretrained=True)
    with pytest.raises(PnagError, match="width: 1.0 differs from pnag_cpu_30's 1.2"):
        resolve_model("pnag_cpu_30", width=1.0, pretrained=True)

    class Broken(torch.nn.Module):  # exports fine but differs from PyTorch: must not be written
        def forward(self, x):
            return x.mean((2, 3)) + (torch.rand(1) if torch.jit.is_tracing() else 0)

    with pytest.raises(RuntimeError, match="export verification failed"):
        export_model(Broken(), out, fmt="torchscript", resolution=128)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_onnx_with_local_weights(tmp_path, capsys):
    model = zoo.create_model("pnag_mobile_80", pretrained=False)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "sub" / "m.onnx"
    rc = main(["export", "pnag-mobile-80", "--format", "onnx", "-o", str(out), "--weights", str(tmp_path / "w.pt"),
               "--resolution", "128"])
    text = capsys.readouterr().out
    assert rc == 0
    assert f"wrote {out}" in text and "from " + str(tmp_path / "w.pt") in text
    diff = float(text.split("max abs diff vs PyTorch ")[1].split()[0])
    assert diff <= 1e-4
    x = torch.randn(2, 3, 128, 128)
    assert np.abs(_run_onnx(out, x) - _torch_out(model, x)).max() <= 1e-4


def test_cli_export_arch_torchscript_and_errors(tmp_path, capsys):
    arch = MBV3Space().sample(1, seed=8)[0].to_legacy()
    out = tmp_path / "a.pt"
    assert main(["export", arch, "--format", "torchscript", "-o", str(out), "--width", "1.0",
                 "--resolution", "128"]) == 0
    text = capsys.readouterr().out
    assert "input 128x128" in text and "random weights" in text and "max abs diff vs PyTorch" in text
    # Random weights are drawn from seed 0: rebuilding gives the exported network exactly.
    model = resolve_model(arch, width=1.0, resolution=128)
    x = torch.randn(3, 3, 128, 128)
    with torch.no_grad(), torch.jit.optimized_execution(False):
        got = torch.jit.load(str(out))(x).numpy()
    assert got.shape == (3, 1000) and np.abs(got - _torch_out(model, x)).max() <= 1e-5
    for argv, fragment in [
        (["export", arch, "-o", str(tmp_path / "b.onnx"), "--pretrained"], "has no published weights"),
        (["export", arch, "-o", str(tmp_path / "b.onnx"), "--resolution", "96"], "--resolution: 96 is outside"),
        (["export", arch, "-o", str(tmp_path / "b.onnx"), "--weights", str(tmp_path / "none.pt")], "is not a file"),
        (["export", "2,2:3", "-o", str(tmp_path / "b.onnx")], "found 2 ':'-separated groups"),
        (["export", arch, "-o", str(tmp_path / "a.pt" / "b.onnx")], "-o/--output: cannot write"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err
    # argparse: unknown format
    assert main(["export", arch, "--format", "tflite", "-o", str(tmp_path / "b")]) == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_onnx_export_of_a_cuda_model(tmp_path):
    model = resolve_model("pnag_cpu_30")
    result = export_model(model.cuda(), tmp_path / "c.onnx")
    assert result.max_abs_diff <= 1e-3
