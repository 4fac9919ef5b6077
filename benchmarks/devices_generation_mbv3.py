"""Generation on held-out GPU settings of ``help-ofa-gpu`` (issue 17): one device-conditioned MobileNetV3 run
against single-device runs.

    python benchmarks/devices_generation_mbv3.py [--held-out DEV ...] [--train-devices DEV ...] [--seeds S ...]
        [--methods M ...] [--k 10] [--serve adapted|truth] [--serve-steps N] [--set FIELD=VALUE ...] [--workdir DIR] [-o FILE]

Setting: MobileNetV3 width 1.2, accuracy the published once-for-all predictor (``ofa-predictor``, the
objective itself: no accuracy is measured, so answers are judged by their predicted accuracy), input
resolution searched over what both sources cover. Leave-one-out over the 12 GPU settings of ``help-ofa-gpu``
(``--held-out``, default all 12; the training devices of each are the others, or ``--train-devices``).

Ground truth. ``help-ofa-gpu`` measured 5,000 subnets on each setting; ``table:help-ofa-gpu:GPU_BATCH``
prices those 5,000 and refuses any other network (``pnag train`` refuses it as a device for that reason),
while a run proposes networks outside them. A device's *true latency* here is therefore its linear latency
model (:class:`pnag.latency.adapt.LatencyFeatures`) fitted by least squares to all 5,000 of its measurements
(``benchmarks/devices.py``'s "all measured" model; its Spearman rho and median error against the 5,000 are
in the output). Feasibility is judged under that model, not measured. Every run's own devices are these
models too (the training devices of the multi-device run, the device of a single-device run).

On each held-out device: ``--budgets`` (20) budgets at its ``--quantiles`` (5 %..95 %) latency quantiles
(of the true latency over ``--quantile-samples`` architectures of the searched space drawn with seed 0).
Methods:

* (a) ``multi``: one run trained on the other devices (budgets ``qLO:qHI``, ``--quantile-range``),
  serving the held-out device through ``adapted:FILE`` built from ``--k`` of its measured subnets with
  the training devices' tables as the prior (``pnag latency adapt --from table:help-ofa-gpu:... --target
  table:help-ofa-gpu:HELD --samples K --seed S``, the same library call); ``--serve truth``: through the
  device's true latency instead (the latency model's share of the gap);
* ``multi-verified``: the same run served through the same ``adapted:`` model (a per-seed copy of its file:
  verifying writes its measurements back), each answer *verified* on the device (``Run.generate(...,
  verify=SOURCE)``, :mod:`pnag.search.verify`): "measuring" a network here is pricing it with the held-out
  device's true latency (the judge below), the model is refitted with it and the budgets are served again
  until each answer is a measured network within its budget; the networks measured per call are reported
  beside the K (only with ``--serve adapted``); with ``--max-measurements N`` the call measures at most N, those
  left once the answers are settled searching for better networks (``pnag generate --verify --max-measurements``);
* (b) ``single``: a run trained for the held-out device alone on its true latency: the upper reference;
* (c) ``similar``: the run of the training device whose measured log latency over the 5,000 subnets
  correlates most with the held-out device's (chosen with the full tables: the most favourable choice),
  asked at the same quantiles of its own device; its answers scored on the held-out device.

Per method and device: feasible % (the answer's true latency within the budget) and the mean predicted
accuracy of the 20 answers (feasible or not), mean over seeds; for ``multi-verified`` also the networks
measured per call (beside the K) and the answers left unverified; the seconds of (a)'s ``generate`` call.
Resumable: runs and results are kept in ``--workdir`` (under a folder named by the training settings); a
re-run skips what is done. Writes ``benchmarks/results/devices_generation_mbv3.md`` (atomically; ``-o`` to
change) and prints it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devices import Space  # noqa: E402  (help-ofa-gpu's tables, features and each device's fit to all of them)
from devices_generation import most_similar  # noqa: E402
from nb201_regret import N_BUDGETS, _setting  # noqa: E402

from pnag._io import write_json_atomic, write_text_atomic  # noqa: E402
from pnag.errors import PnagError  # noqa: E402
from pnag.latency.adapted import AdaptedSource  # noqa: E402
from pnag.latency.validate import error_metrics  # noqa: E402
from pnag.sources.adapt import FLOOR_FRACTION  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("multi", "multi-verified", "single", "similar")
LABEL = {"multi": "(a) multi", "multi-verified": "(a') verified", "single": "(b) single", "similar": "(c) similar"}


class Truth:
    """Every device's true latency (the fit to all its measurements) and the searched space's accuracy."""

    def __init__(self, args):
        from pnag.predict.ofa import OFAAccuracyPredictor
        from pnag.sources import get_accuracy_source
        from pnag.sources.resolutions import resolve_resolutions
        from pnag.search import TrainConfig
        from pnag.space.mbv3 import MBV3Space

        self.sp = Space("help-ofa-gpu")
        self.sources = {d: self._source(d) for d in self.sp.devices}
        self.fit = {d: error_metrics(self.sources[d].latency_ms(self.sp.archs), self.sp.lat[d])
                    for d in self.sp.devices}
        any_src = self.sources[self.sp.devices[0]]
        probe = TrainConfig(space="mbv3", accuracy="ofa-predictor", latency=any_src.name, width=1.2, budgets=(1, 2))
        self.res, self.res_note = resolve_resolutions(probe, get_accuracy_source("ofa-predictor", MBV3Space(1.2)),
                                                      any_src, args.resolutions)
        self.res_note = self.res_note.replace(any_src.name, "each device's latency model")
        self.space = MBV3Space(1.2, self.res[-1], resolutions=self.res)
        self.acc = OFAAccuracyPredictor(self.space)
        self.sample = self.space.sample(args.quantile_samples, seed=0)
        lo, hi = args.quantiles
        self.q = np.linspace(lo, hi, args.budgets)

    def _source(self, device: str) -> AdaptedSource:
        """``device``'s linear model fitted to all its measured subnets, as a latency source (not a file)."""
        sp = self.sp
        src = AdaptedSource({"features": sp.features.to_dict(), "weights_ms": [float(x) for x in sp.weights[device]],
                             "floor_ms": FLOOR_FRACTION * float(sp.lat[device].min()), "device": device,
                             "measured": []})  # (no network priced at a measurement: the fit alone)
        src.name = f"fit:help-ofa-gpu:{device}"
        return src

    def budgets(self, device: str) -> np.ndarray:
        """The evaluation budgets (ms) of ``device``: its true latency's quantiles over the sampled space."""
        return np.quantile(self.sources[device].latency_ms(self.sample), self.q)

    def score(self, device: str, archs: list, budgets: np.ndarray) -> dict:
        lat = self.sources[device].latency_ms(archs)
        over = lat / budgets - 1.0
        ok = over <= 0
        return {"feasible": ok.tolist(), "acc": self.acc.predict_archs(archs).tolist(), "ms": lat.tolist(),
                "worst_excess_pct": float(100 * over[~ok].max()) if (~ok).any() else 0.0}


class Bench:
    def __init__(self, args, truth: Truth):
        self.args, self.truth = args, truth
        settings = {"set": args.set, "multi_set": args.multi_set, "q": args.quantile_range, "res": truth.res,
                    "quantiles": [args.budgets, *args.quantiles, args.quantile_samples]}
        self.work = Path(args.workdir) / hashlib.sha1(json.dumps(settings).encode()).hexdigest()[:10]
        self.work.mkdir(parents=True, exist_ok=True)
        self.cache_path = self.work / "results.json"
        self.cache = json.loads(self.cache_path.read_text()) if self.cache_path.exists() else {}
        self.runs: dict[str, object] = {}

    def save(self, key: str, value: dict) -> None:
        self.cache[key] = value
        write_json_atomic(self.cache_path, self.cache)

    def names(self, devices: list[str]):
        names = tuple(self.truth.sources[d].name for d in devices)
        return names if len(names) > 1 else names[0]

    def _train(self, key: str, cfg, devices: list[str]):
        from pnag.search import train

        if key not in self.runs:
            srcs = [self.truth.sources[d] for d in devices]
            self.runs[key] = train(cfg, self.work / key, progress=not self.args.no_progress,
                                   latency=srcs if len(srcs) > 1 else srcs[0])
        return self.runs[key]

    def multi_run(self, held: str, train_devices: list[str], seed: int):
        from pnag.search import TrainConfig

        a = self.args
        cfg = TrainConfig(space="mbv3", accuracy="ofa-predictor", latency=self.names(train_devices), width=1.2,
                          resolutions=self.truth.res, budgets=tuple(a.quantile_range), budget_unit="quantile",
                          seed=seed, **dict(a.set + a.multi_set))
        run = self._train(f"multi-without-{held}-s{seed}", cfg, train_devices)
        if a.serve_steps is not None:  # a generate-time setting: the trained run is the same
            run.config = replace(run.config, serve_steps=a.serve_steps)
        return run

    def single_run(self, device: str, seed: int):
        from pnag.search import TrainConfig

        b = self.truth.budgets(device)
        cfg = TrainConfig(space="mbv3", accuracy="ofa-predictor", latency=self.names([device]), width=1.2,
                          resolutions=self.truth.res, budgets=(float(b[0]), float(b[-1])), seed=seed,
                          **dict(self.args.set))
        return self._train(f"single-{device}-s{seed}", cfg, [device])

    def serve_spec(self, held: str, train_devices: list[str], seed: int) -> tuple[object, dict]:
        """The latency source serving ``held`` (an adapted file built now, or its true latency) and a summary."""
        if self.args.serve == "truth":
            return self.truth.sources[held], {}
        from pnag.sources.adapt import adapt_latency

        path = self.work / f"adapted-{held}-k{self.args.k}-s{seed}.json"
        key = f"adapt|{held}|{seed}|k{self.args.k}"
        if key not in self.cache or not path.is_file():
            s = adapt_latency([f"table:help-ofa-gpu:{d}" for d in train_devices], f"table:help-ofa-gpu:{held}",
                              self.args.k, str(path), seed=seed, progress=False)
            self.save(key, {k: s[k] for k in ("spearman", "median_abs_error_pct", "seconds")})
        return f"adapted:{path}", self.cache[key]

    def adapted_bias(self, held: str) -> float:
        """How far (%) the held-out device's adapted models price the sampled space above its true latency:
        the median ratio minus 1, mean over the seeds."""
        from pnag.latency.adapted import load_adapted

        truth = self.truth.sources[held].latency_ms(self.truth.sample)
        paths = [self.work / f"adapted-{held}-k{self.args.k}-s{s}.json" for s in self.args.seeds]
        return float(np.mean([100 * (np.median(load_adapted(p).latency_ms(self.truth.sample) / truth) - 1)
                              for p in paths]))

    def verified(self, held: str, train_devices: list[str], seed: int, budgets: np.ndarray) -> dict:
        """``multi-verified`` on one held-out device and seed: served through a fresh copy of the adapted file,
        the answers verified with the device's true latency."""
        run = self.multi_run(held, train_devices, seed)
        spec, _ = self.serve_spec(held, train_devices, seed)
        src = Path(spec.split(":", 1)[1])
        cap = "" if self.args.max_measurements is None else f"-m{self.args.max_measurements}"
        copy = src.with_name(f"{src.stem}-verify{cap}.json")  # (a run with another cap may share the workdir)
        shutil.copyfile(src, copy)  # verifying adds its measurements to the file: every try starts from the K
        t = time.perf_counter()
        try:
            gens = run.generate(list(map(float, budgets)), samples=self.args.samples, latency=f"adapted:{copy}",
                                verify=self.truth.sources[held], max_measurements=self.args.max_measurements)
        except PnagError as exc:  # as for (a): a budget outside the served range
            return {"feasible": [False] * len(budgets), "acc": [float("nan")] * len(budgets), "error": str(exc)[:200]}
        out = self.truth.score(held, [self.truth.space.parse(g.arch) for g in gens], budgets)
        return {**out, "generate_s": time.perf_counter() - t, "measurements": gens.measurements,
                "unverified": sum(g.latency_is != "measured" for g in gens),
                "origins": {o: sum(g.origin == o for g in gens) for o in sorted({g.origin for g in gens})}}

    def seconds(self, run) -> float:
        return float(sum(v for k, v in run.metrics["seconds"].items() if k != "total_this_session"))

    def one(self, held: str, train_devices: list[str], seed: int) -> None:
        a, truth = self.args, self.truth
        budgets = truth.budgets(held)

        def archs(gens):
            return [truth.space.parse(g.arch) for g in gens]

        key = result_key(a, "multi", held, seed)
        if "multi" in a.methods and key not in self.cache:
            run = self.multi_run(held, train_devices, seed)
            spec, adapt = self.serve_spec(held, train_devices, seed)
            try:
                t = time.perf_counter()
                gens = run.generate(list(map(float, budgets)), samples=a.samples, latency=spec)
                out = {**truth.score(held, archs(gens), budgets), "generate_s": time.perf_counter() - t}
            except PnagError as exc:  # a budget the served device's latency model puts outside its range
                out = {"feasible": [False] * len(budgets), "acc": [float("nan")] * len(budgets),
                       "error": str(exc)[:200]}
            self.save(key, {**out, "train_s": self.seconds(run), "schedule": run.config.schedule, "adapt": adapt})
        key = result_key(a, "multi-verified", held, seed)
        if "multi-verified" in a.methods and a.serve == "adapted" and key not in self.cache:
            self.save(key, self.verified(held, train_devices, seed, budgets))
        key = result_key(a, "single", held, seed)
        if "single" in a.methods and key not in self.cache:
            run = self.single_run(held, seed)
            gens = run.generate(list(map(float, budgets)), samples=a.samples)
            self.save(key, {**truth.score(held, archs(gens), budgets), "train_s": self.seconds(run),
                            "schedule": run.config.schedule})
        key = result_key(a, "similar", held, seed)
        if "similar" in a.methods and key not in self.cache:
            sim, corr = most_similar(held, train_devices, truth.sp.lat)
            run = self.single_run(sim, seed)
            gens = run.generate(list(map(float, truth.budgets(sim))), samples=a.samples)
            self.save(key, {**truth.score(held, archs(gens), budgets), "train_s": self.seconds(run),
                            "schedule": run.config.schedule, "device": sim, "corr": corr})


def parser() -> argparse.ArgumentParser:
    """This benchmark's command line (``benchmarks/verify_time.py`` adds to it)."""
    from pnag.data.readers import help_ofa_devices

    known = sorted(help_ofa_devices())
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--held-out", nargs="+", default=known, help="held-out GPU settings (default: all 12, in turn)")
    p.add_argument("--train-devices", nargs="+", default=None,
                   help="training devices (default: every setting of help-ofa-gpu other than the one held out)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--k", type=int, default=10, help="measured subnets of a held-out device for its adapted latency")
    p.add_argument("--serve", choices=("adapted", "truth"), default="adapted",
                   help="how (a) serves a held-out device: adapted:FILE from --k measurements, or its true latency")
    p.add_argument("--budgets", type=int, default=N_BUDGETS, help="budgets per held-out device")
    p.add_argument("--quantiles", type=float, nargs=2, default=[0.05, 0.95], metavar=("LO", "HI"),
                   help="the budgets' quantiles of the held-out device's true latency (fractions)")
    p.add_argument("--quantile-samples", type=int, default=4096,
                   help="architectures of the searched space (seed 0) the budget quantiles are taken over")
    p.add_argument("--quantile-range", type=float, nargs=2, default=[0.02, 0.98], metavar=("LO", "HI"),
                   help="the multi-device run's budgets qLO:qHI (default 0.02 0.98, a little wider than the budgets "
                        "asked, since a served device's quantiles come from an approximate latency model)")
    p.add_argument("--resolutions", type=int, nargs="+", default=None,
                   help="input resolutions searched (default: those both ofa-predictor and the latency models cover)")
    p.add_argument("--samples", type=int, default=1, help="generate --samples K")
    p.add_argument("--max-measurements", type=int, default=None, metavar="N",
                   help="multi-verified: the most networks one call measures, those left once the answers are settled "
                        "searching for better ones (pnag generate --verify --max-measurements N; default: pnag's, 4 "
                        "per budget and no search)")
    p.add_argument("--serve-steps", type=int, default=None, metavar="N",
                   help="(a), (a'): serve the held-out device with TrainConfig.serve_steps N (the archive's evolution "
                        "under its latency before answering; default: the run's, pnag's default)")
    p.add_argument("--set", type=_setting, action="append", default=[], metavar="FIELD=VALUE",
                   help="a TrainConfig field of every run (repeatable)")
    p.add_argument("--multi-set", type=_setting, action="append", default=[], metavar="FIELD=VALUE",
                   help="a TrainConfig field of the multi-device run only (repeatable)")
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "pnag-devices-generation-mbv3"))
    p.add_argument("--under-load", action="store_true", help="label wall times as measured under load")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-o", "--output", type=Path, default=RESULTS / "devices_generation_mbv3.md")
    return p


def parse_args(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``argv`` parsed by ``p`` (:func:`parser`) and checked: a bad value ends in ``p.error`` (exit 2)."""
    from pnag.data.readers import help_ofa_devices

    known = sorted(help_ofa_devices())
    args = p.parse_args(argv)
    unknown = [d for d in args.held_out + (args.train_devices or []) if d not in known]
    if unknown:
        p.error(f"device {unknown[0]!r} is not a setting of help-ofa-gpu; allowed: {', '.join(known)}")
    overlap = sorted(set(args.train_devices or []) & set(args.held_out))
    if overlap:
        p.error(f"device {overlap[0]!r} is both held out and a training device")
    if args.k < 2 or args.budgets < 1 or not 0 <= args.quantiles[0] <= args.quantiles[1] <= 1:
        p.error(f"--k {args.k} / --budgets {args.budgets} / --quantiles {args.quantiles}: allowed: K >= 2, "
                "budgets >= 1, 0 <= LO <= HI <= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    from pnag.data.readers import help_ofa_devices

    known = sorted(help_ofa_devices())
    args = parse_args(parser(), argv)
    truth = Truth(args)
    bench = Bench(args, truth)
    t0 = time.perf_counter()
    for seed in args.seeds:
        for held in args.held_out:
            train_devices = args.train_devices or [d for d in known if d != held]
            bench.one(held, train_devices, seed)
            print(f"[{time.perf_counter() - t0:.0f} s] seed {seed} {held}: done", file=sys.stderr)
    text = render(args, bench, argv)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output, text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


# (value, header, format); the multi-verified columns only where that method is shown
COLUMNS = [("multi feasible", "(a) feasible %", ".1f"), ("multi-verified feasible", "(a') feasible %", ".1f"),
           ("single feasible", "(b) feasible %", ".1f"), ("similar feasible", "(c) feasible %", ".1f"),
           ("multi acc", "(a) acc", ".2f"), ("multi-verified acc", "(a') acc", ".2f"), ("single acc", "(b) acc", ".2f"),
           ("similar acc", "(c) acc", ".2f"), ("a-b", "a - b", "+.2f"), ("a-b feasible", "a - b feasible", "+.2f"),
           ("a'-b", "a' - b", "+.2f"), ("c-b", "c - b", "+.2f"), ("measured", "(a') measured per call", ".1f")]


def _diff(x: list[dict] | None, y: list[dict] | None) -> float:
    """Mean over seeds of the difference of the mean accuracies of two methods' answers (points)."""
    return np.mean([np.nanmean(u["acc"]) - np.nanmean(v["acc"]) for u, v in zip(x, y)]) if x and y else float("nan")


def _num(v: float, spec: str) -> str:
    return "n/a" if not np.isfinite(v) else format(v, spec)


def result_key(args, method: str, held: str, seed: int) -> str:
    """The cache key of one method's answers on one held-out device and seed ((a) also by how it is served)."""
    serve = ("|truth" if args.serve == "truth" else f"|adapted-k{args.k}") if method.startswith("multi") else ""
    cap = f"|m{args.max_measurements}" if method == "multi-verified" and args.max_measurements is not None else ""
    steps = f"|serve{args.serve_steps}" if method.startswith("multi") and args.serve_steps is not None else ""
    return f"{method}|{held}|{seed}{serve}{cap}{steps}"


def _rows(args, cache: dict, method: str, held: str) -> list[dict] | None:
    rs = [cache.get(result_key(args, method, held, s)) for s in args.seeds]
    return rs if all(rs) else None


def render(args, bench: Bench, argv) -> str:
    cache, truth = bench.cache, bench.truth
    cmd = "python benchmarks/devices_generation_mbv3.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    load = " (under load: 2 shared cores busy with other work)" if args.under_load else ""
    settings = ", ".join(f"{k}={v}" for k, v in args.set) or "TrainConfig defaults"
    fits = [truth.fit[d] for d in args.held_out]
    serve = (f"`adapted:` from K = {args.k} measured subnets (`pnag latency adapt --from` the training devices' "
             "tables `--samples K --seed SEED`)" if args.serve == "adapted" else
             "its true latency (not K measurements)")
    verified = args.serve == "adapted" and "multi-verified" in args.methods
    columns = [c for c in COLUMNS if verified or c[0].split()[0] not in ("multi-verified", "a'-b", "measured")]
    schedules = sorted({r["schedule"] for r in cache.values() if "schedule" in r})
    lines = [
        "# Generation on held-out help-ofa-gpu GPU settings: one device-conditioned MobileNetV3 run against "
        "single-device runs",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; date {time.strftime('%Y-%m-%d')}{load}.  ",
        f"Held out in turn: {', '.join(args.held_out)}; trained on "
        + (', '.join(args.train_devices) if args.train_devices else "the other settings of help-ofa-gpu") + ".  ",
        f"Seeds: {', '.join(map(str, args.seeds))}. MobileNetV3 w1.2, accuracy `ofa-predictor` (the objective), "
        f"{truth.res_note}. Training settings of every run: {settings}"
        + (f" (generator schedule: {', '.join(schedules)})" if schedules else "")
        + (f"; of the multi-device run: {', '.join(f'{k}={v}' for k, v in args.multi_set)}" if args.multi_set else "")
        + (f"; served with serve_steps={args.serve_steps}" if args.serve_steps is not None else "")
        + f". Multi-device run trained for q{args.quantile_range[0]:g}:q{args.quantile_range[1]:g}; held-out device "
        f"served through {serve}.",
        "",
        "**Ground truth.** help-ofa-gpu measured 5,000 subnets per setting and prices no other network, but the "
        "runs propose networks outside them. A device's true latency here is its linear latency model "
        "(per layer slot: expand x kernel one-hot, and the same times (r/224)^2) fitted by least squares to all "
        "5,000 of its measurements (the \"all measured\" model of `benchmarks/devices.py`): against the 5,000 "
        f"measurements, Spearman rho {min(f['spearman_rho'] for f in fits):.3f}-"
        f"{max(f['spearman_rho'] for f in fits):.3f}, "
        f"median |error| {min(f['median_abs_error_pct'] for f in fits):.1f}-"
        f"{max(f['median_abs_error_pct'] for f in fits):.1f} % over the held-out devices (per device below). "
        "Feasibility is judged under this model, not measured; every run's devices are these models too. "
        "Accuracy has no ground truth: it is the predictor's.",
        "",
        f"Budgets: {args.budgets} per held-out device at its {100 * args.quantiles[0]:g} %.."
        f"{100 * args.quantiles[1]:g} % true-latency quantiles (over {args.quantile_samples} architectures of the "
        "searched space, seed 0). "
        "(a) the multi-device run served on the held-out device"
        + ("; (a') the same, each answer verified on the device (measured, i.e. priced by its true latency, the "
           "model refitted and the budgets served again until each answer is a measured network within its "
           "budget: `verify=`), on a fresh copy of the adapted file per seed; (a') measured per call: networks "
           "priced so per call of 20 budgets, beside the K, mean over seeds" if verified else "")
        + "; (b) a run trained on the held-out device's true "
        "latency (the upper reference); (c) the run of the training device whose measured log latency correlates "
        "most with the held-out device's (over the 5,000 subnets), asked at the same quantiles of its own device. "
        "Feasible: share of budgets whose answer's true latency is within the budget; acc: mean predicted top-1 % "
        "of the 20 answers (feasible or not), mean over seeds; a - b: mean of per-seed differences (points); "
        "a - b feasible: the same over budgets where both answers are feasible"
        + ("; a' - b: as a - b for (a')." if verified else "."),
        "",
        "| held-out device | truth rho / MdAPE % | " + " | ".join(h for _, h, _ in columns)
        + " | (c) device (r) | notes |",
        "|---|---|" + "---:|" * len(columns) + "---|---|",
    ]
    cols: dict[str, list[float]] = {}
    for held in args.held_out:
        rows = {m: _rows(args, cache, m, held) for m in METHODS}
        f = truth.fit[held]
        cells = [f"{f['spearman_rho']:.3f} / {f['median_abs_error_pct']:.1f}"]
        vals = {}
        for m in METHODS:
            rs = rows[m]
            vals[f"{m} feasible"] = 100 * np.mean([r["feasible"] for r in rs]) if rs else float("nan")
        for m in METHODS:
            rs = rows[m]
            vals[f"{m} acc"] = np.mean([np.nanmean(r["acc"]) for r in rs]) if rs else float("nan")
        a, b, c = rows["multi"], rows["single"], rows["similar"]
        av = rows["multi-verified"]
        vals["a-b"], vals["a'-b"], vals["c-b"] = _diff(a, b), _diff(av, b), _diff(c, b)
        vals["measured"] = np.mean([r.get("measurements", np.nan) for r in av]) if av else float("nan")
        both = [np.array(x["feasible"]) & np.array(y["feasible"]) for x, y in zip(a, b)] if a and b else []
        vals["a-b feasible"] = np.mean([np.mean(np.array(x["acc"])[k] - np.array(y["acc"])[k]) for x, y, k in
                                        zip(a, b, both) if k.any()]) if any(k.any() for k in both) else float("nan")
        for k, v in vals.items():
            cols.setdefault(k, []).append(v)
        fmt = [_num(vals[k], spec) for k, _, spec in columns]
        sim = f"{c[0]['device']} ({c[0]['corr']:.3f})" if c else ""
        notes = []
        if a:
            errs = [r["error"] for r in a if "error" in r]
            if errs:
                notes.append(f"(a) not served on {len(errs)} seed(s): {errs[0]}")
            ad = [r["adapt"] for r in a if r.get("adapt")]
            if ad:
                notes.append(f"adapted: rho {np.mean([x['spearman'] for x in ad]):.3f}, MdAPE "
                             f"{np.mean([x['median_abs_error_pct'] for x in ad]):.1f} % vs the 5,000 measured; "
                             f"{bench.adapted_bias(held):+.1f} % vs the true latency (median over the space)")
        if av and verified:
            errs = [r["error"] for r in av if "error" in r]
            if errs:
                notes.append(f"(a') not served on {len(errs)} seed(s): {errs[0]}")
            unverified = sum(r.get("unverified", 0) for r in av)
            notes.append(f"(a') at most {max(r.get('measurements', 0) for r in av)} measured per call, "
                         f"{unverified} answer(s) not verified")
        for m in METHODS:
            ex = max((r.get("worst_excess_pct", 0.0) for r in rows[m] or []), default=0.0)
            if ex > 0:
                notes.append(f"{LABEL[m].split()[0]} over budget by <= {ex:.1f} %")
        lines.append(f"| {held} | " + " | ".join(cells + fmt) + f" | {sim} | {'; '.join(notes)} |")
    mean = {k: np.nanmean(v) if np.isfinite(v).any() else float("nan") for k, v in cols.items()}
    lines.append("| **mean** | | " + " | ".join(f"**{_num(mean[k], spec)}**" for k, _, spec in columns) + " | | |")
    multi = [r["train_s"] for h in args.held_out for r in _rows(args, cache, "multi", h) or []]
    single = [r["train_s"] for h in args.held_out for r in _rows(args, cache, "single", h) or []]
    if multi and single:
        n_train = len(args.train_devices) if args.train_devices else len(truth.sp.devices) - 1
        lines += ["", "Training wall time (s; from each run's own stage times, recorded when each was trained, mean "
                  "over the runs of this table):", "",
                  f"- one multi-device run over {n_train} devices: {np.mean(multi):.1f} s (mean of {len(multi)}); "
                  f"one single-device run: {np.mean(single):.1f} s (mean of {len(single)}); ratio multi / single = "
                  f"{np.mean(multi) / np.mean(single):.2f} (one multi-device run serves every new device; "
                  f"single-device runs for {n_train} devices would take {n_train * np.mean(single):.0f} s)"]
        adapt = [cache[k]["seconds"] for k in cache if k.startswith("adapt|") and k.endswith(f"|k{args.k}")]
        if adapt and args.serve == "adapted":
            lines.append(f"- building a held-out device's adapted latency source (K = {args.k}): {np.mean(adapt):.1f} "
                         "s on average")
        gen = [r["generate_s"] for h in args.held_out for r in _rows(args, cache, "multi", h) or []
               if "generate_s" in r]
        if gen:
            lines.append(f"- serving the {args.budgets} budgets of a held-out device ((a), one `generate` call, "
                         f"the device's signature included): {np.mean(gen):.2f} s on average, at most "
                         f"{np.max(gen):.2f} s")
        gen = [r["generate_s"] for h in args.held_out for r in _rows(args, cache, "multi-verified", h) or []
               if "generate_s" in r]
        if gen and verified:
            lines.append(f"- serving the 20 budgets of a held-out device with verifying ((a'), the measurements "
                         f"included): {np.mean(gen):.1f} s on average")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
