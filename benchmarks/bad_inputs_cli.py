"""Issue 19's listed cases, run through the CLI as a user would (fresh processes): exit code, stderr lines,
traceback. `PNAG_DATA_DIR=../shared/datasets python benchmarks/bad_inputs_cli.py` prints one row per case."""
import json, os, shutil, subprocess, sys, tempfile
from pathlib import Path
W = Path(tempfile.mkdtemp(prefix="c19-"))
env = dict(os.environ, PNAG_DATA_DIR="/work/shared/datasets", OMP_NUM_THREADS="1")
def run(args, cwd=W):
    r = subprocess.run([sys.executable, "-m", "pnag", *args], cwd=cwd, env=env, capture_output=True, text=True)
    return r.returncode, r.stderr
rows = []
def case(name, args):
    code, err = run(args)
    lines = err.strip().splitlines()
    ok = code == 2 and len(lines) == 1 and "Traceback" not in err
    rows.append((ok, name, code, len(lines), lines[-1][:150] if lines else ""))
# a trained run for generate/plot
c, e = run(["train", "--space", "nb201", "--accuracy", "nb201:cifar10", "--latency", "nb201:raspi4", "--budgets", "5:56", "--steps", "5", "-q", "-o", "run"])
assert c == 0, e
def damaged(name, mut):
    d = W / f"bad-{len(rows)}"; shutil.copytree(W / "run", d); mut(d)
    case(f"generate: {name}", ["generate", "--run", str(d), "--budget", "30"])
    case(f"plot: {name}", ["plot", "--run", str(d), "-o", str(W / "p.png")])
damaged("config.json truncated", lambda d: (d / "config.json").write_text((d / "config.json").read_text()[:20]))
damaged("state.json emptied", lambda d: (d / "state.json").write_text(""))
damaged("state.json {} (no done)", lambda d: (d / "state.json").write_text("{}"))
damaged("metrics.json {} (no min_latency_ms)", lambda d: (d / "metrics.json").write_text("{}"))
damaged("data.pt garbage", lambda d: (d / "data.pt").write_bytes(b"garbage"))
damaged("predictors.pt garbage", lambda d: (d / "predictors.pt").write_bytes(b"\x80\x02x"))
damaged("generator.pt = ranker.pt (wrong state dict)", lambda d: shutil.copy(d / "ranker.pt", d / "generator.pt"))
damaged("config.json a JSON list", lambda d: (d / "config.json").write_text("[1, 2]"))
(W / "adir").mkdir(); (W / "bin.json").write_bytes(b"\xff\xfe\x00binary")
case("train dataset:DIR", ["train", "--accuracy", f"dataset:{W/'adir'}", "--budgets", "10:24", "-o", str(W / "o1")])
case("train lut:binary", ["train", "--latency", f"lut:{W/'bin.json'}", "--budgets", "10:24", "-o", str(W / "o2")])
case("latency validate --lut binary", ["latency", "validate", "--lut", str(W / "bin.json")])
case("arch sample --seed -1", ["arch", "sample", "--seed", "-1"])
big = str(2**64 + 1)
case("train --seed 2**64+1", ["train", "--budgets", "10:24", "--seed", big, "-o", str(W / "o3")])
case("generate --seed 2**64+1", ["generate", "--run", str(W / "run"), "--budget", "30", "--seed", big])
case("eval --seed 2**64+1", ["eval", str(W / "adir"), "--models", "pnag_cpu_30", "--seed", big])
case("arch sample -n 1e20", ["arch", "sample", "-n", "99999999999999999999"])
case("generate --samples 1e8", ["generate", "--run", str(W / "run"), "--budget", "30", "--samples", "100000000"])
case("generate --samples 1e12", ["generate", "--run", str(W / "run"), "--budget", "30", "--samples", "1000000000000"])
legacy = "2,2,3,3,3:5,5,0,0,5,5,0,0,7,5,7,0,3,5,5,0,7,5,5,0:3,3,0,0,4,3,0,0,4,3,3,0,6,4,4,0,6,6,6,0"
case("arch: 5000-digit depth", ["arch", "info", "3" * 5000 + legacy[1:]])
case("arch dict: 5000-digit", ["arch", "info", "{\"ks\": [" + ",".join(["3"]*20) + "], \"e\": [" + ",".join(["3"]*20) + "], \"d\": [" + "3"*5000 + ",2,2,2,2]}"])
case("arch: superscript digit", ["arch", "info", "²" + legacy[1:]])
case("arch: Arabic-Indic digit", ["arch", "info", "٢" + legacy[1:]])
case("train --resolution 2²4", ["train", "--budgets", "10:24", "--resolution", "2²4", "-o", str(W / "o4")])
case("arch: deeply nested JSON", ["arch", "info", "{\"ks\": " + "[" * 20000 + "]" * 20000 + "}"])
case("train -o under /proc", ["train", "--budgets", "10:24", "-o", "/proc/pnag-run"])
(W / "exists").mkdir()
case("eval --json-out an existing dir", ["eval", str(W / "adir"), "--models", "pnag_cpu_30", "--json-out", str(W / "exists")])
(W / "afile").write_text("x")
case("train -o under a file", ["train", "--budgets", "10:24", "-o", str(W / "afile" / "run")])
case("eval --json-out under /proc", ["eval", str(W / "adir"), "--models", "pnag_cpu_30", "--json-out", "/proc/x.json"])
for ok, name, code, n, last in rows:
    print(f"{'OK ' if ok else 'BAD'} | {name} | exit {code} | {n} line(s) | {last}")
print(sum(r[0] for r in rows), "of", len(rows), "OK")
