"""Collecting your own architecture dataset: sample, price, score, append; resumable.

Storage is an append-only JSON-lines file: a header line with the collection's settings, then one
record per line, flushed and fsync'ed as it is written. A run killed mid-write leaves at most a torn
last line, which the next run detects and drops. A resumed run regenerates the same candidate
sequence from the seed and skips what the file already holds, so it never repeats work and ends
with exactly ``samples`` distinct records.

The file format is :mod:`pnag.data.collection`. Accuracy and latency sources are named as for every
command (:mod:`pnag.sources`): a spec, a registered prefix (:func:`pnag.sources.register_accuracy_source`)
or a Python object; a latency source may give NaN where it cannot price.

Under ``torchrun --nproc_per_node N -m pnag collect ...`` rank 0 alone reads, repairs, writes and
prices; it hands every rank the next architecture, so a *collective* accuracy source (``supernet``,
which shards the images over the ranks) scores the same architectures in the same order everywhere.
Other ranks never touch the file. With a source that is not collective the other ranks have nothing
to share and return at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ._io import exclusive_writer
from .data.collection import CollectConfig, make_space, read_collection
from .data.join import price
from .data.records import Accuracy, Arch, Latency, Record, record_to_dict
from .errors import DataError, PnagError
from .sources import AccuracySource, get_accuracy_source, get_latency_source


@dataclass
class _Latency:
    name: str
    fn: Callable[[Sequence[Arch]], np.ndarray]
    kind: str  # measured | lut | published-table


def resolve_latency(src: Any, space: Any) -> _Latency:
    """A latency source from a spec, an object with ``.latency_ms`` or a callable
    (:func:`pnag.sources.get_latency_source`), with the name and kind its records carry."""
    obj = get_latency_source(src, space)
    name = getattr(obj, "name", None) or (src if isinstance(src, str) else getattr(src, "__name__", None)) \
        or type(src).__name__
    return _Latency(str(name), obj.latency_ms, str(getattr(obj, "kind", "measured")))


def _price(lat: _Latency, archs: Sequence[Arch]) -> np.ndarray:
    return price(archs, lat.fn)[0]


# -- the candidate sequence ------------------------------------------------------------------------------
def _uniform_stream(space, seed: int, chunk: int = 256):
    """Endless seeded stream of uniformly sampled archs (each decision uniform)."""
    rng = np.random.default_rng(seed)
    while True:
        yield from space.sample(chunk, rng=rng)


def stratified_order(space, cfg: CollectConfig, lat: _Latency) -> list[Arch]:
    """``cfg.samples`` distinct archs spread over the latency range of a seeded candidate pool:
    the range is cut into ``strata`` equal-width bins and the samples shared out round-robin, so every
    budget range the pool reaches is covered (a thin bin gives what it has; the rest fill others)."""
    n = cfg.samples
    pool_n = cfg.pool or max(20 * n, 2000)
    pool: list[Arch] = []
    seen = set()
    stream = _uniform_stream(space, cfg.seed)
    draws = 0
    while len(pool) < pool_n and draws < 50 * pool_n:
        a = next(stream)
        draws += 1
        if a not in seen:
            seen.add(a)
            pool.append(a)
    ms = _price(lat, pool)
    ok = np.isfinite(ms)
    pool = [a for a, k in zip(pool, ok) if k]
    ms = ms[ok]
    if len(pool) < n:
        raise PnagError(f"--stratify-by {lat.name}: only {len(pool)} of {pool_n} candidates could be priced; "
                        f"need --samples {n} at most, or a source that prices this space")
    k = max(1, min(cfg.strata or min(n, 10), n))
    lo, hi = float(ms.min()), float(ms.max())
    bins = np.minimum(((ms - lo) / max(hi - lo, 1e-12) * k).astype(int), k - 1)
    buckets = [[a for a, b in zip(pool, bins) if b == j] for j in range(k)]  # pool order = seeded order
    out: list[Arch] = []
    pos = [0] * k
    while len(out) < n:
        progressed = False
        for j in range(k):
            if len(out) < n and pos[j] < len(buckets[j]):
                out.append(buckets[j][pos[j]])
                pos[j] += 1
                progressed = True
        if not progressed:  # pragma: no cover - len(pool) >= n guarantees progress
            break
    return out


# -- collecting ---------------------------------------------------------------------------------------
@dataclass
class CollectResult:
    path: Path
    records: int
    added: int
    resumed_from: int
    dropped_torn_line: bool
    unpriced: dict = field(default_factory=dict)
    rank: int = 0  # torchrun rank of this process; only rank 0 wrote (and should report)


def _on_main(ctx, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 and hand its JSON result to every rank; an error there is raised on every
    rank (so no rank waits forever for a rank that failed)."""
    from .evaluate.distributed import broadcast_json

    value = err = None
    if ctx.is_main:
        try:
            value = fn()
        except Exception as exc:  # re-raised below, after the other ranks have been told
            err = exc
    msg = broadcast_json(ctx, {"error": str(err)} if err is not None else {"value": value})
    if err is not None:
        raise err
    if "error" in msg:
        raise PnagError(f"rank 0 failed: {msg['error']}")
    return msg["value"]


def collect(cfg: CollectConfig, out: str | os.PathLike, latency_sources: dict[str, Any] | None = None,
            accuracy_options: dict | None = None, progress: bool | None = None) -> CollectResult:
    """Collect until ``out`` holds ``cfg.samples`` distinct records (resuming what is there).

    ``latency_sources`` maps names used in ``cfg.latency`` / ``cfg.stratify_by`` to callables or
    source objects; other names are spec strings for ``pnag.latency``. Interruptible at any point.
    Under torchrun (``WORLD_SIZE`` > 1) it joins the process group (``accuracy_options["device"]``,
    default auto: gloo on CPU, nccl on CUDA); rank 0 alone writes. One process at a time writes
    ``out``: a second ``collect`` on it raises a PnagError naming the first (:func:`exclusive_writer`).
    """
    from .evaluate.distributed import init_distributed, shutdown

    ctx = init_distributed((accuracy_options or {}).get("device", "auto"))
    try:
        with contextlib.ExitStack() as held:
            def lock() -> None:  # rank 0, the only writer; its refusal reaches every rank
                held.enter_context(exclusive_writer(out, "--out"))

            _on_main(ctx, lock)
            return _collect(ctx, cfg, Path(out), dict(latency_sources or {}), accuracy_options, progress)
    finally:
        shutdown(ctx)


def _collect(ctx, cfg: CollectConfig, out: Path, extra: dict, accuracy_options: dict | None,
             progress: bool | None) -> CollectResult:
    from tqdm import tqdm

    space = make_space(cfg)
    done_keys: set = set()

    def resume() -> dict:
        size_before = out.stat().st_size if out.exists() else 0
        header, done = read_collection(out, repair=True)
        torn = out.exists() and out.stat().st_size < size_before
        want = cfg.header()
        diff = [k for k in want if k != "samples" and header is not None and header.get(k) != want[k]]
        if diff:  # --samples may grow (or shrink) between runs; everything else must match
            raise PnagError(f"--out {out}: the file was started with different settings ({', '.join(diff)}: "
                            f"{', '.join(repr(header.get(k)) for k in diff)} there); allowed: the same settings to "
                            "resume, or a new --out")
        done_keys.update(r.key for r in done)
        if len(done_keys) != len(done):
            raise DataError(f"{out}: holds repeated architectures; it was not written by one pnag collect run")
        return {"done": len(done), "torn": torn, "header": header is not None}

    state = _on_main(ctx, resume)
    result = CollectResult(out, state["done"], 0, state["done"], state["torn"], rank=ctx.rank)
    if state["done"] >= cfg.samples:
        return result
    from .predict.proxies import ProxyConfig

    opts = {"seed": cfg.seed, "progress": False,
            "proxy_config": ProxyConfig(batch_size=cfg.proxy_batch, resolution=cfg.proxy_resolution),
            **(accuracy_options or {})}
    # every rank: a collective source joins here; one that scores no new architecture is refused before any write
    acc_src = get_accuracy_source(cfg.accuracy, space, opts, optional=True)
    if acc_src is not None:
        acc_src.check_scores()
    shared = ctx.distributed and acc_src is not None and acc_src.collective
    if ctx.distributed and not shared:  # nothing to share: rank 0 does all the work
        if not ctx.is_main:
            return result
        ctx = type(ctx)(0, 1, ctx.local_rank, ctx.device, False)  # rank 0 goes on alone, no collectives
    seen = set(done_keys)
    unpriced: dict[str, int] = {}
    prep: dict = {}

    def prepare() -> None:
        prep["lats"] = [resolve_latency(extra.get(s, s), space) for s in cfg.latency]
        if cfg.stratify_by:
            by = resolve_latency(extra.get(cfg.stratify_by, cfg.stratify_by), space)
            prep["order"] = iter(stratified_order(space, cfg, by))
        else:
            prep["order"] = _uniform_stream(space, cfg.seed)
        if not state["header"]:
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(cfg.header()) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        prep["fh"] = open(out, "a", encoding="utf-8")

    show = ctx.is_main and (sys.stderr.isatty() if progress is None else progress)
    bar = tqdm(total=cfg.samples, initial=len(seen), desc="collect", disable=not show, file=sys.stderr)
    pending: list = []  # (arch, accuracy value) scored but not yet written (rank 0)

    def step() -> str | None:
        """Rank 0: write the pending record, then name the next architecture (None: finished)."""
        fh = prep["fh"]
        for a, acc in pending:  # one at a time, so an interrupt loses at most the one in progress
            rec = _measure(a, space, acc_src, acc, prep["lats"], unpriced)
            fh.write(json.dumps(record_to_dict(rec)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            seen.add(a)
            result.added += 1
            bar.update(1)
        pending.clear()
        if len(seen) >= cfg.samples:
            return None
        for a in prep["order"]:
            if a not in seen:
                prep["next"] = a
                return space.format(a)
        raise PnagError(f"--samples {cfg.samples}: the candidate sequence ran out after {len(seen)} "
                        "distinct architectures")

    try:
        _on_main(ctx, prepare)
        while True:
            text = _on_main(ctx, step)
            if text is None:
                break
            arch = prep.pop("next") if ctx.is_main else space.parse(text)
            acc = float(acc_src.accuracy([arch])[0]) if acc_src is not None else float("nan")
            pending.append((arch, acc))
    finally:
        bar.close()
        if "fh" in prep:
            prep["fh"].close()
    result.records = len(seen) if ctx.is_main else cfg.samples
    result.unpriced = unpriced
    return result


def _measure(arch: Arch, space, acc_src: AccuracySource | None, acc_value: float, lats: list[_Latency],
             unpriced: dict) -> Record:
    """The record of ``arch``: cost, latency from each source, and the accuracy ``acc_src`` gave it."""
    madds = params = None
    if space.name == "mbv3":
        from .nn.cost import arch_cost

        c = arch_cost(arch)
        madds, params = c.madds, c.params
    lat = {}
    for L in lats:
        v = float(_price(L, [arch])[0])
        if np.isfinite(v):
            lat[L.name] = Latency(v, L.kind, L.name)
        else:
            unpriced[L.name] = unpriced.get(L.name, 0) + 1
    acc = None
    if acc_src is not None and np.isfinite(acc_value):
        acc = Accuracy(acc_value, acc_src.unit, acc_src.measured_on)
    return Record(arch, acc, lat, madds, params, source="pnag collect")


__all__ = ["CollectResult", "collect", "stratified_order", "resolve_latency"]
