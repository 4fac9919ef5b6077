"""The once-for-all MobileNetV3 space: text forms, malformed input, encodings, decisions, sampling."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pnag.cli import main
from pnag.errors import ArchError, PnagError
from pnag.space.mbv3 import (DEPTHS, ENC_RESOLUTIONS, EXPANDS, KERNELS, MAX_DEPTH, N_SLOTS, N_UNITS, MBV3Arch,
                             MBV3Space, decode, encode, parse_arch, parse_dict_literal, parse_legacy, parse_ofa_dict)

GOOD = "2,2,3,3,3:5,5,0,0,5,5,0,0,7,5,7,0,3,5,5,0,7,5,5,0:3,3,0,0,4,3,0,0,4,3,3,0,6,4,4,0,6,6,6,0"
D, K, E = GOOD.split(":")
FULL = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}

# (id, text, extra CLI args, message fragments that must all appear)
MALFORMED = [
    ("two-groups", f"{D}:{K}", [], ["found 2 ':'-separated groups", "allowed: exactly 3"]),
    ("four-groups", f"{GOOD}:1", [], ["found 4 ':'-separated groups", "allowed: exactly 3"]),
    ("four-depths", f"2,2,3,3:{K}:{E}", [], ["arch depths: got 4 values", "allowed: exactly 5"]),
    ("19-kernels", f"{D}:{K.rsplit(',', 1)[0]}:{E}", [], ["arch kernels: got 19 values", "allowed: exactly 20"]),
    ("21-expands", f"{D}:{K}:{E},3", [], ["arch expands: got 21 values", "allowed: exactly 20"]),
    ("depth-outside", f"5,2,3,3,3:{K}:{E}", [], ["depths[0] (unit 0): 5 is not allowed", "allowed: 2, 3 or 4"]),
    ("kernel-outside", f"{D}:{K.replace('5', '4', 1)}:{E}", [],
     ["kernels[0] (unit 0, layer 0): 4 is not allowed", "allowed: 3, 5 or 7"]),
    ("expand-outside", f"{D}:{K}:{E.replace('4', '5', 1)}", [],
     ["expands[4] (unit 1, layer 0): 5 is not allowed", "allowed: 3, 4 or 6"]),
    ("non-number", f"{D}:{K.replace('7', 'x', 1)}:{E}", [],
     ["kernels[8] (unit 2, layer 0): 'x' is not a number", "allowed: 3, 5 or 7"]),
    ("semicolons", f"{D.replace(',', ';')}:{K}:{E}", [], ["arch depths '2;2;3;3;3'", "must be separated by ','"]),
    ("spaces", f"{D}:{K}:{E.replace(',', ' ')}", [], ["arch expands", "must be separated by ','"]),
    ("used-slot-zero", f"{D}:0{K[1:]}:{E}", [],
     ["kernels[0] (unit 0, layer 0): 0 marks an unused slot", "unit 0 has depth 2", "allowed: 3, 5 or 7"]),
    ("depth-slot-disagree", f"3,2,3,3,3:{K}:{E}", [],
     ["kernels[2] (unit 0, layer 2): 0 marks an unused slot", "unit 0 has depth 3"]),
    ("unused-slot-junk", f"{D}:5,5,9{K[5:]}:{E}", [],
     ["kernels[2] (unit 0, layer 2): 9 is not allowed in an unused slot", "allowed: 0, 3, 5 or 7"]),
    ("unknown-width", GOOD, ["--width", "1.1"], ["width: '1.1' is not a width of the space", "allowed: 1.0 or 1.2"]),
    ("width-not-number", GOOD, ["--width", "wide"], ["width: 'wide' is not a number", "allowed: 1.0 or 1.2"]),
    ("resolution-outside", GOOD, ["--resolution", "300"], ["resolution: 300 is outside the space", "allowed: 128..224"]),
    ("resolution-not-int", GOOD, ["--resolution", "abc"], ["resolution: 'abc' is not an integer", "allowed: 128..224"]),
    ("dict-missing-key", json.dumps({"ks": [3] * 20, "e": [3] * 20}), [],
     ["arch dict: missing key(s) d", "required: ks, e, d"]),
    ("dict-unknown-key", json.dumps({**FULL, "x": 1}), [], ["arch dict: unknown key(s) x", "allowed: ks, e, d, r, wid"]),
    ("dict-bad-literal", "{'ks': [3]*20, 'e': [3]*20, 'd': [2]*5}", [],
     ["not a valid Python/JSON dict literal", "allowed: {'ks'"]),
    ("dict-two-resolutions", json.dumps({**FULL, "r": [224, 160]}), [], ["arch dict r: [224, 160] has 2 values",
                                                                         "allowed: one resolution"]),
    ("dict-bad-width", json.dumps({**FULL, "wid": 0.75}), [], ["arch dict wid: 0.75 is not a width", "allowed: 1.0 or 1.2"]),
    ("dict-not-list", json.dumps({**FULL, "ks": 3}), [], ["arch dict kernels: 3 is not a list", "a list of 20 integers"]),
    ("dict-bool-depth", json.dumps({**FULL, "d": [True] * 5}), [], ["depths[0] (unit 0): True is not a number"]),
    ("json-list", "[1, 2]", [], ["a list is not an architecture"]),
    ("not-a-name", "pnag_cpu_31", [], ["neither a zoo model name nor an architecture", "pnag_cpu_30"]),
]


def _parse_like_cli(text: str, args: list[str]):
    from pnag.space.mbv3 import check_resolution, check_width
    from pnag.zoo import resolve_arch

    opts = dict(zip(args[::2], args[1::2]))
    w = check_width(opts["--width"], "--width") if "--width" in opts else None
    r = check_resolution(opts["--resolution"], "--resolution") if "--resolution" in opts else None
    return resolve_arch(text, width=w, resolution=r)


def test_at_least_twelve_distinct_malformed_inputs():
    assert len({m[1] + " ".join(m[2]) for m in MALFORMED}) >= 12


@pytest.mark.parametrize("text,args,fragments", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_input_api(text, args, fragments):
    with pytest.raises(ArchError) as info:
        _parse_like_cli(text, args)
    for frag in fragments:
        assert frag in str(info.value)


@pytest.mark.parametrize("text,args,fragments", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_input_cli(text, args, fragments, capsys):
    rc = main(["arch", "info", text, *args])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert err.startswith("pnag: error: ")
    assert "Traceback" not in err
    for frag in fragments:
        assert frag in err


def test_malformed_input_subprocess_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "pnag", "arch", "info", f"{D}:{K}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "found 2 ':'-separated groups" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_other_bad_values():
    with pytest.raises(ArchError, match="is not a string"):
        parse_legacy(42)
    with pytest.raises(ArchError, match="is not a dict"):
        parse_ofa_dict([1, 2])
    with pytest.raises(ArchError, match="decision indices: got 3; allowed: exactly 45"):
        MBV3Space().from_indices([0, 0, 0])
    with pytest.raises(ArchError, match=r"unit0.depth: index 3 is out of range; allowed: 0..2"):
        MBV3Space().from_indices([3] + [0] * 44)
    with pytest.raises(ArchError, match="encoding: 'x' is not known"):
        MBV3Space(encoding="x")
    with pytest.raises(ArchError, match="has no slot in the 128-d encoding"):
        MBV3Space(resolution=130, encoding="ofa")
    with pytest.raises(ArchError, match="got a vector of length 7; allowed: 120 or 128"):
        decode(np.zeros(7))
    with pytest.raises(PnagError):  # PnagError is a ValueError: callers can catch either
        parse_arch("nonsense")
    assert issubclass(ArchError, ValueError)


def test_known_arch_fields():
    a = parse_arch(GOOD)
    assert a.depths == (2, 2, 3, 3, 3)
    assert a.width == 1.2 and a.resolution == 224
    assert a.n_layers == 13
    assert a.layers()[0] == (0, 0, 5, 3) and a.layers()[-1] == (4, 2, 5, 6)
    assert str(a) == GOOD
    # Non-zero leftovers in unused slots are accepted and dropped (canonical form).
    messy = parse_arch(f"{D}:5,5,7,7{K[7:]}:3,3,6,6{E[7:]}")
    assert messy == a and hash(messy) == hash(a)
    # The CSV literal form with wid None, and resolution overrides.
    lit = parse_dict_literal(str({"wid": None, **a.to_ofa_dict(fill=3)}), width=1.0)
    assert lit == a.with_(width=1.0)
    assert parse_arch(GOOD, width="1.0", resolution="160") == a.with_(width=1.0, resolution=160)


# -- property tests ------------------------------------------------------------------------------
@st.composite
def archs(draw, resolutions=st.integers(128, 224)):
    depths = [draw(st.sampled_from(DEPTHS)) for _ in range(N_UNITS)]
    ks, es = [0] * N_SLOTS, [0] * N_SLOTS
    for u, d in enumerate(depths):
        for i in range(d):
            ks[u * MAX_DEPTH + i] = draw(st.sampled_from(KERNELS))
            es[u * MAX_DEPTH + i] = draw(st.sampled_from(EXPANDS))
    return MBV3Arch(tuple(depths), tuple(ks), tuple(es), draw(st.sampled_from((1.0, 1.2))), draw(resolutions))


@settings(max_examples=150, deadline=None)
@given(archs())
def test_text_forms_round_trip(a):
    assert parse_legacy(a.to_legacy(), width=a.width, resolution=a.resolution) == a
    assert parse_arch(a.to_legacy(), width=a.width, resolution=a.resolution) == a
    ofa = a.to_ofa_dict()
    assert parse_ofa_dict(ofa, width=a.width) == a
    assert parse_ofa_dict(a.to_ofa_dict(fill=3), width=a.width) == a
    assert parse_arch(json.dumps(ofa), width=a.width) == a
    assert parse_dict_literal(repr({"wid": None, **ofa}), width=a.width) == a
    assert MBV3Arch.from_units([[(k, e) for (u2, _, k, e) in a.layers() if u2 == u] for u in range(N_UNITS)],
                               a.width, a.resolution) == a


@settings(max_examples=150, deadline=None)
@given(archs(resolutions=st.sampled_from(ENC_RESOLUTIONS[1:])))
def test_encodings_and_decisions_round_trip(a):
    v120, v128 = encode(a, "pnag"), encode(a, "ofa")
    assert v120.shape == (120,) and v128.shape == (128,)
    assert np.array_equal(v128[:120], v120)
    # One kernel and one expand one-hot per active layer, nothing in unused slots.
    assert v120[:60].sum() == a.n_layers and v120[60:].sum() == a.n_layers and v128[120:].sum() == 1
    assert decode(v120, width=a.width, resolution=a.resolution) == a
    assert decode(v128, width=a.width) == a
    for enc, v in (("pnag", v120), ("ofa", v128)):
        space = MBV3Space(width=a.width, resolution=a.resolution, encoding=enc)
        idx = space.to_indices(a)
        assert idx.dtype == np.int64 and idx.shape == (45,)
        assert space.from_indices(idx) == a
        assert np.array_equal(space.encode(a), v)
        batch = torch.as_tensor(idx)[None]
        assert np.array_equal(space.encode_indices(batch)[0].numpy(), v)
        mask = space.active_mask(batch)[0].numpy()
        assert mask.sum() == N_UNITS + 2 * a.n_layers
        # Inactive decisions do not matter: changing them changes neither arch nor encoding.
        noisy = idx.copy()
        noisy[~mask] = 2
        assert space.from_indices(noisy) == a
        assert np.array_equal(space.encode_indices(torch.as_tensor(noisy)[None])[0].numpy(), v)


def test_active_mask_matches_depths():
    space = MBV3Space()
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in space.sample(64, seed=3)]))
    mask = space.active_mask(idx)
    assert mask.shape == idx.shape and mask.dtype == torch.bool
    for row, m in zip(idx, mask):
        a = space.from_indices(row.tolist())
        for u in range(N_UNITS):
            assert m[u * 9]  # every depth decision is active
            for i in range(MAX_DEPTH):
                assert bool(m[u * 9 + 1 + 2 * i]) == bool(m[u * 9 + 2 + 2 * i]) == (i < a.depths[u])


@pytest.mark.parametrize("encoding,resolution", [("pnag", 224), ("ofa", 160)])
def test_encode_many_equals_stacked_encode(encoding, resolution):
    space = MBV3Space(resolution=resolution, encoding=encoding)
    sample = space.sample(50, seed=11)
    many = space.encode_many(sample)
    assert many.dtype == np.float32 and many.shape == (50, space.encoding_size)
    assert np.array_equal(many, np.stack([space.encode(a) for a in sample]))
    assert space.encode_many([]).shape == (0, space.encoding_size)


def test_sampling_is_deterministic_and_covers_choices():
    space = MBV3Space(width=1.0, resolution=192)
    a, b, c = space.sample(200, seed=5), space.sample(200, seed=5), space.sample(200, seed=6)
    assert a == b and a != c
    assert space.sample(10, rng=np.random.default_rng(5)) == a[:10]
    assert all(x.width == 1.0 and x.resolution == 192 for x in a)
    assert {d for x in a for d in x.depths} == set(DEPTHS)
    assert {k for x in a for k in x.kernels} == {0, *KERNELS}
    assert {e for x in a for e in x.expands} == {0, *EXPANDS}
    # Roughly uniform depths: each of the three values within 25-42 % of 1000 draws.
    counts = np.bincount([d for x in a for d in x.depths], minlength=5)[2:]
    assert counts.min() > 250 and counts.max() < 420


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from((1.0, 1.2)))
def test_sampling_determinism_per_seed(seed, width):
    space = MBV3Space(width=width)
    first = space.sample(4, seed=seed)
    assert first == space.sample(4, seed=seed)
    assert all(a.width == width for a in first)


def test_activity_controls_are_the_only_decisions_that_change_the_mask():
    """The generator asks for the active mask again only after ``activity_controls``: changing any
    other decision must leave the mask alone, and each control must change it for some row."""
    import torch

    from pnag.space import NB201Space

    for space in (MBV3Space(width=1.2, resolutions=(160, 224)), NB201Space()):
        sizes = [len(c) for c in space.decision_choices]
        g = torch.Generator().manual_seed(0)
        idx = torch.stack([torch.randint(0, n, (256,), generator=g) for n in sizes], 1)
        base = space.active_mask(idx)
        for t, n in enumerate(sizes):
            changed = False
            for v in range(n):
                other = idx.clone()
                other[:, t] = v
                changed |= not torch.equal(space.active_mask(other), base)
            assert changed == (t in space.activity_controls), (space.name, t)
