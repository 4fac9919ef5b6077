"""The budget-conditioned architecture generator: an autoregressive LSTM policy over a space's decisions.

At step ``t`` the LSTM cell reads the embedding of the previous decision's choice (a learned start
token at ``t = 0``) plus an embedding of the budget, and a per-decision linear head gives the
logits of decision ``t`` (each head has its space's own number of choices). The budget (ms) is
normalised to the trained range and also sets the initial state, so one network serves every budget
in the range.

Decisions that do not matter for the sampled architecture (MobileNetV3: expand ratio and kernel of
layers beyond their unit's depth, per ``space.active_mask``) are **not sampled**: the space's activity
rule is causal (whether decision ``t`` matters depends only on decisions before it, e.g. a unit's depth
comes before its layers), so at each step the generator knows whether the decision is active. An
inactive decision is set to its canonical choice 0 and the next step reads a learned *skip* token
instead of a choice embedding. The policy is then a proper distribution over architectures: ``logp``
is the exact log-probability of the architecture (the active decisions' terms), inactive decisions
carry no gradient and do not condition later choices, and the policy gradient is unbiased. (Sampling
them and masking only their log-probabilities, as before, left them conditioning later choices, which
biased the gradient.)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import BudgetError


class Generator(nn.Module):
    """Autoregressive policy ``p(arch | budget)`` over ``space.decision_choices``.

    ``budget_range`` (lo, hi) in ms; budgets are normalised to [0, 1] over it. With ``cond_dim`` > 1
    (a device-conditioned run, :mod:`pnag.search.devices`) the condition is a row ``(position,
    signature...)`` of ``cond_dim`` values: the budget's position (normalised over ``budget_range``,
    then a range of positions) and the device signature, as they are. Sampling runs the
    LSTM step by step without a graph; log-probabilities and entropies are then recomputed in one
    fused pass over the whole sequence (teacher forcing), which is what gradients flow through.
    """

    def __init__(self, space, budget_range: tuple[float, float], hidden: int = 64, cond_dim: int = 1):
        super().__init__()
        lo, hi = float(budget_range[0]), float(budget_range[1])
        if not hi > lo:
            raise BudgetError(f"generator budget range: {lo}:{hi} ms; allowed: LO < HI")
        self.space = space
        self.budget_range = (lo, hi)
        self.hidden = H = int(hidden)
        self.cond_dim = int(cond_dim)
        self.n_choices = [len(c) for c in space.decision_choices]
        self.T = T = len(self.n_choices)
        C = max(self.n_choices)
        self.register_buffer("offsets", torch.tensor([0] + self.n_choices[:-1]).cumsum(0), persistent=False)
        self.register_buffer("valid", torch.arange(C)[None, :] < torch.tensor(self.n_choices)[:, None],
                             persistent=False)  # (T, C): which padded logits are real choices
        self.start = sum(self.n_choices)  # token read at t = 0
        self.skip = self.start + 1  # token read after an inactive decision
        self.embed = nn.Embedding(self.start + 2, H)  # every (decision, choice), then the start and skip tokens
        self.budget_in = nn.Sequential(nn.Linear(self.cond_dim, H), nn.Tanh(), nn.Linear(H, H))
        self.budget_h0 = nn.Linear(H, 2 * H)
        self.lstm = nn.LSTM(H, H, batch_first=True)
        bound = 1.0 / math.sqrt(H)
        # one linear head per decision, stored padded to the largest choice count: (T, H, C)
        self.head_w = nn.Parameter(torch.empty(T, H, C).uniform_(-bound, bound))
        self.head_b = nn.Parameter(torch.empty(T, C).uniform_(-bound, bound))

    def conditions(self, budgets: torch.Tensor) -> torch.Tensor:
        """Budgets ``(B,)`` ms, or condition rows ``(B, cond_dim)``, as float32 ``(B,)`` or ``(B, cond_dim)``."""
        b = torch.as_tensor(budgets, dtype=torch.float32)
        return b.reshape(-1) if self.cond_dim == 1 else b.reshape(-1, self.cond_dim)

    def normalise(self, budgets: torch.Tensor) -> torch.Tensor:
        lo, hi = self.budget_range
        b = self.conditions(budgets)
        if self.cond_dim == 1:
            return ((b - lo) / (hi - lo)).unsqueeze(1)
        return torch.cat([(b[:, :1] - lo) / (hi - lo), b[:, 1:]], 1)

    def _init(self, budgets: torch.Tensor):
        e = self.budget_in(self.normalise(budgets))  # (B, H)
        h, c = torch.tanh(self.budget_h0(e)).chunk(2, dim=1)
        return e, h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()

    def _logits(self, out: torch.Tensor, t: int | None = None) -> torch.Tensor:
        if t is None:  # out (B, T, H) -> (B, T, C)
            z = torch.einsum("bth,thc->btc", out, self.head_w) + self.head_b
            return z.masked_fill(~self.valid, _NEG)
        return (out @ self.head_w[t] + self.head_b[t]).masked_fill(~self.valid[t], _NEG)

    def _cell_tables(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What :meth:`_cell` reads for budget embeddings ``e (B, H)``: the input x_t = embed(token) + e
        enters the gates as ``W_ih x_t + b_ih + b_hh``, split into a per-token table ``(tokens, 4H)``
        and a per-row term ``(B, 4H)``; and ``W_hh`` transposed."""
        lstm = self.lstm
        tok = F.linear(self.embed.weight, lstm.weight_ih_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0)
        return tok, F.linear(e, lstm.weight_ih_l0), lstm.weight_hh_l0.t()

    def _cell(self, tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor], prev: torch.Tensor, h: torch.Tensor,
              c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of ``self.lstm`` (same weights, gate order i, f, g, o) reading tokens ``prev (B,)``,
        on ``(B, H)`` states; ``tables`` from :meth:`_cell_tables`."""
        tok, row, w_hh = tables
        return self._step(tok[prev] + row, h, c, w_hh)

    def _step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTM cell given its input's share of the gates ``x (B, 4H)`` (``W_ih x_t + b_ih + b_hh``)."""
        H = self.hidden
        gates = torch.addmm(x, h, w_hh)
        sig = torch.sigmoid(gates)
        c = torch.addcmul(sig[:, H:2 * H] * c, sig[:, :H], torch.tanh(gates[:, 2 * H:3 * H]))
        return sig[:, 3 * H:] * torch.tanh(c), c

    def sample(self, budgets: torch.Tensor, greedy: bool = False, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw one architecture per budget (ms).

        Returns ``idx`` long ``(B, T)`` choice indices in canonical form (inactive decisions 0),
        ``logp (B,)`` the log-probability of the architecture (its active decisions), and
        ``entropy (B,)`` the summed entropy of the active decisions' policies (both differentiable;
        :meth:`draw` gives ``idx`` alone, :meth:`evaluate` the rest).
        """
        idx = self.draw(budgets, greedy, generator, temperature)
        logp, ent = self.evaluate(budgets, idx)
        return idx, logp, ent

    @torch.no_grad()
    def draw(self, budgets: torch.Tensor, greedy: bool = False, generator: torch.Generator | None = None,
             temperature: float = 1.0) -> torch.Tensor:
        """``idx`` long ``(B, T)``: one architecture per budget (ms), canonical, without a graph.
        ``greedy`` takes the most likely choice at every step; ``temperature`` > 1 flattens the
        sampling distribution (for diverse proposals).

        Draws use the Gumbel-max rule (``argmax(logits / temperature + Gumbel noise)``, an exact draw
        from the softmax) with the noise of every step drawn at once from ``generator`` and added to
        the heads' biases before the loop; each step reads its input gates from a per-decision table of
        the previous decision's tokens (its choices, then the skip token) and asks the space for the
        active decisions again only after a decision that can change them (``space.activity_controls``):
        sampling is the generator stage's sequential part, so each step is a few fused operations.
        """
        budgets = self.conditions(budgets)
        B, T = budgets.shape[0], self.T
        e, h, c = self._init(budgets)
        h, c = h[0], c[0]
        tok, row, w_hh = self._cell_tables(e)
        bias, w = self.head_b.masked_fill(~self.valid, _NEG), self.head_w  # padding never chosen
        if greedy:
            logit_in = bias.unsqueeze(0).expand(B, -1, -1)
        else:
            if temperature != 1.0:
                bias, w = bias / temperature, w / temperature
            u = torch.rand(B, T, bias.shape[1], generator=generator).clamp_(min=1e-20)
            logit_in = bias - torch.log(-torch.log(u))  # + Gumbel(0, 1)
        # step t + 1 reads row p of table t: p < n_t a choice of decision t, p = n_t the skip token
        tables = [torch.cat([tok[int(o):int(o) + n], tok[self.skip:self.skip + 1]])
                  for o, n in zip(self.offsets.tolist(), self.n_choices)]
        skips = torch.tensor(self.n_choices)
        controls = getattr(self.space, "activity_controls", None)
        idx_t = torch.zeros(B, T, dtype=torch.long)
        active = self.space.active_mask(idx_t)
        x = tok[self.start].expand(B, -1) + row
        for t in range(T):
            h, c = self._step(x, h, c, w_hh)
            choice = torch.addmm(logit_in[:, t], h, w[t]).argmax(1)
            p = torch.where(active[:, t], choice, self.n_choices[t])  # causal: depends on decisions < t only
            idx_t[:, t] = p
            if t + 1 < T:
                x = torch.index_select(tables[t], 0, p).add_(row)
            if controls is None or t in controls:
                active = self.space.active_mask(idx_t.masked_fill(idx_t == skips, 0))
        return idx_t.masked_fill_(idx_t == skips, 0)

    def step_log_probs(self, budgets: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-decision log-probability of ``idx`` and policy entropy, ``(B, T)`` each, unmasked.

        Each step reads the previous decision's choice, or the skip token where that decision is
        inactive (as in :meth:`sample`)."""
        budgets = self.conditions(budgets)
        idx = idx.long()
        e, h, c = self._init(budgets)
        start = torch.full((idx.shape[0], 1), self.start, dtype=torch.long)
        active = self.space.active_mask(idx)
        prev_tok = torch.where(active[:, :-1], idx[:, :-1] + self.offsets[:-1], torch.full_like(idx[:, :-1], self.skip))
        prev = torch.cat([start, prev_tok], 1)
        out, _ = self.lstm(self.embed(prev) + e.unsqueeze(1), (h, c))
        lp = torch.log_softmax(self._logits(out), -1)  # (B, T, C)
        chosen = lp.gather(2, idx.unsqueeze(2)).squeeze(2)
        ent = -(lp.exp() * lp).sum(2)
        return chosen, ent

    def evaluate(self, budgets: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``logp (B,)`` and ``entropy (B,)`` of choice indices ``(B, T)``, active decisions only."""
        chosen, ent = self.step_log_probs(budgets, idx)
        mask = self.space.active_mask(idx).to(chosen.dtype)
        return (chosen * mask).sum(1), (ent * mask).sum(1)

    def log_prob(self, budgets: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Log-probability ``(B,)`` of given choice indices ``(B, T)`` (active decisions only)."""
        return self.evaluate(budgets, idx)[0]

    def config(self) -> dict[str, Any]:
        return {"budget_range": list(self.budget_range), "hidden": self.hidden, "cond_dim": self.cond_dim}


_NEG = -1e9  # logit of padding choices: probability exactly 0, no NaN in the entropy


__all__ = ["Generator"]
