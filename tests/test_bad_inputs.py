"""Every bad input, on every subcommand, ends in pnag's error form (issue 19): exit status 2, one line on
stderr naming the input, no traceback, nothing half-written left behind. Table-driven over the CLI, plus
property tests that feed random bytes and random JSON in place of each source file."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pnag.cli import main
from pnag.cli._common import MAX_SEED

ARCH = "2,2,3,3,3:5,5,0,0,5,5,0,0,7,5,7,0,3,5,5,0,7,5,5,0:3,3,0,0,4,3,0,0,4,3,3,0,6,4,4,0,6,6,6,0"
OFA = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [224]}
BIG = "3" * 5000  # beyond int()'s 4300 digits


def _arch_with(depth: str) -> str:
    """ARCH with the last unit's depth written as ``depth``."""
    return ARCH.replace("3:", f"{depth}:", 1)


def error_line(argv: list[str], capsys) -> tuple[str, str]:
    """Run the CLI in-process; assert pnag's error form; the one line it printed, and its stdout."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    return lines[0], out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-inputs")
    (d / "folder").mkdir()
    (d / "folder.jsonl").mkdir()
    (d / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (d / "latin1.json").write_bytes(b'\xff\xfe{"format": "caf\xe9"}')
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    entry = json.dumps([{"arch": ARCH, "w1.0": {"top1_acc": 0.7}}])
    (d / "bigint.json").write_text(entry[:-2] + ', "x": ' + BIG + "}]")
    return d


N = str(MAX_SEED + 1)
# (argv with {d} for the fixture folder, a fragment the one line must hold, paths under {d} that must not exist after)
CASES = [
    # files of the wrong kind as sources
    (["train", "--accuracy", "dataset:{d}/folder", "--budgets", "10:24", "-o", "{d}/r1"], "folder: cannot be read",
     ["r1"]),
    (["data", "info", "{d}/folder"], "cannot be read (Is a directory)", []),
    (["data", "info", "{d}/folder.jsonl"], "cannot be read (Is a directory)", []),
    (["data", "info", "{d}/binary.bin"], "not UTF-8", []),
    (["data", "info", "{d}/deep.json"], "nested too deeply", []),
    (["data", "info", "{d}/bigint.json"], "a number too long", []),
    (["train", "--latency", "lut:{d}/binary.bin", "--budgets", "10:24", "-o", "{d}/r2"], "not UTF-8", ["r2"]),
    (["latency", "validate", "--lut", "{d}/latin1.json"], "latency table", []),
    (["latency", "validate", "--lut", "{d}/binary.bin", "--samples", "2"], "not UTF-8", []),
    (["latency", "show-table", "{d}/deep.json", "pnag_cpu_30"], "nested too deeply", []),
    # numbers out of range
    (["arch", "sample", "--seed", "-1"], f"--seed: -1 is not allowed; allowed: an integer in 0..{MAX_SEED}", []),
    (["train", "--seed", N, "--budgets", "10:24", "-o", "{d}/r3"], f"--seed: {N} is not allowed", ["r3"]),
    (["train", "--seed", str(2**64 + 1), "--budgets", "10:24", "-o", "{d}/r3"], "--seed", ["r3"]),
    (["generate", "--run", "{d}/r3", "--budget", "5", "--seed", N], "--seed", []),
    (["eval", "{d}/folder", "--supernet", "random", "--arch", ARCH, "--seed", str(2**64)], "--seed", []),
    (["collect", "--samples", "2", "--seed", "-5", "--out", "{d}/c.jsonl"], "--seed", ["c.jsonl"]),
    (["latency", "validate", "--lut", "x.json", "--seed", N], "--seed", []),
    (["arch", "sample", "-n", "99999999999999999999"], "-n: 99999999999999999999 is not allowed", []),
    (["generate", "--run", "{d}/r3", "--budget", "5", "--samples", "100000000"], "--samples: 100000000", []),
    (["generate", "--run", "{d}/r3", "--budget", "5", "--samples", "1000000000000"], "--samples", []),
    (["generate", "--run", "{d}/r3", "--budgets", "1:1000:0.1", "--samples", "1000"], "budgets x samples <=", []),
    (["search", "--samples", "100000000", "-o", "{d}/s"], "--samples", ["s"]),
    (["search", "-n", "1000", "--samples", "5000", "-o", "{d}/s"], "budgets x samples", ["s"]),
    (["collect", "--samples", "99999999999", "--out", "{d}/c.jsonl"], "--samples", ["c.jsonl"]),
    (["latency", "measure", "pnag_cpu_30", "--threads", "99999999999"], "--threads", []),
    (["latency", "measure", "pnag_cpu_30", "--batch", "10000000"], "--batch", []),
    (["arch", "info", _arch_with(BIG)], "depths[4] (unit 4)", []),
    (["arch", "info", json.dumps(OFA).replace("[3, ", f"[{BIG}, ", 1)], "kernels[0] (unit 0, layer 0)", []),
    (["arch", "info", _arch_with("\u00b3")], "only the ASCII digits", []),  # superscript three
    (["arch", "info", _arch_with("\u0663")], "only the ASCII digits", []),  # Arabic-Indic three
    (["arch", "info", ARCH, "--resolution", "2\u00b224"], "--resolution: '2²24' is not an integer", []),
    (["arch", "sample", "--resolution", "\u0662\u0662\u0664"], "only the ASCII digits", []),
    (["generate", "--run", "{d}/r3", "--budget", "\u0663"], "--budget", []),
    (["arch", "info", '{"ks": ' + "[" * 50_000 + "]" * 50_000 + "}"], "arch dict literal", []),
    # unwritable outputs
    (["eval", "{d}/folder", "--json-out", "/proc/pnag.json"], "--output: cannot write '/proc/pnag.json'", []),
    (["eval", "{d}/folder", "--output", "{d}/folder"], "is a folder", []),
    (["train", "--budgets", "10:24", "-o", "/proc/pnag-run"], "-o/--output: cannot write", []),
    (["train", "--budgets", "10:24", "-o", "{d}/binary.bin/run"], "binary.bin is not a folder", []),
    (["search", "-o", "{d}/binary.bin"], "is a file", []),
    (["plot", "{d}/r3", "-o", "/proc/pnag.png"], "cannot write", []),
    (["data", "export", "ofa-mbv3-w1.0-imagenet", "--format", "csv", "-o", "{d}/folder"], "is a folder", []),
    (["data", "export", "ofa-mbv3-w1.0-imagenet", "--format", "csv", "-o", "/proc/pnag.csv"], "cannot write", []),
    (["export", "pnag_cpu_30", "-o", "{d}/folder"], "is a folder", []),
    (["export", "pnag_cpu_30", "-o", "/sys/pnag.onnx"], "cannot write", []),
    (["latency", "profile", "-o", "/proc/pnag-lut.json"], "cannot write", []),
    (["latency", "validate", "--lut", "{d}/binary.bin", "--plot", "/proc/pnag.png"], "--plot: cannot write", []),
    (["collect", "--samples", "2", "--out", "/proc/pnag.jsonl"], "--out: cannot write", []),
]


@pytest.mark.parametrize("argv, fragment, absent", CASES,
                         ids=[" ".join(c[0][:2]) + f" #{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2(argv, fragment, absent, files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    line, _ = error_line([a.replace("{d}", str(files)) for a in argv], capsys)
    assert fragment in line
    assert not [p for p in absent if (files / p).exists()]
    assert not list(files.glob(".*.tmp")) and not list(files.glob(".pnag-write-check.*"))


def test_eval_keeps_its_results_when_the_final_write_fails(tmp_path, capsys, monkeypatch):
    """The output is checked before the work; when it became unwritable during the work, the results are
    printed (JSON on stdout) and the error is the one line."""
    import pnag.cli.eval as ev
    from pnag.evaluate import imagefolder

    out = tmp_path / "gone" / "results.json"
    out.parent.mkdir()
    result = {"model": "pnag_cpu_30", "resolution": 224, "top1": 75.5, "top5": 92.25, "images": 3, "skipped": 0}

    def evaluate(args, ctx, progress):  # meanwhile the output folder is replaced by a file
        out.parent.rmdir()
        out.parent.write_text("not a folder")
        return [result]

    monkeypatch.setattr(imagefolder, "find_split", lambda *a, **k: None)
    monkeypatch.setattr(ev, "_eval_zoo", evaluate)
    line, printed = error_line(["eval", str(tmp_path), "--device", "cpu", "--output", str(out)], capsys)
    assert str(out) in line and "cannot write" in line
    assert json.loads(printed[:printed.rindex("}") + 1]) == result


# -- property tests: random bytes and random JSON in place of each source file ----------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                    max_leaves=12)
VALUE = JSON | st.sampled_from([3, 5, 7, 4, 6, "3", "\u00b3", "\u0663", BIG, 10**40, -1, 2.5, float("nan")])
ARCH_DICT = st.fixed_dictionaries({"ks": st.lists(VALUE, max_size=21), "e": st.lists(VALUE, max_size=21),
                                   "d": st.lists(VALUE, max_size=6)},
                                  optional={"r": VALUE, "wid": VALUE, "x": VALUE})
ENTRY = st.fixed_dictionaries({"arch": st.sampled_from([ARCH, _arch_with("\u00b3"), "1:2:3"]) | st.text(max_size=8)},
                              optional={"w1.0": st.dictionaries(st.sampled_from(["top1_acc", "cpu_latency",
                                                                                 "gpu_latency", "x"]), VALUE),
                                        "w1.2": JSON})
RECORD = st.fixed_dictionaries({"space": st.sampled_from(["mbv3", "nb201"]) | JSON, "arch": VALUE, "width": VALUE,
                                "resolution": VALUE, "accuracy": JSON, "latency": JSON})
HEADER = {"pnag_collect": 1}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _no_crash(argv: list[str], capsys, name: str | None = None) -> None:
    """Exit 0, or pnag's one-line error naming the file (``name``)."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err, err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "error:" in lines[0], err
        assert name is None or name in lines[0], err


def _source(tmp_path_factory, suffix: str, data: bytes):
    p = tmp_path_factory.mktemp("src") / f"source{suffix}"
    p.write_bytes(data)
    return p


@pytest.mark.slow
@SETTINGS
@given(data=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_random_lut_file(data, tmp_path_factory, capsys):
    p = _source(tmp_path_factory, ".json", data)
    _no_crash(["latency", "show-table", str(p), "pnag_cpu_30"], capsys, p.name)
    _no_crash(["latency", "validate", "--lut", str(p)], capsys, p.name)


@pytest.mark.slow
@SETTINGS
@given(data=st.binary(max_size=200) | st.lists(ENTRY | JSON, max_size=4).map(lambda v: json.dumps(v).encode())
       | JSON.map(lambda v: json.dumps(v).encode()))
def test_random_dataset_json(data, tmp_path_factory, capsys):
    p = _source(tmp_path_factory, ".json", data)
    _no_crash(["data", "info", str(p)], capsys, p.name)


@pytest.mark.slow
@SETTINGS
@given(data=st.binary(max_size=200) | st.lists(RECORD | JSON, max_size=3).map(
    lambda rows: "\n".join(json.dumps(r) for r in [HEADER, *rows]).encode() + b"\n"))
def test_random_dataset_jsonl(data, tmp_path_factory, capsys):
    p = _source(tmp_path_factory, ".jsonl", data)
    _no_crash(["data", "info", str(p)], capsys, p.name)


@pytest.mark.slow
@SETTINGS
@given(arch=ARCH_DICT | JSON)
def test_random_architecture_json(arch, capsys):
    _no_crash(["arch", "info", json.dumps(arch)], capsys, "arch")
