"""The NAS-Bench-201 cell space: strings, malformed input, encoding and decisions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pnag.errors import ArchError
from pnag.space import get_space
from pnag.space.nb201 import N_EDGES, OPS, NB201Arch, NB201Space, effective_indices, parse_nb201

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_all_cells_round_trip():
    space = NB201Space()
    cells = space.all_archs()
    assert len(cells) == 5 ** 6 == 15625
    assert len(set(cells)) == 15625
    strings = [space.format(a) for a in cells]
    assert len(set(strings)) == 15625
    assert all(parse_nb201(s) == a for s, a in zip(strings, cells))
    # Base-5 order, edge 0 most significant.
    assert cells[0].ops == ("none",) * 6 and cells[1].ops == ("none",) * 5 + ("skip_connect",)
    assert cells[-1].ops == ("avg_pool_3x3",) * 6


def test_known_string():
    a = parse_nb201(EXAMPLE)
    assert a.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    assert str(a) == EXAMPLE
    assert parse_nb201("  " + EXAMPLE + "\n") == a


MALFORMED = [
    ("two-nodes", "|none~0|+|none~0|none~1|", ["found 2 '+'-separated nodes", "allowed: exactly 3"]),
    ("no-bars", "none~0+|none~0|none~1|+|none~0|none~1|none~2|", ["node 1 'none~0'", "must start and end with '|'"]),
    ("too-many-inputs", "|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
     ["node 1 '|none~0|none~1|'", "got 2 inputs; allowed: exactly 1"]),
    ("no-tilde", "|none|+|none~0|none~1|+|none~0|none~1|none~2|", ["node 1 input 0 'none'", "allowed form 'op~0'"]),
    ("wrong-source", "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|",
     ["node 2 input 1 'none~0': source node 0; allowed: 1"]),
    ("unknown-op", "|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|",
     ["node 1 input 0: operation 'conv_5x5' is not known", "allowed: none, skip_connect"]),
    ("empty", "", ["found 1 '+'-separated nodes"]),
    ("not-a-string", 5, ["is not a string"]),
]


@pytest.mark.parametrize("text,fragments", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_strings(text, fragments):
    with pytest.raises(ArchError) as info:
        parse_nb201(text)
    for frag in fragments:
        assert frag in str(info.value)


def test_bad_ops_and_indices():
    with pytest.raises(ArchError, match="got 5 operations; allowed: exactly 6"):
        NB201Arch(("none",) * 5)
    with pytest.raises(ArchError, match=r"ops\[2\] \(edge 1->2\): 'conv' is not an operation"):
        NB201Arch(("none", "none", "conv", "none", "none", "none"))
    with pytest.raises(ArchError, match="decision edge 0: index 5 is out of range; allowed: 0..4"):
        NB201Space().from_indices([5, 0, 0, 0, 0, 0])
    with pytest.raises(ArchError, match="got 2; allowed: exactly 6"):
        NB201Space().from_indices([0, 0])


def test_encoding_and_decisions():
    space = get_space("nb201")
    assert space.encoding_size == 30
    assert space.decision_choices == (OPS,) * N_EDGES
    assert space.decision_names[0] == "edge0->1" and space.decision_names[-1] == "edge2->3"
    sample = space.sample(300, seed=1)
    assert sample == space.sample(300, seed=1) and sample != space.sample(300, seed=2)
    enc = space.encode_many(sample)
    assert enc.shape == (300, 30) and enc.dtype == np.float32
    assert np.array_equal(enc.reshape(300, 6, 5).sum(-1), np.ones((300, 6)))
    idx = np.stack([space.to_indices(a) for a in sample])
    assert np.array_equal(enc.reshape(300, 6, 5).argmax(-1), effective_indices(torch.as_tensor(idx)).numpy())
    assert np.array_equal(space.encode_indices(torch.as_tensor(idx)).numpy(), enc)
    assert all(space.from_indices(i) == a for i, a in zip(idx, sample))
    assert bool(space.active_mask(torch.as_tensor(idx)).all())
    assert {op for a in sample for op in a.ops} == set(OPS)
    assert space.validate(list(sample[0].ops)) == sample[0]
    assert space.coerce(EXAMPLE) == parse_nb201(EXAMPLE)


def _live_edges_brute_force(ops: tuple[str, ...]) -> set[int]:
    """Edges on some input-to-output path with no 'none' on it, by enumerating the 4 paths."""
    paths = ((3,), (0, 4), (1, 5), (0, 2, 5))  # edge numbers of 0->3, 0->1->3, 0->2->3, 0->1->2->3
    return {e for p in paths if all(ops[i] != "none" for i in p) for e in p}


def test_effective_indices_keep_exactly_the_live_edges():
    space = NB201Space()
    archs = space.all_archs()
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in archs]))
    eff = effective_indices(idx).numpy()
    for a, row, e in zip(archs[::7], idx.numpy()[::7], eff[::7]):
        live = _live_edges_brute_force(a.ops)
        assert all((e[i] == row[i]) if i in live else (e[i] == 0) for i in range(6)), a
    # hand cases: a conv into node 1 that never reaches the output is dead; a full chain is live
    dead = parse_nb201("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert effective_indices(torch.as_tensor(space.to_indices(dead)).view(1, -1)).tolist() == [[0, 0, 0, 1, 0, 0]]
    chain = parse_nb201("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|avg_pool_3x3~2|")
    assert effective_indices(torch.as_tensor(space.to_indices(chain)).view(1, -1)).tolist() == [[3, 0, 2, 0, 0, 4]]
    # cells with the same live graph share an encoding; the empty cell encodes as all 'none'
    assert np.array_equal(space.encode(dead), space.encode(parse_nb201(
        "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")))
    assert space.encode(archs[0]).reshape(6, 5)[:, 0].all()
