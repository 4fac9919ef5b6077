"""``pnag train``, ``pnag generate`` and ``pnag plot``: train once, generate for any budget, look at it."""

from __future__ import annotations

import argparse
import math

from ..errors import BudgetError, PnagError
from ..predict.mlp import PRESETS, TARGETS
from ..search.config import SCHEDULES, parse_budget_range
from ..search.rewards import REWARDS
from ._common import (ACCURACY_HELP, LATENCY_HELP, MAX_ARCH_SAMPLES, MAX_DRAWS, MAX_MEASURED, ascii_float,
                      check_draws, check_output_path, non_negative_int, positive_int, print_json, removed_on_error,
                      seed_int, table, threads_int)


def parse_budget_list(text: str, what: str = "--budgets") -> list[float]:
    """``B1,B2,...`` or ``LO:HI:STEP`` (ms) -> list of budgets."""
    s = str(text).strip()
    if s.startswith("q"):
        raise BudgetError(f"{what}: {text!r}: quantiles are not allowed here; allowed: B1,B2,... or LO:HI:STEP in ms")
    try:
        if not s.isascii():
            raise ValueError
        if ":" in s:
            parts = [float(p) for p in s.split(":")]
            if len(parts) != 3:
                raise ValueError
            lo, hi, step = parts
            if not (step > 0 and lo <= hi and all(map(math.isfinite, parts))):
                raise BudgetError(f"{what}: {text!r}; allowed: LO:HI:STEP with LO <= HI and STEP > 0 (ms)")
            n = int(math.floor((hi - lo) / step + 1e-9)) + 1
            if n > 100_000:
                raise BudgetError(f"{what}: {text!r} gives {n} budgets; allowed: at most 100000")
            return [round(lo + i * step, 10) for i in range(n)]
        vals = [float(p) for p in s.split(",") if p.strip()]
        if not vals:
            raise ValueError
    except ValueError:
        raise BudgetError(f"{what}: {text!r} is not a budget list; allowed: B1,B2,... or LO:HI:STEP in ms") from None
    bad = [v for v in vals if not math.isfinite(v) or v <= 0]
    if bad:
        raise BudgetError(f"{what}: {bad[0]!r} is not a budget; allowed: positive latencies in ms")
    return vals


def parse_budgets_any(text: str, what: str = "--budgets") -> tuple[list[float], bool]:
    """Budgets in ms (``B1,B2,...``, ``LO:HI:STEP``) or quantiles of the device's latency over the space
    (``q0.1,q0.5,...``, ``qLO:qHI:STEP``; fractions in [0, 1]) -> (values, whether quantiles)."""
    s = str(text).strip()
    if not s.startswith("q"):
        return parse_budget_list(s, what), False
    wrong = BudgetError(f"{what}: {text!r} is not a list of quantiles; allowed: q0.1,q0.5,... or qLO:qHI:STEP "
                        "with quantiles in [0, 1]")
    parts = s.split(":")
    try:
        if not s.isascii():
            raise ValueError
        if len(parts) == 3 and parts[0].startswith("q") and parts[1].startswith("q"):
            vals = parse_budget_list(f"{parts[0][1:]}:{parts[1][1:]}:{parts[2]}", what)
        elif len(parts) == 1 and all(p.strip().startswith("q") for p in s.split(",") if p.strip()):
            vals = [float(p.strip()[1:]) for p in s.split(",") if p.strip()]
        else:
            raise ValueError
    except (ValueError, BudgetError):
        raise wrong from None
    bad = [v for v in vals if not 0 <= v <= 1]
    if bad:
        raise BudgetError(f"{what}: q{bad[0]:g} is not a quantile; allowed: q0..q1")
    return vals, True


def cmd_train(args: argparse.Namespace) -> int:
    from ..search import TrainConfig, train

    (lo, hi), unit = parse_budget_range(args.budgets)
    kw = dict(space=args.space, accuracy=args.accuracy, latency=args.latency, budgets=(lo, hi), budget_unit=unit,
              train_samples=args.train_samples, latency_samples=args.latency_samples, reward=args.reward,
              eval_budget=args.eval_budget, seed=args.seed, schedule=args.schedule)
    if args.steps is not None:
        kw["steps"] = args.steps
    if args.predictor_preset is not None:
        kw["predictor_preset"] = args.predictor_preset
    if args.predictor_target is not None:
        kw["predictor_target"] = args.predictor_target
    if args.width is not None and args.space != "mbv3":
        raise PnagError(f"--width: {args.width}; allowed only with --space mbv3")
    if args.resolution is not None and args.resolutions is not None:
        raise PnagError("--resolution and --resolutions: give one; allowed: --resolution R (fixed) or "
                        "--resolutions R1,R2,... (searched)")
    if args.resolution is not None:
        kw["resolution"] = args.resolution
        kw["resolutions"] = (args.resolution,) if args.space == "mbv3" else None
    if args.resolutions is not None:
        kw["resolutions"] = parse_resolutions(args.resolutions)
    if args.width is not None and args.space == "mbv3":
        from ..space.mbv3 import check_width

        kw["width"] = check_width(args.width, "--width")
    config = TrainConfig(**kw)
    check_output_path(args.output, "-o/--output", folder=True)
    with removed_on_error(args.output):
        run = train(config, args.output, progress=not args.quiet, threads=args.threads)
    m = run.metrics
    acc = m.get("predictors", {}).get("accuracy")
    lines = [f"run: {args.output}", f"data: {m['data']['n']} architectures ({m['data']['note']})"]
    if unit == "ms":
        lines.append(f"budgets: {lo:g}..{hi:g} ms; fastest architecture {m['min_latency_ms']:.4g} ms")
    else:
        lines.append(f"budgets: q{lo:g}..q{hi:g}, quantiles of each device's latency; {len(m['devices'])} "
                     f"device{'s' if len(m['devices']) > 1 else ''} (one generator, conditioned on the device):")
        lines += [f"  {d['latency_source']}: {d['budget_range_ms'][0]:.4g}..{d['budget_range_ms'][1]:.4g} ms, fastest "
                  f"architecture {d['min_latency_ms']:.4g} ms (quantiles over {d['quantiles_over']})"
                  for d in m["devices"]]
    if m["data"].get("resolution_note"):
        lines.append(f"input: {m['data']['resolution_note']}")
    if run.config.schedule == "fast":
        lines.append("schedule: fast, for an exact objective (the generator's reward is the objective itself, no "
                     "ranker; the archive's evolution and hill climbing at generate do most of the work); "
                     "--schedule full for the published one")
    else:
        lines.append(f"schedule: full (as published; reward {run.config.reward})")
    if acc:
        unit = "points of top-1 %" if m["data"].get("accuracy_unit", "%") == "%" else "score units"
        lines.append(f"accuracy predictor (held out): RMSE {acc['rmse']:.3f} {unit}, Kendall tau "
                     f"{acc['kendall_tau']:.3f}")
    if "ranker" in m:
        lines.append(f"ranker pair accuracy (held-out architectures): {m['ranker']['pair_accuracy']:.3f}")
    for r in m.get("eval", []):  # --eval-budget: what each look-up round measured
        if r.get("measured"):
            lines.append(f"eval round {r['round']}: {r['measured']} architectures measured, mean accuracy "
                         f"{r['mean_true']:.2f} % measured against {r['mean_predicted']:.2f} % predicted")
        else:
            lines.append(f"eval round {r['round']}: 0 architectures measured (no new proposal within the budgets)")
    lines.append(f"time: {sum(v for k, v in m['seconds'].items() if k != 'total_this_session'):.1f} s")
    print("\n".join(lines))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from ..search import Run

    budgets, quantiles = parse_budgets_any(args.budget if args.budget is not None else args.budgets,
                                           "--budget" if args.budget is not None else "--budgets")
    check_draws(len(budgets), args.samples)
    if args.csv is not None:
        check_output_path(args.csv, "--csv")
    if args.max_measurements is not None and not args.verify:
        raise PnagError(f"--max-measurements: {args.max_measurements} without --verify; allowed: with --verify (it "
                        "caps the networks measured on the device)")
    run = Run.load(args.run)
    if args.verify:
        from ..search.verify import adapted_model

        adapted_model(args.latency)  # refuses anything but an adapted: model up front
    view = run.for_device(args.latency)  # the device served: the run's own, or the one of --latency
    if quantiles:
        budgets = [float(b) for b in view.quantile_budgets(budgets, args.latency)]
    mode = "generator" if args.generator_only else "pnag"
    if args.verify:
        gens = run.generate(budgets, samples=args.samples, seed=args.seed, mode=mode, latency=args.latency, verify=True,
                            max_measurements=args.max_measurements)
    else:
        gens = view.generate(budgets, samples=args.samples, seed=args.seed, mode=mode)
    if args.csv is not None:
        gens.to_csv(args.csv)
    if args.json:
        print_json(gens.to_json())
    else:
        if args.latency is not None or run.config.device_conditioned:
            print(device_line(run, view))
        print(table(gens.table_rows(), gens.columns()))
        if gens.measurements is not None:
            print(f"verified on the device: {gens.measurements} network(s) measured now, added to {args.latency}; "
                  f"{sum(g.latency_is == 'measured' for g in gens)} of {len(gens)} answers are measured networks")
    return 0


def device_line(run, view) -> str:
    """The device an answer is for, and whether the run was trained on it."""
    name = view.served or view.config.latency
    if view is run or view.trained_on:
        return f"device: {name} (trained on)"
    return (f"device: {name} (not trained on: served through its latency source; the generator reads its "
            f"signature, the choice is made under its latency)")


def parse_resolutions(text: str) -> tuple[int, ...]:
    """``R1,R2,...`` (pixels) -> a sorted tuple; each checked against the space."""
    from ..space.mbv3 import check_resolutions

    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    return check_resolutions(parts, "--resolutions")


def cmd_plot(args: argparse.Namespace) -> int:
    from ..search import Run
    from ..search.plot import plot_run

    check_output_path(args.output, "-o/--output")
    if (args.run is None) == (args.run_flag is None):
        raise PnagError(f"plot: the run given {'twice' if args.run else 'nowhere'}; allowed: pnag plot RUN or "
                        "pnag plot --run RUN")
    run = Run.load(args.run or args.run_flag)
    if args.latency is not None or run.config.device_conditioned:  # one device's view: its ms, table and answers
        run = run.for_device(args.latency if args.latency is not None else run.latencies[0])
    print(plot_run(run, args.output))
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train predictors, ranker and one budget-conditioned generator",
                       description="Train once for a latency budget range (ms); resumes an interrupted run in -o.")
    p.add_argument("--space", choices=("mbv3", "nb201"), default="mbv3")
    p.add_argument("--accuracy", default="dataset:ofa-mbv3-w1.0-imagenet",
                   help=ACCURACY_HELP)
    p.add_argument("--latency", default="lut:i7-8700k",
                   help=LATENCY_HELP + " (default lut:i7-8700k, a published table, so that a run is the same on every "
                                       "machine; pnag search defaults to local, this machine); SRC1,SRC2,...: one "
                                       "generator for several devices, conditioned on the device")
    p.add_argument("--budgets", required=True,
                   help="budget range LO:HI in ms (one device), or qLO:qHI: quantiles of each device's latency over "
                        "the space, e.g. q0.05:q0.95")
    p.add_argument("--train-samples", type=positive_int("--train-samples", MAX_ARCH_SAMPLES), default=None)
    p.add_argument("--latency-samples", type=positive_int("--latency-samples", MAX_ARCH_SAMPLES), default=None)
    p.add_argument("--reward", choices=REWARDS, default=None,
                   help="the generator's reward: pareto (the Pareto-aware ranker, as published), objective (the run's "
                        "objective directly), mnas or tunas (default: the schedule's)")
    p.add_argument("--schedule", choices=("auto", *SCHEDULES), default="auto",
                   help="the generator stage's settings: full (as published), fast (for an exact objective: the "
                        "objective as the reward, a smaller generator, more archive evolution), auto (default: fast "
                        "with --space mbv3 when the accuracy source is itself a model, such as ofa-predictor, "
                        "else full)")
    p.add_argument("--eval-budget", type=non_negative_int("--eval-budget", MAX_ARCH_SAMPLES), default=0)
    p.add_argument("--seed", type=seed_int(), default=0, help="random seed, 0..2**63-1 (default 0)")
    p.add_argument("--threads", type=threads_int(), default=None,
                   help="torch threads while training (default: torch's, all cores; 1 is faster on a busy machine)")
    p.add_argument("--steps", type=positive_int("--steps"), default=None, help="policy-gradient steps")
    p.add_argument("--predictor-preset", choices=PRESETS, default=None,
                   help="accuracy/latency predictors: fast (default: 5-member bootstrap ensemble) or published "
                        "(the published PNAG MLP: 3 x 512, SGD, 1000 epochs, one member)")
    p.add_argument("--predictor-target", choices=TARGETS, default=None,
                   help="what the accuracy predictor regresses (default for an accuracy in %%: log-gap on nb201, "
                        "i.e. -log(best measured + 3 - accuracy %%), log-error on mbv3, i.e. -log(100.5 - accuracy "
                        "%%); identity for a proxy score)")
    p.add_argument("--width", default=None, help="mbv3 width 1.0 or 1.2 (default 1.0 with the w1.0 dataset)")
    p.add_argument("--resolution", type=positive_int("--resolution"), default=None,
                   help="mbv3: one fixed input resolution (pixels)")
    p.add_argument("--resolutions", default=None,
                   help="mbv3: input resolutions to search, R1,R2,... (default: 160,176,192,208,224 where both "
                        "sources cover several of them, else fixed at 224; the run says which)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", required=True, help="run directory")
    p.set_defaults(func=cmd_train)

    g = sub.add_parser("generate", help="the architecture a trained run chooses for each budget")
    g.add_argument("--run", required=True)
    g.add_argument("--latency", default=None,
                   help="the device to serve: a latency source the run was trained on, or a new one (" + LATENCY_HELP
                        + "); default: the run's own device (a run of several devices needs it)")
    grp = g.add_mutually_exclusive_group(required=True)
    grp.add_argument("--budget", type=_one_budget, help="one budget in ms, or qQ: the quantile Q of the device's latency")
    grp.add_argument("--budgets", help="B1,B2,... or LO:HI:STEP (ms), or quantiles of the device's latency over the "
                                       "space: q0.1,q0.5,... or qLO:qHI:STEP")
    g.add_argument("--samples", type=positive_int("--samples", MAX_DRAWS, " (memory)"), default=1,
                   help=f"K generator draws per budget, at most {MAX_DRAWS}; the best predicted-feasible one is "
                        "returned")
    g.add_argument("--seed", type=seed_int(), default=0, help="random seed, 0..2**63-1 (default 0)")
    g.add_argument("--generator-only", action="store_true",
                   help="the generator's own answer: the best of its --samples draws by the run's objective "
                        "(default: the best of the draws, their neighbours, the run's archive and measured "
                        "architectures; a device served through --latency gets an archive of its own first, "
                        "evolved under its latency: a few seconds)")
    g.add_argument("--verify", action="store_true",
                   help="with --latency adapted:FILE: measure the answers on the model's device (its target), "
                        "refit the model and serve again until every answer is a measured network within its "
                        "budget; the measurements are added to FILE")
    g.add_argument("--max-measurements", type=non_negative_int("--max-measurements", MAX_MEASURED), default=None,
                   metavar="N", help="with --verify: measure at most N networks on the device in this call, those "
                                     "left once the answers are settled searching for better ones where a network "
                                     "the model prices over a budget may truly fit it (default: 4 per budget, no "
                                     "search)")
    g.add_argument("--json", action="store_true")
    g.add_argument("--csv", metavar="FILE", default=None,
                   help="also write the answers to FILE as CSV: the printed table's columns (accuracy_is and "
                        "latency_is included) at full precision")
    g.set_defaults(func=cmd_generate)

    pl = sub.add_parser("plot", help="plot accuracy vs latency of a run (PNG)")
    pl.add_argument("run", nargs="?", help="the run directory (or --run RUN, as pnag generate takes it)")
    pl.add_argument("--run", dest="run_flag", metavar="RUN", default=None, help="the run directory")
    pl.add_argument("--latency", default=None,
                    help="the device to plot for (default: the run's own, or the first of a run of several devices)")
    pl.add_argument("-o", "--output", required=True)
    pl.set_defaults(func=cmd_plot)


def _one_budget(text: str) -> str:
    if str(text).strip().startswith("q"):
        return str(text).strip()
    v = ascii_float("--budget", "one latency in ms")(text)
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: a positive latency in ms")
    return repr(v)
