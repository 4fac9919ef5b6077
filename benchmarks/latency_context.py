"""Where a measured table's systematic error comes from: the architectures, or the setting they are timed in.

    python benchmarks/latency_context.py --lut FILE [--random 20] [--seed 1] [--rounds 10]

Re-measures, the way ``pnag latency validate`` does (whole networks only, interleaved rounds, the
table's backend, threads and network protocol), the table's own calibration networks and
``--random`` random architectures, and prints: how much slower (+) or faster (-) the calibration
networks run now than when the table was profiled (median, %), and the median signed error of the
table's prediction (% of measured) on the calibration networks and on the random ones. If both
errors agree, the architectures are not the cause: the setting (or the machine) is.
"""

from __future__ import annotations

import argparse

import numpy as np

from pnag.latency.lut import load_lut
from pnag.latency.validate import time_networks_in_rounds
from pnag.space.mbv3 import MBV3Space


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lut", required=True)
    p.add_argument("--random", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args(argv)
    lut = load_lut(args.lut)
    space = MBV3Space(lut.width, lut.resolution)
    cal = [c for c in lut.calibration if "measured_ms" in c]
    archs = [space.coerce(c["arch"]) for c in cal] + space.sample(args.random, seed=args.seed)
    now = np.median(time_networks_in_rounds(lut, archs, None, args.rounds)[0], axis=0)
    pred = np.asarray(lut.predict_many(archs))
    n = len(cal)
    then = np.array([c["measured_ms"] for c in cal])
    print(f"table {args.lut}: {lut.backend} x{lut.threads}, {n} calibration + {args.random} random networks, "
          f"{args.rounds} rounds")
    print(f"calibration networks, now vs profiled: {np.median((now[:n] / then - 1) * 100):+.2f} % (median)")
    print(f"prediction error, calibration networks: {np.median((pred[:n] / now[:n] - 1) * 100):+.2f} % (median)")
    print(f"prediction error, random networks:      {np.median((pred[n:] / now[n:] - 1) * 100):+.2f} % (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
