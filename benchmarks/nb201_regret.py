"""NAS-Bench-201 regret benchmark: PNAG (trained once for all budgets) against per-budget baselines.

    python benchmarks/nb201_regret.py --dataset cifar10 --device raspi4 [--eval-budget 0 100] [--seeds 0 1 2]

Setting (issue 5): accuracy is known for 1,000 seeded random cells (the "measured" data); latency is
read from the device table for any cell, as measuring on the device would. 20 budgets sit at the
5 %..95 % quantiles of the device latency over all 15,625 cells. Per budget: true feasibility (true
latency <= budget) and regret = best true accuracy of all cells within the budget - true accuracy of
the chosen cell (percentage points; computed for feasible choices, infeasible ones count against
feasibility). Methods, all on the same 1,000 measured cells and the same accuracy predictor:

* ``pnag``: one generator trained once for the whole range (``pnag.search.train``), then generate
  (the final pick: the generator's draws, neighbours, the measured cells; origins in the notes);
* ``pnag-generator``: the same run's generator alone (``Run.generate(mode="generator")``: the best of
  ``--generator-samples`` draws by the run's objective);
* ``best-measured``: the best of the measured cells within the budget (no search);
* ``predictor-argmax``: the accuracy predictor maximised exhaustively over all 15,625 cells (a
  reference point, 15,625 queries);
* ``random``, ``evolution``, ``pg-mnas``, ``pg-tunas``: per-budget searches at equal cost: each gets
  (PNAG's predictor/ranker queries during training) / 20 queries.

With ``--eval-budget Q``: PNAG refines itself with up to Q true look-ups (its closed loop); the
per-budget searches each measure their Q / 20 best not-yet-measured predicted-feasible candidates
and return the best measured cell within the budget; ``best-measured`` gets Q extra random cells.

Writes ``benchmarks/results/nb201_<dataset>_<device>.md`` (atomically) and prints the table. Wall
times on a shared machine are inflated; the file says so when ``--under-load`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pnag._io import write_text_atomic
from pnag.errors import PnagError
from pnag.predict.mlp import TARGETS
from pnag.search.baselines import (
    IndexTable,
    Measured,
    best_measured,
    equal_share,
    evolutionary_search,
    policy_gradient_search,
    random_search,
    refine_with_measurements,
)
from pnag.search.pareto import best_within_budgets
from pnag.sources import NB201Lookup, get_accuracy_source
from pnag.space import NB201Space

N_BUDGETS = 20
METHODS = ("pnag", "pnag-generator", "best-measured", "predictor-argmax", "random", "evolution", "pg-mnas", "pg-tunas")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Outcome:
    """One method, one seed, one eval budget: the chosen code per budget and the costs."""

    chosen: np.ndarray  # (20,) code (row of the all-cells table) per budget
    queries_per_budget: float
    true_lookups: int
    wall_s: float
    note: str = ""
    extra: dict = field(default_factory=dict)


def _progress(it, desc: str, disable: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return it
    return tqdm(it, desc=desc, disable=disable or not sys.stderr.isatty(), file=sys.stderr)


class Problem:
    """All cells of one dataset/device pair in base-5 code order, plus the measured subset of a seed."""

    def __init__(self, dataset: str, device: str):
        self.space = NB201Space()
        look = NB201Lookup(self.space)
        self.dataset, self.device = dataset, device
        self.acc = look.accuracy(dataset)  # % per code
        self.lat = look.latency(device)  # ms per code
        self.idx = np.stack([self.space.to_indices(a) for a in look.archs])  # (15625, 6), row = code
        self.codes = IndexTable(self.space, self.idx, np.arange(len(self.idx), dtype=np.float64))
        self.budgets = np.quantile(self.lat, np.linspace(0.05, 0.95, N_BUDGETS))
        self.best = best_within_budgets(self.acc, self.lat, self.budgets)
        self.spec = f"nb201:{dataset}"

    def code_of(self, idx: np.ndarray) -> np.ndarray:
        return self.codes.lookup(np.asarray(idx, dtype=np.int64).reshape(-1, 6)).astype(np.int64)

    def latency_fn(self, idx: np.ndarray) -> np.ndarray:
        return self.lat[self.code_of(idx)]

    def true_acc_fn(self, idx: np.ndarray) -> np.ndarray:
        return self.acc[self.code_of(idx)]

    def measured(self, n: int, seed: int) -> Measured:
        archs, acc = get_accuracy_source(self.spec, self.space).table(n, seed)  # the generator's own data
        idx = np.stack([self.space.to_indices(a) for a in archs])
        return Measured(idx, np.asarray(acc, np.float64), self.latency_fn(idx))

    def score(self, chosen: np.ndarray) -> dict:
        """Feasibility (fraction), mean/max regret (points, feasible choices) over the 20 budgets."""
        ok = (chosen >= 0) & (self.lat[np.maximum(chosen, 0)] <= self.budgets)
        reg = self.acc[self.best] - self.acc[np.maximum(chosen, 0)]
        reg = reg[ok]
        odd = np.arange(N_BUDGETS) % 2 == 1
        reg_odd = (self.acc[self.best] - self.acc[np.maximum(chosen, 0)])[ok & odd]
        return {"feasible": float(ok.mean()), "mean_regret": float(reg.mean()) if reg.size else float("nan"),
                "max_regret": float(reg.max()) if reg.size else float("nan"),
                "mean_regret_unseen": float(reg_odd.mean()) if reg_odd.size else float("nan")}


# -- PNAG --------------------------------------------------------------------------------------------
# the TrainConfig fields this benchmark sets itself (``--set`` may override any other)
OWN_FIELDS = ("space", "accuracy", "latency", "budgets", "train_samples", "seed", "eval_budget", "predictor_target")


def pnag_config(problem: Problem, seed: int, q: int, args):
    """PNAG's training configuration for one seed and eval budget: the setting above, plus ``--set``."""
    from pnag.search import TrainConfig

    lo, hi = float(problem.budgets[0]), float(problem.budgets[-1])
    return TrainConfig(space="nb201", accuracy=problem.spec, latency=f"nb201:{problem.device}", budgets=(lo, hi),
                       train_samples=args.train_samples, seed=seed, eval_budget=q,
                       predictor_target=args.predictor_target, **dict(args.set))


def run_pnag(problem: Problem, seed: int, q: int, workdir: Path, args):
    """Train once for the whole budget range, then generate for the 20 budgets. Returns (Outcome, Run)."""
    from pnag.search import train

    cfg = pnag_config(problem, seed, q, args)
    t0 = time.perf_counter()
    run = train(cfg, workdir / f"pnag-{problem.dataset}-{problem.device}-s{seed}-q{q}", progress=False)
    t_train = time.perf_counter() - t0
    t1 = time.perf_counter()
    gens = run.generate(list(map(float, problem.budgets)), samples=args.samples)
    wall = t_train + time.perf_counter() - t1
    t2 = time.perf_counter()
    own = run.generate(list(map(float, problem.budgets)), samples=args.generator_samples, mode="generator")
    wall_own = t_train + time.perf_counter() - t2

    def codes(gs):
        return problem.code_of(np.stack([problem.space.to_indices(problem.space.parse(g.arch)) for g in gs]))

    total = run_queries(run.config, problem.space, run.metrics)
    extra = {"total_queries": total, "measured_wins": sum(g.measured for g in gens),
             "origins": {o: sum(g.origin == o for g in gens) for o in sorted({g.origin for g in gens})},
             "own_measured": sum(g.measured for g in own)}
    return Outcome(codes(gens), total / N_BUDGETS, q, wall, extra=extra), \
        Outcome(codes(own), total / N_BUDGETS, q, wall_own, extra=dict(extra)), run


def run_queries(cfg, space, metrics: dict) -> int:
    """Predictor/ranker queries a PNAG run spent: the generator stages' own count (its draws and the
    archive's offspring, ``metrics["queries"]``), the ranker's pool of predictor-labelled architectures
    (once, and again per eval round), per eval round budget ``eval_candidates`` proposals and the
    one-decision neighbours of ``eval_parents + 1`` architectures, and for generating, per budget, the
    greedy proposal, the neighbours of ``choice_parents + 1`` architectures and the archive's elite."""
    n_neighbours = sum(len(c) - 1 for c in space.decision_choices)
    pool = cfg.ranker_pool if cfg.reward == "pareto" else 0
    total = int(sum(metrics.get("queries", {}).values())) + pool
    total += N_BUDGETS * (2 + (cfg.choice_parents + 1 if cfg.choice_parents else 0) * n_neighbours)
    if cfg.eval_budget:
        rounds = min(cfg.eval_rounds, cfg.eval_budget)
        total += rounds * pool
        total += cfg.eval_budget * (cfg.eval_candidates + (cfg.eval_parents + 1 if cfg.eval_parents else 0) * n_neighbours)
    return int(total)


def score_fn_of_run(run):
    """The run's own accuracy predictor (ensemble mean, %), as a numpy score function."""
    def score(idx: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return run.models.accuracy(torch.from_numpy(np.asarray(idx, dtype=np.int64)))[0].numpy()

    return score


# -- baselines -------------------------------------------------------------------------------------
def run_baseline(method: str, problem: Problem, table: Measured, score, share: int, q: int, seed: int) -> Outcome:
    sp, B = problem.space, problem.budgets
    q_each = q // N_BUDGETS
    t0 = time.perf_counter()
    chosen = np.full(N_BUDGETS, -1, dtype=np.int64)
    lookups = 0
    queries = 0.0
    if method == "best-measured":
        if q:
            rest = np.setdiff1d(np.arange(len(problem.idx)), problem.code_of(table.indices))
            extra = np.random.default_rng(10_000 + seed).choice(rest, q, replace=False)
            table = table.extended(problem.idx[extra], problem.acc[extra], problem.lat[extra])
            lookups = q
        for k, b in enumerate(B):
            chosen[k] = problem.code_of(np.array(best_measured(sp, table, b).indices))[0]
    elif method == "predictor-argmax":
        pred_all = score(problem.idx)
        chosen = best_within_budgets(pred_all, problem.lat, B)
        queries = float(len(problem.idx))
    else:
        for k, b in enumerate(B):
            s = seed * 1000 + k
            if method == "random":
                r = random_search(sp, score, problem.latency_fn, b, share, seed=s)
            elif method == "evolution":
                r = evolutionary_search(sp, score, problem.latency_fn, b, share, population=min(100, share), seed=s)
            else:
                batch = 64
                r = policy_gradient_search(sp, score, problem.latency_fn, b, method.split("-")[1],
                                           steps=max(1, share // batch), batch=batch, seed=s)
            r = refine_with_measurements(sp, r, table, problem.true_acc_fn, problem.latency_fn, q_each) if q_each else r
            chosen[k] = problem.code_of(np.array(r.indices))[0]
            lookups += r.true_queries
            queries += r.queries / N_BUDGETS
    return Outcome(chosen, queries, lookups, time.perf_counter() - t0)


# -- driver ----------------------------------------------------------------------------------------
def _setting(text: str) -> tuple[str, object]:
    """``FIELD=VALUE`` for ``--set``: a TrainConfig field and a JSON number, boolean or string."""
    from pnag.search import TrainConfig

    name, sep, raw = text.partition("=")
    names = sorted(f.name for f in dataclasses.fields(TrainConfig) if f.name not in OWN_FIELDS)
    if not sep or name not in names:
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: FIELD=VALUE with FIELD one of {', '.join(names)}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name, value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--device", default="raspi4")
    p.add_argument("--eval-budget", type=int, nargs="+", default=[0, 100])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--train-samples", type=int, default=1000)
    p.add_argument("--samples", type=int, default=1, help="PNAG generate --samples K")
    p.add_argument("--generator-samples", type=int, default=16,
                   help="K draws of which the generator's own answer is the best (pnag-generator)")
    p.add_argument("--predictor-target", choices=TARGETS, default=None,
                   help="what the accuracy predictor regresses (default: pnag train's, log-gap)")
    p.add_argument("--set", type=_setting, action="append", default=[], metavar="FIELD=VALUE",
                   help="override a TrainConfig field of PNAG's runs, e.g. choice_calibration=0 (repeatable)")
    p.add_argument("--under-load", action="store_true", help="label wall times as measured under load")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-o", "--output", type=Path, default=None)
    args = p.parse_args(argv)

    problem = Problem(args.dataset, args.device)
    try:  # a bad --set value fails here, not after the first seed's baselines
        pnag_config(problem, 0, 0, args)
    except PnagError as exc:
        p.error(f"--set: {exc}")
    rows: dict[tuple[str, int], list[tuple[dict, Outcome]]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pnag-nb201-") as tmp:
        for seed in _progress(args.seeds, "seeds", args.no_progress):
            table = problem.measured(args.train_samples, seed)
            # PNAG without an eval budget first: its accuracy predictor is the one every baseline uses.
            out0, own0, run0 = run_pnag(problem, seed, 0, Path(tmp), args)
            score = score_fn_of_run(run0)
            fit_s = float(run0.metrics["seconds"]["predictors"])
            notes.append(f"seed {seed}: accuracy-predictor fit (shared by all methods) {fit_s:.1f} s")
            for q in args.eval_budget:
                if q == 0:
                    out, own = out0, own0
                else:
                    out, own, _ = run_pnag(problem, seed, q, Path(tmp), args)
                rows.setdefault(("pnag", q), []).append((problem.score(out.chosen), out))
                rows.setdefault(("pnag-generator", q), []).append((problem.score(own.chosen), own))
                origins = ", ".join(f"{k} {v}" for k, v in out.extra["origins"].items())
                notes.append(f"pnag Q={q}: {out.extra['total_queries']:,} queries in training; final picks by origin: "
                             f"{origins}; already-measured cells: {out.extra['measured_wins']} of {N_BUDGETS} "
                             f"(generator alone: {own.extra['own_measured']}) (seed {seed})")
                share = equal_share(int(out.extra["total_queries"]), N_BUDGETS)
                for m in args.methods:
                    if m in ("pnag", "pnag-generator") or (m == "predictor-argmax" and q):
                        continue
                    res = run_baseline(m, problem, table, score, share, q, seed)
                    res.extra["fit_s"] = fit_s
                    rows.setdefault((m, q), []).append((problem.score(res.chosen), res))

    text = render(problem, args, rows, sorted(set(notes)), argv)
    print(text)
    out_path = args.output or RESULTS / f"nb201_{args.dataset}_{args.device}.md"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_path, text)
    print(f"wrote {out_path}", file=sys.stderr)
    return 0


def render(problem: Problem, args, rows, notes: list[str], argv) -> str:
    cmd = "python benchmarks/nb201_regret.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                   else sys.argv[1:]))
    load = " (under load: 2 shared cores busy with other work; re-run on a quiet machine)" if args.under_load else ""
    lines = [
        f"# NAS-Bench-201 regret: {problem.dataset} / {problem.device}",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; date {time.strftime('%Y-%m-%d')}{load}.  ",
        f"Seeds: {', '.join(map(str, args.seeds))} ({len(args.seeds)}); measured cells per seed: "
        f"{args.train_samples}; budgets: {N_BUDGETS} at the 5 %..95 % latency quantiles "
        f"({problem.budgets[0]:.3f}..{problem.budgets[-1]:.3f} ms); accuracy predictor regresses "
        f"{args.predictor_target or 'log-gap (the default)'}"
        + (f"; PNAG settings: {', '.join(f'{k}={v}' for k, v in args.set)}" if args.set else "") + ".",
        "",
        "Regret in accuracy points (best true accuracy within the budget minus the chosen cell's), over "
        "feasible choices; feasibility = share of the 20 budgets whose choice truly fits. Mean regret: "
        "mean over seeds (± sd across seeds); max: worst over budgets and seeds; unseen: mean regret on "
        "the 10 odd-numbered budgets. Queries: accuracy-predictor (or ranker) queries per budget; "
        "look-ups: true accuracies read beyond the measured cells (all budgets). Wall: seconds for all "
        "20 budgets (PNAG: train + generate; searches: the 20 searches alone, on PNAG's predictor, whose fit "
        "took the time in the notes), mean over seeds.",
        "",
        "| method | eval budget | feasible % | mean regret | max regret | unseen-budget regret | queries/budget "
        "| look-ups | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for q in args.eval_budget:
        for m in METHODS:
            res = rows.get((m, q))
            if not res:
                continue
            sc = [r for r, _ in res]
            outs = [o for _, o in res]
            means = np.array([s["mean_regret"] for s in sc])
            lines.append(
                f"| {m} | {q} | {100 * np.mean([s['feasible'] for s in sc]):.1f} | {np.nanmean(means):.3f} ± "
                f"{np.nanstd(means):.3f} | {np.nanmax([s['max_regret'] for s in sc]):.3f} | "
                f"{np.nanmean([s['mean_regret_unseen'] for s in sc]):.3f} | "
                f"{np.mean([o.queries_per_budget for o in outs]):,.0f} | {np.mean([o.true_lookups for o in outs]):.0f} | "
                f"{np.mean([o.wall_s for o in outs]):.1f} |")
    paired = []
    for q in args.eval_budget:  # both rows hold one entry per seed, in the order of --seeds
        a, b = rows.get(("pnag", q)), rows.get(("best-measured", q))
        if a and b:
            d = np.array([x["mean_regret"] for x, _ in a]) - np.array([x["mean_regret"] for x, _ in b])
            paired.append(f"- Q={q}: pnag - best-measured, mean regret per seed: "
                          f"{', '.join(f'{v:+.3f}' for v in d)}; mean {np.nanmean(d):+.3f} ± {np.nanstd(d):.3f} (sd)")
    if paired:
        lines += ["", "Paired by seed (both use the same measured cells of a seed):", *paired]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
