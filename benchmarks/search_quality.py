"""Search quality with an exact objective: pnag (one run for all budgets) against per-budget search.

    python benchmarks/search_quality.py mbv3 [--budgets 15 17.5 ...] [--seeds 0 1 2]
    python benchmarks/search_quality.py nb201 [--pairs cifar10:raspi4 ...] [--seeds 0 1 2]

The objective is exact, so predictor error is out of the way and only the search is measured.

* ``mbv3``: once-for-all MobileNetV3 at width 1.2 with the input resolution searched; accuracy is the
  published once-for-all predictor (``ofa-predictor``), latency the Note10 table (``lut:note10``).
  Per budget (ms): the predicted accuracy (%) and table latency of pnag's answer (``Run.generate``),
  of the generator's own answer (``mode="generator"``: best of ``--generator-samples`` draws), of
  per-budget evolution at once-for-all's published settings (``EVOLUTION_PEER``: population 100,
  500 generations, parents 25 %, mutation probability 0.1, mutation ratio 0.5, resolution searched)
  and of random search with as many queries as that evolution. Wall time and objective queries of
  each, in one run on one machine.
* ``nb201``: NAS-Bench-201 with the whole accuracy table as the objective (``nb201-exact:DATASET``:
  there is no measured pool to pick from), 20 budgets at the 5-95 % latency quantiles; regret (points)
  of the generator's own answer and of pnag's answer, and feasibility under the true latency.

Every pnag setting can be overridden with ``--set FIELD=VALUE`` (TrainConfig fields). Writes
``benchmarks/results/search_quality_<part>.md`` (and a PNG for mbv3) atomically.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pnag._io import write_text_atomic  # noqa: E402
from pnag.search import TrainConfig, train  # noqa: E402
from pnag.search.config import SCHEDULES  # noqa: E402
from pnag.search.baselines import EVOLUTION_PEER, evolution_queries, evolutionary_search, random_search  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MBV3_BUDGETS = (15, 17.5, 20, 25, 27.5, 30, 35, 37.5, 40, 45, 47.5, 50, 55, 57.5, 60)
NB201_PAIRS = ("cifar10:raspi4", "cifar100:pixel3", "ImageNet16-120:titanx_1")


def _setting(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: FIELD=VALUE")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def _header(title: str, argv, args) -> list[str]:
    cmd = "python benchmarks/search_quality.py " + " ".join(shlex.quote(a) for a in argv)
    return [f"# {title}", "", f"Command: `{cmd}`  ",
            f"Machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; date {time.strftime('%Y-%m-%d')}.  ",
            f"Seeds: {', '.join(map(str, args.seeds))}"
            + (f"; pnag settings: {', '.join(f'{k}={v}' for k, v in args.set)}" if args.set else "") + ".", ""]


# -- MobileNetV3 -------------------------------------------------------------------------------------
def mbv3(args, argv) -> str:
    from pnag.sources import VectorLatency, get_latency_source

    budgets = [float(b) for b in args.budgets]
    lo, hi = min(budgets), max(budgets)
    peer = dict(EVOLUTION_PEER, generations=args.generations)
    q_evo = evolution_queries(peer["population"], peer["generations"], peer["parent_ratio"])
    res: dict[str, list] = {m: [] for m in ("pnag", "pnag-generator", "evolution", "random")}
    walls: dict[str, list] = {m: [] for m in res}
    queries: dict[str, list] = {m: [] for m in res}
    note = ""
    origins: dict[str, int] = {}  # where pnag's answers came from (Generation.origin), all seeds and budgets
    for seed in args.seeds:
        cfg = TrainConfig(space="mbv3", accuracy="ofa-predictor", latency="lut:note10", budgets=(lo, hi), seed=seed,
                          **dict(args.set))
        with tempfile.TemporaryDirectory(prefix="pnag-sq-") as tmp:
            t0 = time.perf_counter()
            run = train(cfg, Path(tmp) / "run", progress=False)
            t_train = time.perf_counter() - t0
            acc_model, n_gen = run.models.acc_model, [0]

            def counted(idx):  # the objective queries of generate (candidates, neighbours, hill climbing)
                n_gen[0] += len(idx)
                return acc_model(idx)

            run.models.acc_model = counted
            t1 = time.perf_counter()
            gens = run.generate(budgets, samples=args.samples)
            t_gen = time.perf_counter() - t1
            run.models.acc_model = acc_model
            t2 = time.perf_counter()
            own = run.generate(budgets, samples=args.generator_samples, mode="generator")
            t_own = time.perf_counter() - t2
        note = run.metrics["data"].get("resolution_note", "")
        space = run.space
        pred = run.acc_source.model
        vl = VectorLatency(space, get_latency_source("lut:note10", space))
        n_train = int(sum(run.metrics.get("queries", {}).values())) + (cfg.ranker_pool if run.config.reward == "pareto"
                                                                        else 0)
        schedule = {k: getattr(run.config, k) for k in SCHEDULES[run.config.schedule]}
        schedule_name = run.config.schedule
        res["pnag"].append([(g.predicted_accuracy, g.predicted_latency_ms) for g in gens])
        for g in gens:
            origins[g.origin] = origins.get(g.origin, 0) + 1
        res["pnag-generator"].append([(g.predicted_accuracy, g.predicted_latency_ms) for g in own])
        walls["pnag"].append(t_train + t_gen)
        walls["pnag-generator"].append(t_train + t_own)
        queries["pnag"].append(n_train + n_gen[0])
        queries["pnag-generator"].append(n_train)

        def score(idx):
            return pred(torch.as_tensor(idx)).double().numpy()

        def lat(idx):
            return vl(torch.as_tensor(idx)).numpy()

        for method in ("evolution", "random"):
            t = time.perf_counter()
            out, q = [], 0
            for k, b in enumerate(budgets):
                s = seed * 1000 + k
                if method == "evolution":
                    r = evolutionary_search(space, score, lat, b, q_evo, population=peer["population"],
                                            parent_ratio=peer["parent_ratio"], mutation_ratio=peer["mutation_ratio"],
                                            mutate_prob=peer["mutate_prob"], seed=s)
                else:
                    r = random_search(space, score, lat, b, q_evo, seed=s)
                out.append((r.predicted_accuracy if r.feasible else float("nan"), r.predicted_latency_ms))
                q += r.queries
            res[method].append(out)
            walls[method].append(time.perf_counter() - t)
            queries[method].append(q)
        print(f"seed {seed}: pnag {walls['pnag'][-1]:.1f} s, evolution {walls['evolution'][-1]:.1f} s", file=sys.stderr)

    acc = {m: np.array([[a for a, _ in row] for row in v]) for m, v in res.items()}  # (seeds, budgets)
    latm = {m: np.array([[la for _, la in row] for row in v]) for m, v in res.items()}
    lines = _header("Search quality, exact objective: MobileNetV3 w1.2, ofa-predictor x lut:note10", argv, args)
    why = "chosen by train() for an exact objective" if schedule_name == "fast" else "the published one"
    lines += [f"pnag's schedule: {schedule_name} ({why}; {', '.join(f'{k}={v}' for k, v in schedule.items())}; "
              "pnag.search.config.SCHEDULES).", "",
              f"Resolution: {note}. Evolution: once-for-all's published settings ({peer['population']} x "
              f"{peer['generations']} generations, {q_evo:,} queries per budget), per budget; random: as many "
              "queries per budget. Accuracy: the predictor's top-1 % (mean over seeds); latency: the table's ms "
              "(mean over seeds); pnag - evolution: mean of per-seed differences (points).", "",
              "| budget ms | pnag acc | pnag ms | generator acc | generator ms | evolution acc | evolution ms | "
              "random acc | pnag - evolution | generator - evolution |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, b in enumerate(budgets):
        d = acc["pnag"][:, k] - acc["evolution"][:, k]
        dg = acc["pnag-generator"][:, k] - acc["evolution"][:, k]
        lines.append(f"| {b:g} | {acc['pnag'][:, k].mean():.3f} | {latm['pnag'][:, k].mean():.2f} | "
                     f"{acc['pnag-generator'][:, k].mean():.3f} | {latm['pnag-generator'][:, k].mean():.2f} | "
                     f"{acc['evolution'][:, k].mean():.3f} | {latm['evolution'][:, k].mean():.2f} | "
                     f"{np.nanmean(acc['random'][:, k]):.3f} | {d.mean():+.3f} | {dg.mean():+.3f} |")
    within = {m: float(np.mean(latm[m] <= np.array(budgets)[None, :] + 1e-9)) for m in res}
    lines += ["", "| method | mean accuracy % | mean vs evolution | worst budget vs evolution | within budget % | "
              "objective queries (all budgets) | wall s (all budgets) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for m in res:
        diff = (acc[m] - acc["evolution"]).mean(0)
        lines.append(f"| {m} | {np.nanmean(acc[m]):.3f} | {np.nanmean(diff):+.3f} | {np.nanmin(diff):+.3f} | "
                     f"{100 * within[m]:.0f} | {np.mean(queries[m]):,.0f} | {np.mean(walls[m]):.1f} |")
    ratio = np.mean(walls["pnag"]) / np.mean(walls["evolution"])
    lines += ["", f"pnag (train + generate all {len(budgets)} budgets) took {ratio:.3f} of the wall time of the "
              f"{len(budgets)} evolution searches, measured in the same run (after a warm-up: torch's first optimizer "
              "imports torch._dynamo, about 1 s, paid once per process). pnag's queries: the generator stage's "
              "objective evaluations (its draws and archive mutants), plus the ranker's pool when it trains one, "
              "plus generate's (its candidates, their neighbours and the hill climbing; not for the generator's own "
              "answer). Where pnag's answers came from (`origin`, all budgets and seeds): "
              + ", ".join(f"{k} {v}" for k, v in sorted(origins.items())) + "."]
    png = (args.output.with_suffix(".png") if args.output else args.output_dir / "search_quality_mbv3.png")
    if not args.no_write:
        png.parent.mkdir(parents=True, exist_ok=True)
        _plot_mbv3(budgets, acc, png)
    return "\n".join(lines) + "\n"


def _plot_mbv3(budgets, acc, path: Path) -> None:
    from matplotlib.figure import Figure

    from pnag._io import save_figure_atomic

    fig = Figure(figsize=(7, 4.2), dpi=120)
    ax = fig.subplots()
    ref = np.nanmean(acc["evolution"], 0)
    for m, style in (("pnag", "o-"), ("pnag-generator", "s--"), ("evolution", "k-"), ("random", ":")):
        ax.plot(budgets, np.nanmean(acc[m], 0) - ref, style, label=m, ms=4)
    ax.axhline(-0.1, color="C3", lw=0.8, ls="--", label="-0.1 point")
    ax.set_xlabel("latency budget (ms, Note10 table)")
    ax.set_ylabel("predicted top-1 minus evolution's (points)")
    ax.set_title("Exact objective (ofa-predictor x lut:note10): answer vs per-budget evolution", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure_atomic(fig, path)


# -- NAS-Bench-201 -----------------------------------------------------------------------------------
def nb201(args, argv) -> str:
    from nb201_regret import N_BUDGETS, Problem

    lines = _header("Search quality, exact objective: NAS-Bench-201 (the whole accuracy table as the objective)",
                    argv, args)
    lines += [f"{N_BUDGETS} budgets at the 5-95 % latency quantiles of each device. Regret: best true accuracy within "
              "the budget minus the answer's (points; mean over budgets, then over seeds ± sd); feasible: the answer "
              "truly within its budget. The generator's own answer is the best of "
              f"{args.generator_samples} draws by the objective.", "",
              "| dataset / device | answer | feasible % | mean regret | max regret | wall s (train + generate) |",
              "|---|---|---:|---:|---:|---:|"]
    for pair in args.pairs:
        dataset, _, device = pair.partition(":")
        prob = Problem(dataset, device)
        lo, hi = float(prob.budgets[0]), float(prob.budgets[-1])
        scores: dict[str, list] = {"generator": [], "pnag": []}
        walls: dict[str, list] = {"generator": [], "pnag": []}
        for seed in args.seeds:
            cfg = TrainConfig(space="nb201", accuracy=f"nb201-exact:{dataset}", latency=f"nb201:{device}",
                              budgets=(lo, hi), seed=seed, **dict(args.set))
            with tempfile.TemporaryDirectory(prefix="pnag-sq-") as tmp:
                t0 = time.perf_counter()
                run = train(cfg, Path(tmp) / "run", progress=False)
                t_train = time.perf_counter() - t0
                for mode, k in (("generator", args.generator_samples), ("pnag", args.samples)):
                    t = time.perf_counter()
                    g = run.generate(list(map(float, prob.budgets)), samples=k, mode=mode)
                    walls[mode].append(t_train + time.perf_counter() - t)
                    codes = prob.code_of(np.stack([prob.space.to_indices(prob.space.parse(x.arch)) for x in g]))
                    scores[mode].append(prob.score(codes))
        for mode in ("generator", "pnag"):
            sc = scores[mode]
            means = np.array([s["mean_regret"] for s in sc])
            lines.append(f"| {dataset} / {device} | {mode} | {100 * np.mean([s['feasible'] for s in sc]):.1f} | "
                         f"{np.nanmean(means):.3f} ± {np.nanstd(means):.3f} | "
                         f"{np.nanmax([s['max_regret'] for s in sc]):.3f} | {np.mean(walls[mode]):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", choices=("mbv3", "nb201"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budgets", type=float, nargs="+", default=list(MBV3_BUDGETS), help="mbv3 budgets (ms)")
    p.add_argument("--pairs", nargs="+", default=list(NB201_PAIRS), help="nb201 DATASET:DEVICE pairs")
    p.add_argument("--generations", type=int, default=EVOLUTION_PEER["generations"],
                   help="evolution generations (published: 500)")
    p.add_argument("--samples", type=int, default=1, help="pnag generate --samples")
    p.add_argument("--generator-samples", type=int, default=16, help="draws of the generator's own answer")
    p.add_argument("--set", type=_setting, action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--output-dir", type=Path, default=RESULTS)
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="the report's file (default: OUTPUT_DIR/search_quality_PART.md); the plot goes beside it")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    # one-off process costs before any timing, for every method alike: torch's first optimizer imports
    # torch._dynamo (about 1 s here), which a long-lived process pays once, not per search
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    text = mbv3(args, argv) if args.part == "mbv3" else nb201(args, argv)
    print(text)
    if not args.no_write:
        out = args.output or args.output_dir / f"search_quality_{args.part}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
