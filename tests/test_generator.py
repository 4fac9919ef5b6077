"""The budget-conditioned generator: shapes, inactive decisions (skip token, unbiased gradient),
determinism, both spaces."""

import itertools

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
    active = g.space.active_mask(idx)
    lps, ents = [], []
    for t in range(g.T):
        out, (h, c) = g.lstm((g.embed(prev) + e).unsqueeze(1), (h, c))  # nn.LSTM one step at a time
        lp = torch.log_softmax(g._logits(out[:, 0], t), 1)[:, :g.n_choices[t]]
        lps.append(lp.gather(1, idx[:, t:t + 1]).squeeze(1))
        ents.append(-(lp.exp() * lp).sum(1))
        prev = torch.where(active[:, t], idx[:, t] + g.offsets[t], torch.full_like(prev, g.skip))
    return torch.stack(lps, 1), torch.stack(ents, 1)


def test_inactive_decisions_are_masked_out_of_logp_and_entropy():
    space = MBV3Space(width=1.0)
    g = _gen(space, 1)
    b = torch.linspace(10, 24, 64)
    idx, logp, ent = g.sample(b, generator=torch.Generator().manual_seed(2))
    mask = space.active_mask(idx)
    assert not bool(mask.all())  # some units shallower than 4: their last layers' decisions are inactive
    assert bool((idx[~mask] == 0).all())  # inactive decisions are not sampled: canonical 0
    lps, ents = _per_step(g, b, idx)
    torch.testing.assert_close(logp, (lps * mask).sum(1))
    torch.testing.assert_close(ent, (ents * mask).sum(1))
    assert bool(((lps * ~mask).sum(1) < 0).any())  # masking changed something
    torch.testing.assert_close(g.log_prob(b, idx), logp)


def test_sampling_cell_matches_lstm():
    g = _gen(MBV3Space(), 3)
    e, h, c = torch.randn(5, 16), torch.randn(5, 16), torch.randn(5, 16)
    prev = torch.tensor([0, 3, g.start, g.skip, 7])
    with torch.no_grad():
        out, (h2, c2) = g.lstm((g.embed(prev) + e).unsqueeze(1), (h.unsqueeze(0), c.unsqueeze(0)))
        h1, c1 = g._cell(g._cell_tables(e), prev, h, c)
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


class ToySpace:
    """Three decisions: a depth in {1, 2}; ``b`` in {0, 1}, active only at depth 2; ``a`` in {0, 1, 2}.
    ``b`` sits before ``a``, so a scheme that sampled ``b`` at depth 1 would let it condition ``a``."""

    decision_choices = ((1, 2), (0, 1), (0, 1, 2))

    def active_mask(self, idx):
        m = torch.ones_like(idx, dtype=torch.bool)
        m[:, 1] = idx[:, 0] == 1
        return m

    def architectures(self):
        """Every distinct architecture, canonical (``b`` 0 where inactive)."""
        rows = {(d, b if d == 1 else 0, a) for d, b, a in itertools.product(range(2), range(2), range(3))}
        return torch.tensor(sorted(rows))


def _toy(seed=0):
    torch.manual_seed(seed)
    g = Generator(ToySpace(), (0.0, 1.0), hidden=8)
    with torch.no_grad():  # a policy far from uniform, so that conditioning shows
        for p in g.parameters():
            p.mul_(4.0)
    return g


def test_toy_policy_is_a_distribution_over_architectures():
    g, space = _toy(), ToySpace()
    archs = space.architectures()
    assert len(archs) == 9
    b = torch.full((len(archs),), 0.3)
    p = g.log_prob(b, archs).exp()
    torch.testing.assert_close(p.sum(), torch.tensor(1.0), atol=1e-5, rtol=0)
    # an inactive decision's value neither enters the probability nor conditions later choices
    shallow = archs[archs[:, 0] == 0]
    flipped = shallow.clone()
    flipped[:, 1] = 1
    torch.testing.assert_close(g.log_prob(b[:len(shallow)], flipped), g.log_prob(b[:len(shallow)], shallow))
    # samples are canonical and their frequencies follow the probabilities
    n = 20000
    idx, _, _ = g.sample(torch.full((n,), 0.3), generator=torch.Generator().manual_seed(1))
    assert bool((idx[idx[:, 0] == 0, 1] == 0).all())
    codes = idx[:, 0] * 6 + idx[:, 1] * 3 + idx[:, 2]
    freq = torch.bincount(codes, minlength=12).float()[archs[:, 0] * 6 + archs[:, 1] * 3 + archs[:, 2]] / n
    torch.testing.assert_close(freq, p.detach(), atol=0.015, rtol=0)


def test_toy_policy_gradient_matches_the_enumerated_gradient():
    """The REINFORCE estimate (reward x grad logp over samples) converges to the exact gradient of the
    expected reward, computed by enumerating every architecture."""
    g, space = _toy(2), ToySpace()
    archs = space.architectures()
    reward = torch.tensor([3.0, -1.0, 0.5, 2.0, -2.0, 1.0, 0.0, 4.0, -3.0])
    params = [p for p in g.parameters() if p.requires_grad]
    b = torch.full((len(archs),), 0.7)
    exact = torch.autograd.grad((g.log_prob(b, archs).exp() * reward).sum(), params, allow_unused=True)
    n = 40000
    idx, logp, _ = g.sample(torch.full((n,), 0.7), generator=torch.Generator().manual_seed(3))
    code = {tuple(r): i for i, r in enumerate(archs.tolist())}
    r = reward[torch.tensor([code[tuple(x)] for x in idx.tolist()])]
    mc = torch.autograd.grad((r * logp).mean(), params, allow_unused=True)
    e = torch.cat([x.flatten() for x in exact if x is not None])
    m = torch.cat([x.flatten() for x, y in zip(mc, exact) if y is not None])
    assert float(torch.nn.functional.cosine_similarity(e, m, dim=0)) > 0.97
    assert float((m - e).norm() / e.norm()) < 0.25
