"""``pnag arch info|sample`` and ``pnag search`` (the README's main command, issue-2 version)."""

from __future__ import annotations

import json

import pytest

from pnag import zoo
from pnag.cli import main
from pnag.nn.cost import arch_cost
from pnag.space.mbv3 import MBV3Space, parse_arch

ARCH = "2,3,4,2,3:3,5,0,0,7,7,3,0,5,5,3,7,3,3,0,0,7,5,3,0:3,4,0,0,6,6,3,0,4,4,6,3,6,3,0,0,4,4,6,0"


def _json(capsys, argv) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_arch_info_json(capsys):
    d = _json(capsys, ["arch", "info", ARCH, "--json"])
    a = parse_arch(ARCH)
    cost = arch_cost(a)
    assert d["arch"] == ARCH and d["width"] == 1.2 and d["resolution"] == 224
    assert d["depths"] == [2, 3, 4, 2, 3] and d["n_layers"] == 14
    assert d["madds"] == cost.madds and d["params"] == cost.params
    assert d["madds_m"] == pytest.approx(cost.madds / 1e6, abs=1e-3)
    assert d["params_m"] == pytest.approx(cost.params / 1e6, abs=1e-4)
    assert d["ofa"] == {"ks": list(a.kernels), "e": list(a.expands), "d": list(a.depths), "r": [224]}
    assert d["encoding_sizes"] == {"pnag": 120, "ofa": 128}
    # The OFA dict it prints is itself accepted, and width/resolution overrides change the cost.
    d2 = _json(capsys, ["arch", "info", json.dumps(d["ofa"]), "--width", "1.0", "--resolution", "160", "--json"])
    assert d2["arch"] == ARCH and d2["width"] == 1.0 and d2["resolution"] == 160
    assert d2["madds"] == arch_cost(a, width=1.0, resolution=160).madds < d["madds"]


def test_arch_info_text_and_zoo_names(capsys):
    assert main(["arch", "info", "pnag-gpu-90"]) == 0
    out = capsys.readouterr().out
    info = zoo.get_model_info("pnag_gpu_90")
    assert info.arch_string in out
    assert f"{arch_cost(info.arch).madds_m:.1f}" in out
    rows = [line.split() for line in out.splitlines() if len(line.split()) == 4 and line.split()[0].isdigit()]
    assert [tuple(map(int, r)) for r in rows] == info.arch.layers()  # unit, layer, kernel, expand
    d = _json(capsys, ["arch", "info", "pnag_gpu_90", "--resolution", "192", "--json"])
    assert d["arch"] == info.arch_string and d["resolution"] == 192 and d["width"] == 1.2


def test_arch_sample(capsys):
    first = _json(capsys, ["arch", "sample", "-n", "4", "--seed", "3", "--json"])
    again = _json(capsys, ["arch", "sample", "-n", "4", "--seed", "3", "--json"])
    other = _json(capsys, ["arch", "sample", "-n", "4", "--seed", "4", "--json"])
    assert first == again and first != other
    expected = MBV3Space().sample(4, seed=3)
    assert [r["arch"] for r in first] == [a.to_legacy() for a in expected]
    assert [r["madds_m"] for r in first] == [round(arch_cost(a).madds_m, 3) for a in expected]
    narrow = _json(capsys, ["arch", "sample", "-n", "2", "--seed", "3", "--width", "1.0", "--json"])
    assert all(r["width"] == 1.0 for r in narrow) and narrow[0]["params_m"] < first[0]["params_m"]
    assert main(["arch", "sample", "-n", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and "MAdds (M)" in lines[0]


@pytest.mark.parametrize("argv,fragment", [
    (["arch", "sample", "-n", "0"], "-n: 0 is not allowed; allowed: an integer in 1..100000"),
    (["arch", "sample", "--seed", "x"], "--seed: 'x' is not an integer; allowed: an integer in 0..9223372036854775807"),
    (["arch", "sample", "--width", "2"], "--width: '2' is not a width of the space"),
    (["arch", "info"], "the following arguments are required: ARCH"),
    (["arch"], "required: SUBCOMMAND"),
])
def test_arch_usage_errors(argv, fragment, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2
    assert fragment in err and "Traceback" not in err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for cmd in ("search", "arch", "zoo", "export"):
        assert cmd in out
