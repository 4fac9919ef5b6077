"""Collecting your own architecture dataset: sample, price, score, append; resumable.

Storage is an append-only JSON-lines file: a header line with the collection's settings, then one
record per line, flushed and fsync'ed as it is written. A run killed mid-write leaves at most a torn
last line, which the next run detects and drops. A resumed run regenerates the same candidate
sequence from the seed and skips what the file already holds, so it never repeats work and ends
with exactly ``samples`` distinct records.

Accuracy sources are pluggable: :func:`register_accuracy_source` maps a spec prefix (``proxy``,
``nb201``, ``supernet``) to a factory. Latency sources are callables
``latency_ms(archs) -> ndarray`` (NaN where they cannot price) or spec strings resolved by
``pnag.latency.sources.get_latency_source`` when that module is present.

Under ``torchrun --nproc_per_node N -m pnag collect ...`` rank 0 alone reads, repairs, writes and
prices; it hands every rank the next architecture, so a *collective* accuracy source (``supernet``,
which shards the images over the ranks) scores the same architectures in the same order everywhere.
Other ranks never touch the file. With a source that is not collective the other ranks have nothing
to share and return at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._io import exclusive_writer
from ..errors import DataError, PnagError, allowed
from .records import Accuracy, Arch, Dataset, Latency, Record, make_dataset, record_from_dict, record_to_dict

FORMAT_VERSION = 1
SPACES = ("mbv3", "nb201")


# -- accuracy sources ----------------------------------------------------------------------------------
@dataclass
class AccuracySource:
    """Gives each architecture an accuracy (value in ``unit``; NaN where it has none).

    ``fn(archs) -> ndarray``; ``unit`` is "fraction", "%" or "score" (a proxy); ``measured_on`` says on
    what (e.g. ``imagenet-val``, ``proxy:synflow seed 0``)."""

    name: str
    fn: Callable[[Sequence[Arch]], np.ndarray]
    unit: str
    measured_on: str
    collective: bool = False  # under torchrun every rank must call fn with the same archs, in order

    def accuracy(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray(self.fn(list(archs)), dtype=np.float64).reshape(-1)


AccuracyFactory = Callable[[str, Any, dict], AccuracySource]
_ACCURACY_SOURCES: dict[str, AccuracyFactory] = {}


def register_accuracy_source(prefix: str, factory: AccuracyFactory) -> None:
    """Make ``--accuracy PREFIX:REST`` available: ``factory(rest, space, options) -> AccuracySource``.

    ``options`` carries free-form settings from the caller (e.g. ``{"imagenet": DIR}`` from the CLI,
    ``seed``, ``proxy_config``)."""
    if not prefix or ":" in prefix:
        raise PnagError(f"accuracy source prefix: {prefix!r} is not allowed; allowed: a non-empty name without ':'")
    _ACCURACY_SOURCES[prefix] = factory


def accuracy_source_prefixes() -> list[str]:
    _register_builtin()
    return sorted(_ACCURACY_SOURCES)


def get_accuracy_source(spec: str, space: Any, options: dict | None = None) -> AccuracySource | None:
    """The accuracy source for ``spec`` (``none`` gives None)."""
    _register_builtin()
    if spec in (None, "", "none"):
        return None
    prefix, _, rest = spec.partition(":")
    if prefix not in _ACCURACY_SOURCES:
        raise PnagError(f"--accuracy: {spec!r} is not known; allowed: none or "
                        f"{allowed([p + ':...' for p in sorted(_ACCURACY_SOURCES)])}")
    return _ACCURACY_SOURCES[prefix](rest, space, dict(options or {}))


def _proxy_factory(rest: str, space: Any, options: dict) -> AccuracySource:
    from ..predict.proxies import ProxyConfig, check_proxy, proxy_scores

    name = check_proxy(rest)
    if getattr(space, "name", "") != "mbv3":
        raise PnagError(f"--accuracy proxy:{name}: proxies run on MobileNetV3 networks; allowed with --space mbv3")
    seed = int(options.get("seed", 0))
    cfg = options.get("proxy_config") or ProxyConfig()
    return AccuracySource(f"proxy:{name}", lambda archs: proxy_scores(name, archs, seed=seed, config=cfg, progress=False),
                          "score", f"proxy:{name} (seed {seed})")


def _nb201_factory(rest: str, space: Any, options: dict) -> AccuracySource:
    from .nb201 import check_nb201_dataset, load_nb201

    on = check_nb201_dataset(rest or "cifar10")
    if getattr(space, "name", "") != "nb201":
        raise PnagError(f"--accuracy nb201:{on}: a NAS-Bench-201 table; allowed with --space nb201")

    def fn(archs):
        t = load_nb201()
        return t.accuracy(on)[[t.index_of(a) for a in archs]]

    return AccuracySource(f"nb201:{on}", fn, "%", f"{on}-test (200 epochs)")


def _supernet_factory(rest: str, space: Any, options: dict) -> AccuracySource:
    """``supernet:CKPT|random``: top-1 (%) on ImageNet val with inherited weights (pnag.evaluate)."""
    from ..evaluate.imagenet import supernet_accuracy_factory  # lazily: the evaluation stack is heavy

    src = supernet_accuracy_factory(rest, space, options)
    src.collective = True  # it shards images over the torchrun ranks and sums counts
    return src


def _register_builtin() -> None:
    _ACCURACY_SOURCES.setdefault("proxy", _proxy_factory)
    _ACCURACY_SOURCES.setdefault("nb201", _nb201_factory)
    _ACCURACY_SOURCES.setdefault("supernet", _supernet_factory)


# -- latency sources -----------------------------------------------------------------------------------
@dataclass
class _Latency:
    name: str
    fn: Callable[[Sequence[Arch]], np.ndarray]
    kind: str  # measured | lut | published-table


def _latency_kind(spec: str) -> str:
    head = spec.split(":", 1)[0]
    return {"lut": "lut", "local": "lut", "table": "published-table", "nb201": "published-table"}.get(head, "measured")


def resolve_latency(src: Any, space: Any) -> _Latency:
    """A latency source from a spec string (via pnag.latency, if installed), a callable, or an object
    with ``.latency_ms``."""
    if isinstance(src, str):
        try:
            from ..latency.sources import get_latency_source
        except ImportError:
            raise PnagError(f"latency source {src!r}: pnag.latency is not available; allowed: none") from None
        obj = get_latency_source(src, space)
        return _Latency(getattr(obj, "name", src) or src, obj.latency_ms, _latency_kind(src))
    fn = src.latency_ms if hasattr(src, "latency_ms") else src
    if not callable(fn):
        raise PnagError(f"latency source: {src!r} is neither a spec, a callable nor an object with .latency_ms")
    name = getattr(src, "name", None) or getattr(src, "__name__", None) or type(src).__name__
    return _Latency(str(name), fn, getattr(src, "kind", "measured"))


def _price(lat: _Latency, archs: Sequence[Arch]) -> np.ndarray:
    from .join import price

    return price(archs, lat.fn)[0]


# -- settings and the file ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CollectConfig:
    """What to collect. ``latency`` / ``stratify_by`` are spec strings (see pnag.latency) or names of
    callables passed to :func:`collect`; ``pool`` candidates are priced for stratification
    (default ``max(20 * samples, 2000)``); ``strata`` latency bins (default ``min(samples, 10)``)."""

    space: str = "mbv3"
    samples: int = 100
    seed: int = 0
    width: float | None = None
    resolution: int | None = None
    accuracy: str = "none"
    latency: tuple[str, ...] = ()
    stratify_by: str | None = None
    pool: int | None = None
    strata: int | None = None
    proxy_batch: int = 8
    proxy_resolution: int = 96

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise PnagError(f"--space: {self.space!r} is not known; allowed: {allowed(SPACES)}")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise PnagError(f"--samples: {self.samples!r} is not allowed; allowed: an integer >= 1")
        if self.space == "nb201" and (self.width is not None or self.resolution is not None):
            raise PnagError("--width/--resolution: not part of the nb201 space; allowed only with --space mbv3")
        held = math.prod(len(c) for c in make_space(self).decision_choices)  # distinct archs at most
        if self.samples > held:  # else the candidate stream would never end
            raise PnagError(f"--samples: {self.samples} is more than the {held} architectures of the {self.space} "
                            f"space; allowed: 1..{held}")

    def header(self) -> dict:
        d = asdict(self)
        d["latency"] = list(self.latency)
        return {"pnag_collect": FORMAT_VERSION, **d}


def make_space(cfg: CollectConfig):
    from ..space import get_space

    if cfg.space == "mbv3":
        kw = {k: v for k, v in (("width", cfg.width), ("resolution", cfg.resolution)) if v is not None}
        return get_space("mbv3", **kw)
    return get_space("nb201")


def read_collection(path: str | os.PathLike, repair: bool = False) -> tuple[dict | None, list[Record]]:
    """Header and records of a collection file. A torn last line (no newline or not JSON) is ignored,
    and with ``repair`` cut off the file; any other bad line raises DataError naming it."""
    path = Path(path)
    if not path.exists():
        return None, []
    try:
        raw = path.read_bytes()
    except OSError as exc:  # a folder, no permission
        raise DataError(f"collection file {path}: cannot be read ({exc.strerror or exc}); allowed: a file written "
                        "by `pnag collect`") from None
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    good_end = len(raw) - len(tail)
    parsed: list[dict] = []
    for i, line in enumerate(lines):
        try:
            parsed.append(json.loads(line))
        except (ValueError, RecursionError):  # not JSON or not UTF-8; nested or long beyond Python's limits
            if i == len(lines) - 1 and not tail:  # a torn last line that happened to end in "\n"
                good_end -= len(line) + 1
                break
            raise DataError(f"{path} line {i + 1}: not valid JSON; the collection file is damaged "
                            "(only a torn last line is repaired automatically)") from None
    if repair and good_end < len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    if not parsed:
        return None, []
    header = parsed[0]
    if not isinstance(header, dict) or header.get("pnag_collect") != FORMAT_VERSION:
        raise DataError(f"{path}: first line is not a pnag collection header; allowed: a file written by "
                        "`pnag collect` (or choose a new --out)")
    recs = []
    for i, d in enumerate(parsed[1:], start=2):
        try:
            recs.append(record_from_dict(d))
        except PnagError as exc:
            raise DataError(f"{path} line {i}: {exc}") from None
    return header, recs


def load_collection(path: str | os.PathLike) -> Dataset:
    """A collection file as a :class:`Dataset`."""
    header, recs = read_collection(path)
    if header is None:
        raise DataError(f"{path}: empty or missing collection file")
    return make_dataset(Path(path).stem, recs, provenance=f"pnag collect {json.dumps(header)}")


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
    from ..evaluate.distributed import broadcast_json

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
    from ..evaluate.distributed import init_distributed, shutdown

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
    from ..predict.proxies import ProxyConfig

    opts = {"seed": cfg.seed, "proxy_config": ProxyConfig(batch_size=cfg.proxy_batch, resolution=cfg.proxy_resolution),
            **(accuracy_options or {})}
    acc_src = get_accuracy_source(cfg.accuracy, space, opts)  # every rank: a collective source joins here
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
            prep["order"] = iter(stratified_order(space, cfg, resolve_latency(extra.get(cfg.stratify_by, cfg.stratify_by),
                                                                              space)))
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
        from ..nn.cost import arch_cost

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


__all__ = ["CollectConfig", "CollectResult", "AccuracySource", "register_accuracy_source", "get_accuracy_source",
           "accuracy_source_prefixes", "collect", "read_collection", "load_collection", "stratified_order",
           "resolve_latency"]
