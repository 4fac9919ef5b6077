"""Issue 21's fault injections, run as a user would: fresh ``python -m pnag`` processes of this checkout,
SIGKILL at chosen moments, two writers at once, damaged inputs. Prints a markdown report and writes it
(atomically) to ``-o``.

    PNAG_DATA_DIR=/work/shared/datasets OMP_NUM_THREADS=1 python benchmarks/fault_injection.py \\
        -o benchmarks/results/fault_injection.md

(a) the main job's ``pnag train`` (w1.0 dataset x ``lut:i7-8700k``) SIGKILLed every 5.5 s until it
    finishes, against an uninterrupted run; (b) a NAS-Bench-201 run with look-up rounds SIGKILLed at
    exact points of its eval stage (the hooks of ``tests/test_train.py`` and ``tests/test_resume.py``,
    patched into the killed process only: the library has no test hooks), then resumed; (c) two
    ``pnag collect`` on one ``--out`` and two ``pnag train`` on one ``-o``; (d) bad inputs: exit code
    and message. "identical" compares every tensor of data.pt, predictors.pt, ranker.pt and
    generator.pt (bit for bit), metrics.json apart from wall times, and ``pnag generate --json``'s output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PNAG_ROOT = ROOT  # the checkout whose pnag the processes run (--pnag)

from pnag._io import write_text_atomic  # noqa: E402

KILL_EVERY_S = 5.5
MAIN_JOB = ["train", "--space", "mbv3", "--accuracy", "dataset:ofa-mbv3-w1.0-imagenet", "--latency", "lut:i7-8700k",
            "--budgets", "10:24", "-q"]
MAIN_GENERATE = ["--budgets", "10:24:2", "--samples", "16", "--json"]
NB201_EVAL = ["train", "--space", "nb201", "--accuracy", "nb201:cifar10", "--latency", "nb201:raspi4", "--budgets",
              "5:56", "--eval-budget", "2", "--steps", "40", "--train-samples", "200", "-q"]
NB201_GENERATE = ["--budgets", "5:56:5", "--samples", "16", "--json"]
COLLECT = ["collect", "--space", "mbv3", "--samples", "40", "--seed", "7", "--accuracy", "proxy:synflow",
           "--proxy-resolution", "32", "--no-progress"]
FILES = ("data.pt", "predictors.pt", "ranker.pt", "generator.pt")

# run in the process to be killed (python -c HOOK POINT ARGS...): SIGKILL at POINT, then the pnag command
HOOK = r'''
import os, signal, sys
from pnag.cli import main
from pnag.search import run as R
try:
    from pnag.search import checkpoint as C
except ImportError:  # a pnag without checkpoints inside the stages (--pnag an older checkout)
    C = None
point, argv = sys.argv[1], sys.argv[2:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "eval-data":  # look-up round 1's data.pt written, state.json and metrics.json not yet
    save_data = R.Run.save_data
    def hooked(self):
        save_data(self)
        if "eval_measured" in self.data:
            die()
    R.Run.save_data = hooked
elif point == "eval-generator":  # round 1's fine-tuned generator.pt written (the run's 2nd), state.json not yet
    import importlib, pnag._io
    save, written = pnag._io.torch_save_atomic, []
    def hooked(obj, path):
        save(obj, path)
        written.append(path.name)
        if written.count("generator.pt") == 2:
            die()
    for name in ("pnag.search.training", "pnag.search.generator_stage"):  # where a pnag writes generator.pt
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "torch_save_atomic", None) is save:
            module.torch_save_atomic = hooked
elif point == "eval-ranker" and C is None:
    sys.exit("this pnag has no checkpoint inside the ranker's fit")
elif point == "eval-ranker":  # inside round 1's ranker refit, right after its checkpoint at step 100 of 400
    due, ck_save = C.StageCheckpoint.due, C.StageCheckpoint.save
    C.StageCheckpoint.due = lambda self: self.name == "eval1-ranker.ckpt.pt" or due(self)
    def hooked(self, state):
        ck_save(self, state)
        if self.name == "eval1-ranker.ckpt.pt" and state["step"] == 100:
            die()
    C.StageCheckpoint.save = hooked
elif point == "time-checkpoints" and C is None:
    import atexit
    atexit.register(lambda: print("checkpoint writes: not counted (no pnag.search.checkpoint)", file=sys.stderr))
elif point == "time-checkpoints":  # an uninterrupted run that reports what its checkpoint writes cost
    import atexit, time
    ck_save, spent = C.StageCheckpoint.save, []
    def hooked(self, state):
        t = time.perf_counter()
        ck_save(self, state)
        spent.append(time.perf_counter() - t)
    C.StageCheckpoint.save = hooked
    atexit.register(lambda: print(f"checkpoint writes: {len(spent)}, {sum(spent):.2f} s", file=sys.stderr))
sys.exit(main(argv))
'''


def env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(PNAG_ROOT) + (os.pathsep + path if path else ""))


def pnag(args: list[str], cwd: Path, hook: str | None = None) -> tuple[int, str, str]:
    """Run ``pnag ARGS`` (with ``hook``: through HOOK); returns exit code, stdout, stderr."""
    cmd = [sys.executable, "-c", HOOK, hook] if hook else [sys.executable, "-m", "pnag"]
    r = subprocess.run(cmd + args, cwd=cwd, env=env(), capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, "-m", "pnag", *args], cwd=cwd, env=env(), stdout=fh, stderr=fh)


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and bool(
            torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
            if a.is_floating_point() else torch.equal(a, b))
    return a == b or (a != a and b != b)  # NaN == NaN


def identical(ref: Path, run: Path, cwd: Path, generate: list[str]) -> tuple[bool, str]:
    """Whether run ``run`` equals ``ref`` (files, metrics apart from wall times, generate's output), and a note:
    what differs, or files a finished run should not hold (checkpoints, temporary files of a killed write)."""
    for name in FILES:
        if not _equal(torch.load(ref / name, weights_only=True), torch.load(run / name, weights_only=True)):
            return False, f"{name} differs"
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ref, run))
    ma.pop("seconds", None)
    mb.pop("seconds", None)
    if ma != mb:
        return False, "metrics.json differs"
    outs = [pnag(["generate", "--run", str(d), *generate], cwd) for d in (ref, run)]
    if outs[0][0] != 0 or outs[0] != outs[1]:
        return False, "pnag generate's output differs"
    left = sorted(p.name for p in run.iterdir() if p.name.endswith((".ckpt.pt", ".tmp")))
    return True, ("but files left: " + ", ".join(left)) if left else ""


def where(run: Path) -> tuple[str, tuple]:
    """What a killed run has saved: stages done and checkpoints (name and step); a progress key."""
    try:
        done = json.loads((run / "state.json").read_text())["done"]
    except (OSError, ValueError, KeyError):
        done = []
    ckpts = []
    for p in sorted(run.glob("*.ckpt.pt")):
        try:
            ckpts.append((p.name.removesuffix(".ckpt.pt"), int(torch.load(p, weights_only=True)["step"])))
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            ckpts.append((p.name, f"unreadable: {type(exc).__name__}"))
    text = ("done: " + (", ".join(done) or "nothing")) + "".join(f"; {n} at step {s}" for n, s in ckpts)
    return text, (len(done), tuple(ckpts))


def yes_no(ok: bool) -> str:
    return "yes" if ok else "**NO**"


# -- (a) -----------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of process ``pid`` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_until_killed(p: subprocess.Popen, clock: str) -> int | None:
    """Wait for ``p``; SIGKILL it once KILL_EVERY_S seconds have passed on ``clock`` (``wall``: since its
    start; ``cpu``: of its own CPU time, what the wall clock shows on an idle machine). Its exit code, or
    None when killed."""
    if clock == "wall":
        try:
            return p.wait(timeout=KILL_EVERY_S)
        except subprocess.TimeoutExpired:
            pass
    else:
        while p.poll() is None:
            try:
                if cpu_seconds(p.pid) >= KILL_EVERY_S:
                    break
            except (OSError, IndexError):  # exited meanwhile
                pass
            time.sleep(0.02)
        else:
            return p.returncode
    p.send_signal(signal.SIGKILL)
    p.wait()
    return None


def kill_loop(w: Path, ref: Path, rows: list, notes: list, max_kills: int, stuck_after: int, clock: str) -> None:
    run, kills, stuck, last_key = w / f"killed-{clock}", 0, 0, None
    every = f"every {KILL_EVERY_S:g} s" + (" of its CPU time" if clock == "cpu" else "")
    notes.append(f"- SIGKILL {every}:")
    t0 = time.perf_counter()
    while True:
        rc = run_until_killed(start([*MAIN_JOB, "-o", str(run)], w, w / f"killed-{clock}.log"), clock)
        if rc is not None:
            break
        kills += 1
        text, key = where(run)
        notes.append(f"  - kill {kills}: {text}")
        stuck = stuck + 1 if key == last_key else 0
        last_key = key
        if kills >= max_kills or stuck >= stuck_after:
            why = f"no progress in {stuck_after} kills in a row" if stuck >= stuck_after else f"{max_kills} kills"
            rows.append((f"(a) main job, SIGKILL {every}", f"gave up after {why}", f"-9 x {kills}",
                         "**NO** (never finished)", "no"))
            return
    wall = time.perf_counter() - t0
    if rc != 0:
        last = (w / f"killed-{clock}.log").read_text().strip().splitlines()[-1:] or [""]
        rows.append((f"(a) main job, SIGKILL {every}", f"{kills} SIGKILLs, then a start that failed: {last[0][:150]}",
                     f"-9 x {kills}, then {rc}", "**NO**", "no"))
        return
    ok, why = identical(ref, run, w, MAIN_GENERATE)
    rows.append((f"(a) main job, SIGKILL {every}",
                 f"{kills} SIGKILLs, then a run that finished ({kills + 1} starts, {wall:.0f} s in all)",
                 f"-9 x {kills}, then {rc}", yes_no(ok) + (f" ({why})" if why else ""),
                 "**YES**" if rc == 0 and not ok else "no"))


# -- (b) -----------------------------------------------------------------------------------------------
POINTS = {"eval-data": "SIGKILL between look-up round 1's data.pt write and its state.json write",
          "eval-generator": "SIGKILL after round 1's fine-tuned generator.pt write, before its state.json write",
          "eval-ranker": "SIGKILL inside round 1's ranker refit (after its checkpoint at step 100 of 400)"}


def eval_stops(w: Path, rows: list) -> None:
    ref = w / "nb-straight"
    rc, _, err = pnag([*NB201_EVAL, "-o", str(ref)], w)
    assert rc == 0, err
    for point, what in POINTS.items():
        run = w / f"nb-{point}"
        rc1, _, err1 = pnag([*NB201_EVAL, "-o", str(run)], w, hook=point)
        if rc1 != -signal.SIGKILL:
            what = f"not done ({rc1}): {(err1.strip().splitlines() or [''])[-1][:150]}"
        text, _ = where(run)
        rc2, _, err = pnag([*NB201_EVAL, "-o", str(run)], w)
        ok, why = identical(ref, run, w, NB201_GENERATE) if rc2 == 0 else (False, err.strip()[-200:])
        rows.append((f"(b) eval stage: {point}", f"{what} (left: {text}); resumed", f"{rc1}, then {rc2}",
                     yes_no(ok) + (f" ({why})" if why else ""), "**YES**" if rc2 == 0 and not ok else "no"))


# -- (c) -----------------------------------------------------------------------------------------------
def _lines(n: int, path: Path) -> bool:
    try:
        return path.read_text().count("\n") >= n
    except OSError:
        return False


def two_writers(w: Path, ref: Path, rows: list) -> None:
    rc, _, err = pnag([*COLLECT, "--out", str(w / "lone.jsonl")], w)
    assert rc == 0, err
    out = w / "two.jsonl"
    first = start([*COLLECT, "--out", str(out)], w, w / "collect1.log")
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None and not _lines(2, out):  # header and a record
        time.sleep(0.02)
    rc2, _, err2 = pnag([*COLLECT, "--out", str(out)], w)
    during = first.poll() is None
    rc1 = first.wait()
    same = out.read_text() == (w / "lone.jsonl").read_text()
    one_line = err2.count("\n") == 1 and "Traceback" not in err2
    rows.append(("(c) two `pnag collect` on one --out", "the second started while the first was writing "
                 f"({'still' if during else 'NOT still'} writing when the second ended): {err2.strip()[:150]}",
                 f"first {rc1}, second {rc2}" + ("" if rc2 == 2 and one_line else " (**not a one-line exit 2**)"),
                 yes_no(rc1 == 0 and same) + " (first's file = a lone run's, byte for byte)", "no" if same else
                 "**YES**"))
    run = w / "two-train"
    first = start([*MAIN_JOB, "-o", str(run)], w, w / "train1.log")
    while first.poll() is None and not (run / "config.json").exists():
        time.sleep(0.02)
    rc2, _, err2 = pnag([*MAIN_JOB, "-o", str(run)], w)
    during = first.poll() is None
    rc1 = first.wait()
    ok, why = identical(ref, run, w, MAIN_GENERATE) if rc1 == 0 else (False, (w / "train1.log").read_text()[-200:])
    one_line = err2.count("\n") == 1 and "Traceback" not in err2
    rows.append(("(c) two `pnag train` on one -o (main job)", "the second started while the first trained "
                 f"({'still' if during else 'NOT still'} training when the second ended): {err2.strip()[:150]}",
                 f"first {rc1}, second {rc2}" + ("" if rc2 == 2 and one_line else " (**not a one-line exit 2**)"),
                 yes_no(ok) + f" ({why or 'the first run = a lone run'})",
                 "**YES**" if rc1 == 0 and not ok else "no"))


# -- (d) -----------------------------------------------------------------------------------------------
def lut_file(path: Path, change=None) -> Path:
    """A complete per-layer table (random times) for width 1.0 at resolution 224, as ``pnag latency
    profile`` writes them; ``change(data)`` damages it first (as tests/test_latency_lut.py does)."""
    from pnag.latency import MeasureProtocol, lut_entries
    from pnag.latency.lut import FORMAT

    rng = np.random.default_rng(0)
    entries = {k: {"median_ms": float(rng.uniform(0.05, 2.0)), "iqr_ms": 0.0, "runs": 1}
               for k in lut_entries(1.0, 224)}
    data = {"format": FORMAT, "version": 1, "space": "mbv3", "width": 1.0, "resolution": 224, "batch": 1,
            "backend": "torch", "threads": 1, "protocol": MeasureProtocol(warmup=0, runs=1, min_time_s=0.0).to_dict(),
            "env": {}, "entries": entries, "calibration": {"n": 2, "seed": 0, "archs": []},
            "correction": {"a": 1.0, "b": 0.0}, "complete": True}
    if change is not None:
        change(data)
    path.write_text(json.dumps(data))  # json writes NaN as Python reads it back
    return path


def _first_entry(data: dict) -> dict:
    return next(iter(data["entries"].values()))


def image_folder(root: Path) -> Path:
    from PIL import Image

    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(2):
                Image.fromarray(np.full((64, 64, 3), 40 * i, dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def bad_inputs(w: Path) -> list[tuple]:
    cases = []

    def case(name: str, args: list[str], absent: list[str] = ()) -> None:
        t = time.perf_counter()
        rc, _, err = pnag(args, w)
        s = time.perf_counter() - t
        lines = err.strip().splitlines()
        left = [a for a in absent if (w / a).exists()]
        # the lock file beside an output stays by design (pnag._io.exclusive_writer): listed, not counted
        locks = [f".{a}.lock" for a in absent if (w / f".{a}.lock").exists()]
        ok = rc == 2 and len(lines) == 1 and "Traceback" not in err and not left
        cases.append((name, rc, len(lines), f"{s:.1f}", (lines[-1] if lines else "")[:230].replace("|", "\\|"),
                      (", ".join(left) if left else "nothing") + (f" (lock file {', '.join(locks)})" if locks else ""),
                      "yes" if ok else "**NO**"))

    train = ["train", "--budgets", "10:24", "--steps", "2", "-q"]
    case("table for another width (lut:note10 is width 1.2; the w1.0 dataset's space is 1.0)",
         [*train, "--latency", "lut:note10", "-o", "d1"], ["d1"])
    case("table for another resolution (--resolutions 128 with lut:note10, 160..224)",
         ["train", "--accuracy", "ofa-predictor", "--latency", "lut:note10", "--resolutions", "128", "--budgets",
          "15:60", "-q", "-o", "d2"], ["d2"])
    for name, change in (("NaN", lambda d: _first_entry(d).update(median_ms=float("nan"))),
                         ("negative", lambda d: _first_entry(d).update(median_ms=-1000.0)),
                         ("boolean", lambda d: _first_entry(d).update(median_ms=True))):
        lut = lut_file(w / f"lut-{name}.json", change)
        case(f"table with a {name} time (lut:FILE)", [*train, "--latency", f"lut:{lut}", "-o", f"d-{name}"],
             [f"d-{name}"])
    for n in ("99999", "15626"):
        case(f"`collect --samples {n}` on nb201 (15,625 cells)",
             ["collect", "--space", "nb201", "--samples", n, "--no-progress", "--out", "nb.jsonl"], ["nb.jsonl"])
    case("failed start: budgets below the fastest architecture (found in the data stage)",
         ["train", "--budgets", "1:2", "-q", "-o", "d-budget"], ["d-budget"])
    case("failed start: a latency table that does not exist", [*train, "--latency", "lut:nope.json", "-o", "d-lut"],
         ["d-lut"])
    data = image_folder(w / "imagenet")
    case("`eval --output /proc/...` (a real image folder: refused before any network is built)",
         ["eval", str(data), "--models", "pnag_cpu_30", "--no-pretrained", "--output", "/proc/pnag-eval.json"])
    return cases


def main() -> None:
    global KILL_EVERY_S, PNAG_ROOT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, help="write the markdown report here too")
    ap.add_argument("--kill-every", type=float, default=KILL_EVERY_S,
                    help="(a) seconds between SIGKILLs (the issue's: 5.5)")
    ap.add_argument("--clocks", nargs="+", choices=("wall", "cpu"), default=["wall", "cpu"],
                    help="(a) what the seconds between SIGKILLs count, one run each: wall time (the issue's) and the "
                         "process's own CPU time (the same on an idle machine; on a shared one it leaves out other "
                         "people's work)")
    ap.add_argument("--max-kills", type=int, default=80, help="(a) gives up after this many kills")
    ap.add_argument("--stuck-after", type=int, default=8, help="(a) gives up after this many kills without progress")
    ap.add_argument("--cases", nargs="+", choices=("a", "b", "c", "d"), default=["a", "b", "c", "d"])
    ap.add_argument("--pnag", type=Path, default=ROOT, help="the checkout whose pnag to run (default: this one)")
    args = ap.parse_args()
    KILL_EVERY_S, PNAG_ROOT = args.kill_every, args.pnag.resolve()
    if not os.environ.get("PNAG_DATA_DIR"):
        sys.exit("set PNAG_DATA_DIR to the data mirror (the main job's dataset and table)")
    w = Path(tempfile.mkdtemp(prefix="pnag-fault-"))
    t0, load0 = time.perf_counter(), os.getloadavg()
    rows: list[tuple] = []
    notes: list[str] = []
    ref = w / "straight"
    t, cpu = time.perf_counter(), children_cpu()
    rc, _, err = pnag([*MAIN_JOB, "-o", str(ref)], w, hook="time-checkpoints")
    assert rc == 0, err
    straight = f"{time.perf_counter() - t:.1f} s ({children_cpu() - cpu:.1f} s CPU)"
    ckpt_cost = err.strip().splitlines()[-1]
    t, cpu = time.perf_counter(), children_cpu()
    rc, _, err = pnag([*MAIN_JOB, "-o", str(ref)], w)  # finished: starts, restores every stage, trains nothing
    assert rc == 0, err
    startup = f"{time.perf_counter() - t:.1f} s ({children_cpu() - cpu:.1f} s CPU)"
    for clock in args.clocks if "a" in args.cases else ():
        kill_loop(w, ref, rows, notes, args.max_kills, args.stuck_after, clock)
    if "b" in args.cases:
        eval_stops(w, rows)
    if "c" in args.cases:
        two_writers(w, ref, rows)
    cases = bad_inputs(w) if "d" in args.cases else []
    commit = subprocess.run(["git", "-C", str(PNAG_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "? (not a git checkout)"
    out = ["# Fault injection (issue 21)", "",
           f"`PNAG_DATA_DIR=... OMP_NUM_THREADS=1 python benchmarks/fault_injection.py {' '.join(sys.argv[1:])}` "
           f"({'pnag of ' + str(PNAG_ROOT) + ' ' if PNAG_ROOT != ROOT else ''}at commit {commit}), "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()} "
           f"({os.cpu_count()} cores), torch {torch.__version__}; load average {load0[0]:.1f} at the start, "
           f"{os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - t0:.0f} s in all.",
           f"The main job uninterrupted: {straight} (`pnag train {' '.join(MAIN_JOB[1:])} -o DIR`; "
           f"{ckpt_cost}); the same command on the finished run (start-up and restore, nothing to train): "
           f"{startup}, which a process killed every {KILL_EVERY_S:g} s spends before it trains.", "",
           "| case | what was done | exit codes | resumed (or first) result identical to an uninterrupted run | "
           "exit 0 with a wrong result |", "|---|---|---|---|---|"]
    out += [f"| {' | '.join(str(c).replace('|', chr(92) + '|') for c in r)} |" for r in rows]
    if notes:
        out += ["", "(a) what each SIGKILL left (stages done; checkpoints and their step: epochs of a predictor fit, "
                "steps of the ranker and the generator):", "", *notes]
    if cases:
        out += ["", "(d) bad inputs, each in a fresh process:", "",
                "| case | exit | stderr lines | s | message | left behind | one-line exit 2, nothing left |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {' | '.join(str(c) for c in r)} |" for r in cases]
    text = "\n".join(out) + "\n"
    print(text)
    if args.output:
        write_text_atomic(args.output, text)
    shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
