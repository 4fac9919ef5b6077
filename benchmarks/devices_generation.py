"""Generation on held-out devices (issue 17): one device-conditioned run against single-device runs.

    python benchmarks/devices_generation.py [--held-out DEV ...] [--datasets D ...] [--seeds S ...] [--k 10]
        [--serve-spec 'adapted:{workdir}/{device}-k{k}-s{seed}.json' --adapt-cmd '...'] [--workdir DIR]

Setting: NAS-Bench-201, accuracy known for 1,000 seeded cells (the "measured" data, as in
``benchmarks/nb201_regret.py``, whose problem, PNAG run and scoring this script imports); the training
devices are every NAS-Bench-201 device setting of the data outside ``--held-out`` (default: HELP's six
test devices). On each held-out device: 20 budgets at its 5 %..95 % latency quantiles (over all 15,625
cells); per budget, feasibility under the device's true latency and regret (best true accuracy within
the budget - the chosen cell's, points, over feasible choices). Methods:

* ``multi``: one run trained on every training device (``--latency nb201:D1,...``, budgets ``q0.05:q0.95``),
  serving the held-out device through ``--serve-spec`` (default ``nb201:{device}``, the device's full table:
  a stand-in for ``adapted:FILE`` built from ``--k`` measurements; with ``--adapt-cmd`` the command is run
  first to build the file, and its time is reported), e.g.::

      --serve-spec 'adapted:{workdir}/{device}-k{k}-s{seed}.json' --adapt-cmd 'python3 -m pnag latency adapt
      --from {train} --target nb201:{device} --samples {k} --seed {seed} -o {workdir}/{device}-k{k}-s{seed}.json'

* ``multi-verified``: the same run with ``--verify`` (needs an ``adapted:`` serving spec): answers measured on the
  device (a look-up of its table) until each is a measured network within its budget (``--max-measurements``);
* ``multi-searched``: the same, and the measurements left up to ``--search-measurements`` (default 200) search for
  better networks (``pnag generate --verify --max-measurements N``);
* ``multi-generator``: the same run's generator alone (``mode="generator"``, ``--generator-samples`` draws);
* ``single``: a run trained for the held-out device alone on its full table (``nb201_regret.run_pnag``):
  the upper reference;
* ``similar``: a run trained on the most similar training device's table (highest Pearson correlation of
  log latency over all cells; chosen with the full tables, the most favourable choice), asked at the same
  latency quantiles on its own device; the answer is scored on the held-out device;
* ``similar-served``: that run serving the held-out device through ``--serve-spec`` (a run of one device
  maps a budget to the same quantile on its device and chooses under the served device's latency).

Resumable: runs and finished results are kept in ``--workdir``; a re-run skips what is done. Writes
``benchmarks/results/devices_generation.md`` (atomically; ``-o`` to change) and prints it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nb201_regret import N_BUDGETS, Problem, _setting, pnag_config, run_pnag  # noqa: E402  (the NB201 setting)

from pnag._io import write_json_atomic, write_text_atomic  # noqa: E402
from pnag.data import get_dataset_info  # noqa: E402
from pnag.errors import PnagError  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HELP_TEST = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")  # HELP's NB201 test devices
METHODS = ("multi", "multi-verified", "multi-searched", "multi-generator", "single", "similar", "similar-served")


def nb201_devices() -> list[str]:
    """The device settings the NAS-Bench-201 data holds a latency table for."""
    return sorted(Path(f.relpath).stem for f in get_dataset_info("nb201").files if f.relpath.startswith("latency/"))


def most_similar(device: str, candidates: list[str], tables: dict[str, np.ndarray]) -> tuple[str, float]:
    """The candidate whose log latency over all cells correlates most with ``device``'s, and the correlation."""
    target = np.log(tables[device])
    corr = {c: float(np.corrcoef(target, np.log(tables[c]))[0, 1]) for c in candidates}
    best = max(corr, key=corr.get)
    return best, corr[best]


class Bench:
    def __init__(self, args, train_devices: list[str]):
        self.args, self.train_devices = args, train_devices
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.cache_path = self.work / "results.json"
        self.cache = json.loads(self.cache_path.read_text()) if self.cache_path.exists() else {}
        self.problems: dict[tuple[str, str], Problem] = {}
        self.runs: dict[str, object] = {}

    def problem(self, dataset: str, device: str) -> Problem:
        if (dataset, device) not in self.problems:
            self.problems[dataset, device] = Problem(dataset, device)
        return self.problems[dataset, device]

    def save(self, key: str, value: dict) -> None:
        self.cache[key] = value
        write_json_atomic(self.cache_path, self.cache)

    def serve_spec(self, device: str, seed: int) -> tuple[str, float | None]:
        """The latency source that serves ``device``, built first with ``--adapt-cmd`` (seconds taken, or None)."""
        fields = dict(device=device, k=self.args.k, seed=seed, workdir=str(self.work),
                      train=",".join(f"nb201:{d}" for d in self.train_devices))
        spec = self.args.serve_spec.format(**fields)
        if not self.args.adapt_cmd:
            return spec, None
        key = f"adapt|{device}|{seed}"
        if key not in self.cache:
            t = time.perf_counter()
            subprocess.run(self.args.adapt_cmd.format(**fields), shell=True, check=True)
            self.save(key, {"seconds": time.perf_counter() - t})
        return spec, self.cache[key]["seconds"]

    def train_seconds(self, run) -> float:
        """Training wall time (s) of a run, from its metrics (so a resumed benchmark reports it too)."""
        return float(sum(v for k, v in run.metrics["seconds"].items() if k != "total_this_session"))

    def multi_config(self, dataset: str, seed: int, train_devices: list[str]):
        from pnag.search import TrainConfig

        a = self.args
        lo, hi = a.quantile_range
        return TrainConfig(space="nb201", accuracy=f"nb201:{dataset}", latency=tuple(f"nb201:{d}" for d in train_devices),
                           budgets=(lo, hi), budget_unit="quantile", train_samples=a.train_samples, seed=seed,
                           predictor_target=a.predictor_target, **dict(a.set + a.multi_set))

    def timing(self, dataset: str, seed: int, train_devices: list[str]) -> None:
        """Train, one after the other in fresh directories, a single-device run (first held-out device), the
        multi-device run, and single-device runs of the second and third held-out devices; wall time of each."""
        from pnag.search import train

        key = f"timing|{dataset}|{seed}"
        if key in self.cache:
            return
        out: dict[str, float] = {}
        work = Path(tempfile.mkdtemp(prefix="timing-", dir=self.work))
        order = [("single", self.args.held_out[0]), ("multi", None)] + [("single", h) for h in self.args.held_out[1:3]]
        for kind, held in order:
            cfg = self.multi_config(dataset, seed, train_devices) if kind == "multi" else \
                pnag_config(self.problem(dataset, held), seed, 0, self.args)
            t = time.perf_counter()
            train(cfg, work / f"{kind}-{held}", progress=False)
            out[f"{kind}:{held}" if held else kind] = time.perf_counter() - t
        self.save(key, out)

    def multi_run(self, dataset: str, seed: int, train_devices: list[str]):
        from pnag.search import train

        key = f"multi-run|{dataset}|{seed}"
        if key not in self.runs:
            a = self.args
            lo, hi = a.quantile_range
            cfg = self.multi_config(dataset, seed, train_devices)
            self.runs[key] = train(cfg, self.work / f"multi-{dataset}-s{seed}-q{lo:g}-{hi:g}", progress=not a.no_progress)
            if a.serve_steps is not None:  # a generate-time setting: the trained run is the same
                self.runs[key].config = replace(self.runs[key].config, serve_steps=a.serve_steps)
        return self.runs[key]

    def single_run(self, dataset: str, device: str, seed: int):
        key = f"single-run|{dataset}|{device}|{seed}"
        if key not in self.runs:
            p = self.problem(dataset, device)
            out, own, run = run_pnag(p, seed, 0, self.work, self.args)
            self.runs[key] = (out, own, run)
        return self.runs[key]

    def _helpers(self, prob: Problem, dataset: str, held: str, seed: int):
        """For one held-out device and seed: ``codes(gens)``, ``record(method, chosen, extra)``, ``done(method)``."""

        def codes(gens):
            return prob.code_of(np.stack([prob.space.to_indices(prob.space.parse(g.arch)) for g in gens]))

        def record(method: str, chosen, extra: dict) -> None:
            chosen = np.asarray(chosen)
            over = prob.lat[np.maximum(chosen, 0)] - prob.budgets  # ms over the budget (> 0: infeasible)
            bad = (chosen >= 0) & (over > 0)
            worst = float(over[bad].max()) if bool(bad.any()) else 0.0
            self.save(result_key(self.args, method, dataset, held, seed),
                      {**prob.score(chosen), "worst_excess_ms": worst, **extra})

        def done(method: str) -> bool:
            return method not in self.args.methods or result_key(self.args, method, dataset, held, seed) in self.cache

        return codes, record, done

    def one(self, dataset: str, held: str, seed: int, train_devices: list[str], tables) -> None:
        """Every method on one held-out device and seed (what the cache holds already is skipped)."""
        self.one_multi(dataset, held, seed, train_devices)
        self.one_single(dataset, held, seed, train_devices, tables)

    def one_multi(self, dataset: str, held: str, seed: int, train_devices: list[str]) -> None:
        """The multi-device run's answers (``multi``, ``multi-generator``, ``multi-verified``, ``multi-searched``) on
        one held-out device."""
        a = self.args
        prob = self.problem(dataset, held)
        budgets = list(map(float, prob.budgets))
        codes, record, done = self._helpers(prob, dataset, held, seed)
        if not (done("multi") and done("multi-generator")):
            run = self.multi_run(dataset, seed, train_devices)
            spec, adapt_s = self.serve_spec(held, seed)
            t = time.perf_counter()
            try:
                gens = run.generate(budgets, samples=a.samples, latency=spec)
            except PnagError as exc:  # a budget outside what the run serves on the device (as the source sees it)
                for m in ("multi", "multi-generator"):
                    record(m, np.full(N_BUDGETS, -1), {"train_s": self.train_seconds(run), "serve": spec,
                                                       "origins": {}, "error": str(exc)[:200]})
                return
            gen_s = time.perf_counter() - t
            origins = {o: sum(g.origin == o for g in gens) for o in sorted({g.origin for g in gens})}
            record("multi", codes(gens), {"train_s": self.train_seconds(run), "generate_s": gen_s, "adapt_s": adapt_s,
                                          "serve": spec, "origins": origins})
            own = run.generate(budgets, samples=a.generator_samples, latency=spec, mode="generator")
            record("multi-generator", codes(own), {"train_s": self.train_seconds(run), "serve": spec})
        # answers measured on the device until each is a measured network within its budget (multi-verified), and
        # then a search with the measurements left (multi-searched)
        for method, cap in (("multi-verified", a.max_measurements), ("multi-searched", a.search_measurements)):
            if not done(method) and spec_file(self.serve_spec(held, seed)[0]):
                self.verified(method, cap, dataset, held, seed, train_devices, budgets, record, codes)

    def verified(self, method: str, cap, dataset: str, held: str, seed: int, train_devices: list[str], budgets,
                 record, codes) -> None:
        """One ``--verify`` call on a copy of the adapted file (verifying adds its measurements to the file)."""
        run = self.multi_run(dataset, seed, train_devices)
        src = spec_file(self.serve_spec(held, seed)[0])
        copy = src.with_name(f"{src.stem}-{method}-{dataset}.json")
        shutil.copyfile(src, copy)
        t = time.perf_counter()
        gens = run.generate(budgets, samples=self.args.samples, latency=f"adapted:{copy}", verify=True,
                            max_measurements=cap)
        origins = {o: sum(g.origin == o for g in gens) for o in sorted({g.origin for g in gens})}
        record(method, codes(gens), {"generate_s": time.perf_counter() - t, "origins": origins,
                                     "measurements": gens.measurements,
                                     "unverified": sum(g.latency_is != "measured" for g in gens)})

    def one_single(self, dataset: str, held: str, seed: int, train_devices: list[str], tables) -> None:
        """The single-device methods (``single``, ``similar``, ``similar-served``) on one held-out device."""
        a = self.args
        prob = self.problem(dataset, held)
        budgets = list(map(float, prob.budgets))
        codes, record, done = self._helpers(prob, dataset, held, seed)
        if not done("single"):
            out, _, run = self.single_run(dataset, held, seed)
            record("single", out.chosen, {"train_s": self.train_seconds(run)})
        if not (done("similar") and done("similar-served")):
            sim, corr = most_similar(held, train_devices, tables)
            out, _, run = self.single_run(dataset, sim, seed)
            # the similar device's own budgets at the same quantiles (5 %..95 %): its problem's budgets
            gens = run.generate(list(map(float, self.problem(dataset, sim).budgets)), samples=a.samples)
            record("similar", codes(gens), {"train_s": self.train_seconds(run), "device": sim, "corr": corr})
            spec, _ = self.serve_spec(held, seed)
            try:
                gens = run.generate(budgets, samples=a.samples, latency=spec)
                record("similar-served", codes(gens), {"device": sim, "serve": spec})
            except PnagError as exc:  # a budget outside what the run serves on that device: said in the notes
                record("similar-served", np.full(N_BUDGETS, -1), {"device": sim, "error": str(exc)[:200]})


def result_key(args, method: str, dataset: str, held: str, seed: int) -> str:
    """The cache key of one method's answers on one held-out device, dataset and seed (the multi-device run's
    methods also by ``--serve-steps`` when given)."""
    steps = f"|serve{args.serve_steps}" if method.startswith("multi") and args.serve_steps is not None else ""
    return f"{method}|{dataset}|{held}|{seed}{steps}"


def spec_file(spec: str) -> Path | None:
    """The file of an ``adapted:FILE`` serving spec (None for any other source)."""
    return Path(spec.split(":", 1)[1]) if spec.startswith("adapted:") else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--held-out", nargs="+", default=list(HELP_TEST), help="held-out NB201 device settings")
    p.add_argument("--train-devices", nargs="+", default=None,
                   help="training devices (default: every device setting of the data outside --held-out)")
    p.add_argument("--datasets", nargs="+", default=["cifar100", "ImageNet16-120"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--k", type=int, default=10, help="measurements of a held-out device for its adapted latency")
    p.add_argument("--serve-spec", default="nb201:{device}",
                   help="latency source serving a held-out device ({device}, {k}, {seed}, {workdir} and {train}, "
                        "the training devices' specs comma-joined, filled in)")
    p.add_argument("--adapt-cmd", default="", help="shell command building the --serve-spec file (same fields)")
    p.add_argument("--quantile-range", type=float, nargs=2, default=[0.02, 0.98], metavar=("LO", "HI"),
                   help="the multi-device run's budgets qLO:qHI (default 0.02 0.98: a little wider than the 5 %%..95 %% "
                        "asked, so that a served device whose quantiles come from an approximate latency source still "
                        "has them inside its range)")
    p.add_argument("--train-samples", type=int, default=1000)
    p.add_argument("--samples", type=int, default=1, help="generate --samples K")
    p.add_argument("--generator-samples", type=int, default=16)
    p.add_argument("--predictor-target", default=None)
    p.add_argument("--serve-steps", type=int, default=None, metavar="N",
                   help="the multi-device run's methods: serve with TrainConfig.serve_steps N (the served device's "
                        "archive grown under its latency before answering; default: the run's, pnag's default)")
    p.add_argument("--set", type=_setting, action="append", default=[], metavar="FIELD=VALUE",
                   help="a TrainConfig field of every run (repeatable)")
    p.add_argument("--multi-set", type=_setting, action="append", default=[], metavar="FIELD=VALUE",
                   help="a TrainConfig field of the multi-device run only (repeatable)")
    p.add_argument("--probes", type=float, nargs="*", default=None, metavar="F",
                   help="multi-verified: the probes' multiples of the model's error (default: pnag's, "
                        "pnag.search.verify.PROBES; none: no probes)")
    p.add_argument("--max-measurements", type=int, default=None, metavar="N",
                   help="multi-verified: the most networks one call measures (default: pnag's, 4 per budget)")
    p.add_argument("--search-measurements", type=int, default=200, metavar="N",
                   help="multi-searched: the most networks one call measures, those left once the answers are "
                        "settled searching for better ones (default 200)")
    p.add_argument("--search-gain", type=float, default=None, metavar="G",
                   help="multi-searched: the least expected gain (points) the search measures for (default: pnag's, "
                        "pnag.search.verify.SEARCH_GAIN)")
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "pnag-devices-generation"))
    p.add_argument("--timing", action="store_true",
                   help="also train, one after the other in fresh directories, a single-device run, the multi-device "
                        "run and two more single-device runs, and report their wall times side by side")
    p.add_argument("--under-load", action="store_true", help="label wall times as measured under load")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-o", "--output", type=Path, default=RESULTS / "devices_generation.md")
    args = p.parse_args(argv)

    if args.probes is not None:
        from pnag.search import verify

        verify.PROBES = tuple(args.probes)
    if args.search_gain is not None:
        from pnag.search import verify

        verify.SEARCH_GAIN = args.search_gain
    known = nb201_devices()
    unknown = [d for d in args.held_out + (args.train_devices or []) if d not in known]
    if unknown:
        p.error(f"device {unknown[0]!r} is not in the NAS-Bench-201 data; allowed: {', '.join(known)}")
    train_devices = args.train_devices or [d for d in known if d not in args.held_out]
    overlap = sorted(set(train_devices) & set(args.held_out))
    if overlap:
        p.error(f"device {overlap[0]!r} is both held out and a training device")
    from pnag.data.nb201 import load_nb201

    tab = load_nb201()
    tables = {d: tab.latency(d) for d in set(train_devices) | set(args.held_out)}
    bench = Bench(args, train_devices)
    t0 = time.perf_counter()
    for dataset in args.datasets:
        for seed in args.seeds:
            for held in args.held_out:
                bench.one(dataset, held, seed, train_devices, tables)
                print(f"[{time.perf_counter() - t0:.0f} s] {dataset} seed {seed} {held}: done", file=sys.stderr)
            if args.timing:
                bench.timing(dataset, seed, train_devices)
                print(f"[{time.perf_counter() - t0:.0f} s] {dataset} seed {seed} timing: done", file=sys.stderr)
    text = render(args, bench.cache, train_devices, argv)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output, text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def render(args, cache: dict, train_devices: list[str], argv) -> str:
    cmd = "python benchmarks/devices_generation.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                         else sys.argv[1:]))
    load = " (under load: 2 shared cores busy with other work)" if args.under_load else ""
    lines = [
        "# Generation on held-out NAS-Bench-201 devices: one device-conditioned run against single-device runs",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; date {time.strftime('%Y-%m-%d')}{load}.  ",
        f"Held out: {', '.join(args.held_out)}. Training devices ({len(train_devices)}): {', '.join(train_devices)}.  ",
        f"Seeds: {', '.join(map(str, args.seeds))}; measured cells per seed: {args.train_samples}; "
        f"{N_BUDGETS} budgets per device at its 5 %..95 % latency quantiles; multi-device run trained for "
        f"q{args.quantile_range[0]:g}:q{args.quantile_range[1]:g}; held-out devices served by "
        f"`{args.serve_spec}`" + (f" (built by `{args.adapt_cmd}`, K = {args.k})" if args.adapt_cmd else
                                  " (the device's full table: a stand-in for `adapted:` from K measurements)")
        + (f"; settings of every run: {', '.join(f'{k}={v}' for k, v in args.set)}" if args.set else "")
        + (f"; of the multi-device run: {', '.join(f'{k}={v}' for k, v in args.multi_set)}" if args.multi_set else "")
        + (f"; served with serve_steps={args.serve_steps}" if args.serve_steps is not None else "")
        + ".",
        "",
        "Feasible: share of the budgets whose answer truly fits (true latency of the held-out device). Regret "
        "(points): best true accuracy within the budget minus the answer's, over feasible answers; mean over "
        "budgets, then mean ± sd over seeds; max: worst budget and seed. `vs single`: mean regret minus the "
        "single-device run's (target: <= 0.1 on every device). The benchmark counts an answer over its budget "
        "by any amount as infeasible; pnag's choice rule allows 1e-9 ms (float rounding), so where a budget "
        "falls on a cell's latency the notes say by how much.",
    ]
    for dataset in args.datasets:
        lines += ["", f"## {dataset}", "",
                  "| held-out device | method | feasible % | mean regret | max regret | vs single | notes |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for held in args.held_out:
            ref = [cache.get(f"single|{dataset}|{held}|{s}") for s in args.seeds]
            ref_mean = np.nanmean([r["mean_regret"] for r in ref]) if all(ref) else float("nan")
            for m in METHODS:
                rs = [cache.get(result_key(args, m, dataset, held, s)) for s in args.seeds]
                if m not in args.methods or not all(rs):
                    continue
                means = np.array([r["mean_regret"] for r in rs])
                note = ""
                if m.startswith("similar"):
                    note = f"{rs[0]['device']} (r = {rs[0]['corr']:.3f})" if "corr" in rs[0] else rs[0]["device"]
                    errs = [r["error"] for r in rs if "error" in r]
                    note += f"; not served: {errs[0]}" if errs else ""
                if m in ("multi-verified", "multi-searched"):
                    meas = [r["measurements"] for r in rs]
                    note = (f"{np.mean(meas):.1f} measurements per call beside the K (at most {max(meas)}); "
                            f"answers not verified: {sum(r['unverified'] for r in rs)}; ")
                if m in ("multi", "multi-verified", "multi-searched"):
                    origins: dict[str, int] = {}
                    for r in rs:
                        for k, v in r["origins"].items():
                            origins[k] = origins.get(k, 0) + v
                    note += "origins " + ", ".join(f"{k} {v}" for k, v in origins.items())
                errs = [r["error"] for r in rs if "error" in r and not m.startswith("similar")]
                note += f"; not served: {errs[0]}" if errs else ""
                excess = max(r.get("worst_excess_ms", 0.0) for r in rs)
                if excess > 0:
                    note += f"; infeasible answers over their budget by at most {excess:.3g} ms"
                lines.append(f"| {held} | {m} | {100 * np.mean([r['feasible'] for r in rs]):.1f} | "
                             f"{np.nanmean(means):.3f} ± {np.nanstd(means):.3f} | "
                             f"{np.nanmax([r['max_regret'] for r in rs]):.3f} | "
                             f"{np.nanmean(means) - ref_mean:+.3f} | {note} |")
        timed = [cache.get(f"timing|{dataset}|{s}") for s in args.seeds]
        if all(timed):
            lines += ["", "Training wall time, trained one after the other in fresh directories (`--timing`; s):", ""]
            for s_, t in zip(args.seeds, timed):
                singles = [v for k, v in t.items() if k.startswith("single")]
                lines.append(f"- seed {s_}: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items())
                             + f"; multi / (3 single-device runs) = {t['multi'] / sum(singles):.2f}")
        lines += ["", "Training wall time (s, mean over seeds; from each run's own stage times, recorded when each "
                  "was trained):", ""]
        multi = [cache.get(f"multi|{dataset}|{args.held_out[0]}|{s}") for s in args.seeds]
        single = [cache[k]["train_s"] for k in cache if k.startswith(f"single|{dataset}|")]
        if all(multi) and single:
            mt, st = np.mean([r["train_s"] for r in multi]), np.mean(single)
            lines.append(f"- one multi-device run over {len(train_devices)} devices: {mt:.1f} s; one single-device "
                         f"run: {st:.1f} s (mean of {len(single)}); 3 single-device runs: {3 * st:.1f} s; "
                         f"ratio multi / (3 x single) = {mt / (3 * st):.2f}")
            gen = [cache.get(f"multi|{dataset}|{h}|{s}", {}).get("generate_s") for h in args.held_out
                   for s in args.seeds]
            gen = [g for g in gen if g is not None]
            if gen:
                lines.append(f"- serving a held-out device (profile from its latency source, then 20 budgets): "
                             f"{np.mean(gen):.1f} s on average")
            adapt = [cache[k]["seconds"] for k in cache if k.startswith("adapt|")]
            if adapt:
                lines.append(f"- building its adapted latency source: {np.mean(adapt):.1f} s on average")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
