"""The budget-conditioned generator: shapes, masking of inactive decisions, determinism, both spaces."""

import torch

from pnag.space import MBV3Space, NB201Space
from pnag.search.generator import Generator


def _gen(space, seed=0):
    torch.manual_seed(seed)
    return Generator(space, (10.0, 24.0), hidden=16)


def test_sample_shapes_and_valid_choices():
    for space in (MBV3Space(width=1.0), NB201Space()):
        g = _gen(space)
        idx, logp, ent = g.sample(torch.tensor([10.0, 17.0, 24.0]), generator=torch.Generator().manual_seed(0))
        assert idx.shape == (3, len(space.decision_choices)) and logp.shape == ent.shape == (3,)
        sizes = torch.tensor([len(c) for c in space.decision_choices])
        assert bool(((idx >= 0) & (idx < sizes)).all())
        assert bool((logp < 0).all()) and bool((ent > 0).all())
        for row in idx.tolist():  # every sample is an architecture of the space
            space.from_indices(row)


def _per_step(g, budgets, idx):
    """Per-decision log-probabilities and entropies, recomputed one LSTM step at a time."""
    e, h, c = g._init(budgets)
    prev = torch.full((idx.shape[0],), g.start)
    lps, ents = [], []
    for t in range(g.T):
        out, (h, c) = g.lstm((g.embed(prev) + e).unsqueeze(1), (h, c))  # nn.LSTM one step at a time
        lp = torch.log_softmax(g._logits(out[:, 0], t), 1)[:, :g.n_choices[t]]
        lps.append(lp.gather(1, idx[:, t:t + 1]).squeeze(1))
        ents.append(-(lp.exp() * lp).sum(1))
        prev = idx[:, t] + g.offsets[t]
    return torch.stack(lps, 1), torch.stack(ents, 1)


def test_inactive_decisions_are_masked_out_of_logp_and_entropy():
    space = MBV3Space(width=1.0)
    g = _gen(space, 1)
    b = torch.linspace(10, 24, 64)
    idx, logp, ent = g.sample(b, generator=torch.Generator().manual_seed(2))
    mask = space.active_mask(idx)
    assert not bool(mask.all())  # some units shallower than 4: their last layers' decisions are inactive
    lps, ents = _per_step(g, b, idx)
    torch.testing.assert_close(logp, (lps * mask).sum(1))
    torch.testing.assert_close(ent, (ents * mask).sum(1))
    assert bool(((lps * ~mask).sum(1) < 0).any())  # masking changed something
    torch.testing.assert_close(g.log_prob(b, idx), logp)


def test_sampling_cell_matches_lstm():
    g = _gen(MBV3Space(), 3)
    x, h, c = torch.randn(5, 16), torch.randn(5, 16), torch.randn(5, 16)
    out, (h2, c2) = g.lstm(x.unsqueeze(1), (h.unsqueeze(0), c.unsqueeze(0)))
    h1, c1 = g._cell(x, h, c)
    torch.testing.assert_close(h1, h2[0])
    torch.testing.assert_close(c1, c2[0])


def test_deterministic_given_generator_and_greedy():
    g = _gen(NB201Space())
    b = torch.tensor([12.0, 20.0])
    a1 = g.sample(b, generator=torch.Generator().manual_seed(5))[0]
    a2 = g.sample(b, generator=torch.Generator().manual_seed(5))[0]
    assert torch.equal(a1, a2)
    assert torch.equal(g.sample(b, greedy=True)[0], g.sample(b, greedy=True)[0])


def test_gradient_reaches_parameters_and_budget_conditions_policy():
    g = _gen(NB201Space())
    idx, logp, ent = g.sample(torch.tensor([10.0, 24.0]), generator=torch.Generator().manual_seed(0))
    (logp.sum() + ent.sum()).backward()
    assert g.budget_in[0].weight.grad is not None and float(g.budget_in[0].weight.grad.abs().sum()) > 0
    lp_lo = g.log_prob(torch.tensor([10.0]), idx[:1])
    lp_hi = g.log_prob(torch.tensor([24.0]), idx[:1])
    assert not torch.allclose(lp_lo, lp_hi)
