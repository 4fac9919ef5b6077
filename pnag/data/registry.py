"""The public architecture datasets: names, provenance, checksums, and a verified local copy.

Where a file is looked for, in order:

1. ``PNAG_DATA_DIR`` (an offline mirror laid out like ``../shared/datasets``): if the file is there
   its size and sha256 are checked and it is used in place (the mirror is never modified);
2. the download cache ``PNAG_CACHE_DIR`` (default ``pooch.os_cache("pnag")``): a cached file that
   fails the check is deleted;
3. its original public address, fetched by :mod:`pooch` (temporary file, sha256 check, then
   rename), unless ``PNAG_OFFLINE=1``.

A file that cannot be had raises :class:`pnag.errors.DataError` naming the file, every place looked
at and how to fix it; missing, truncated and altered files have distinct messages.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import DataError, allowed
from ._manifest import FILES

_RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
_HAN_CAI = ("han-cai/files", "a7c9bcd525e17404968bc55aa43772bf7e51909e")
_HELP = ("HayeonLee/HELP", "45f70eb92d0d735970a33b608d1544ad3c52f285")
_DOWNLOAD_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: ``relpath`` inside the dataset folder, ``url``, ``size`` (bytes), ``sha256``."""

    dataset: str
    relpath: str
    url: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DatasetInfo:
    """A registered public dataset (``files`` in sorted relpath order)."""

    name: str
    description: str
    license: str
    source: str  # repository @ commit, human-readable
    files: tuple[DataFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, relpath: str) -> DataFile:
        for f in self.files:
            if f.relpath == relpath:
                return f
        names = [f.relpath for f in self.files]
        shown = allowed(names) if len(names) <= 12 else ", ".join(names[:12]) + f", ... ({len(names)} files)"
        raise DataError(f"dataset {self.name}: file {relpath!r} is not part of it; allowed: {shown}")


# name -> (description, license, [(relpath prefix in the mirror, repo, commit, path prefix upstream)])
_SPECS: dict[str, tuple[str, str, list[tuple[str, str, str, str]]]] = {
    "ofa-mbv3-w1.0-imagenet": (
        "2,373 OFA MobileNetV3 width-1.0 subnets at resolution 224 with ImageNet top-1 (%) measured "
        "with supernet weights on the full val set; MACs, params (DyNAS-T search runs, 5 CSVs)",
        "Apache-2.0",
        [("", "IntelLabs/DyNAS-T", "251cb5e0083077522eb554691f480ba750e63246", "notebooks/data/")],
    ),
    "ofa-acc-predictor-w1.2": (
        "once-for-all tutorial accuracy predictor (MLP 128-400-400-400-1, output a fraction) for the "
        "width-1.2 supernet",
        "none stated",
        [("", *_HAN_CAI, "ofa/")],
    ),
    "ofa-note10-lut-w1.2": (
        "per-layer latency lookup tables (ms) of the width-1.2 space on a Samsung Note10, "
        "resolutions 160..224",
        "none stated",
        [("", *_HAN_CAI, "ofa/note10/")],
    ),
    "i7-8700k-lut": (
        "per-layer latency lookup table (ms) on an Intel i7-8700K CPU, widths 1.0 and 1.2, "
        "resolutions 96..256",
        "Apache-2.0",
        [("", "mikelzc1990/nsganetv2", "04c495a6ba5d351aae97c18542597f5b2d56212b", "data/")],
    ),
    "ofa-specialized": (
        "50 published once-for-all specialised networks (34 MobileNetV3, 16 ProxylessNAS) as network "
        "configs; folder names carry device, latency (ms) and fine-tuned top-1 (%)",
        "none stated",
        [("", *_HAN_CAI, "ofa/ofa_specialized/")],
    ),
    "nb201": (
        "NAS-Bench-201: all 15,625 cells with 200-epoch test accuracy (%) on cifar10, cifar100 and "
        "ImageNet16-120 (NATS-Bench), and measured latency (ms) on 27 device settings (HELP)",
        "accuracies: none stated (NATS-Bench data); latencies: MIT",
        [
            ("latency/", *_HELP, "data/nasbench201/latency/"),
            ("", "v-tao/nats-bench-landscape", "b307ae5fe6e8d7043cd4fe7d1c3532288271adb7", ""),
        ],
    ),
    "help-ofa-gpu": (
        "5,000 OFA MobileNetV3 subnets (resolutions 128..224) with whole-network latency (ms) on "
        "2080Ti, Titan RTX, Titan Xp and V100 at batch 1, 32 and 64 (HELP)",
        "MIT",
        [("", *_HELP, "data/ofa/")],
    ),
}


def _build() -> dict[str, DatasetInfo]:
    out = {}
    for name, (desc, lic, rules) in _SPECS.items():
        files = []
        for rel, size, sha in FILES[name]:
            for prefix, repo, commit, up in rules:
                if rel.startswith(prefix):
                    url = _RAW.format(repo=repo, commit=commit, path=up + rel[len(prefix):] if prefix else up + rel)
                    break
            else:  # pragma: no cover - the tables above cover every file
                raise AssertionError(f"no address rule for {name}/{rel}")
            files.append(DataFile(name, rel, url, size, sha))
        sources = sorted({f"{repo} @ {commit[:12]}" for _, repo, commit, _ in rules})
        out[name] = DatasetInfo(name, desc, lic, "; ".join(sources), tuple(files))
    return out


_REGISTRY: dict[str, DatasetInfo] | None = None


def _registry() -> dict[str, DatasetInfo]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _build()
    return _REGISTRY


def list_datasets() -> list[str]:
    """Names of the registered public datasets."""
    return list(_registry())


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; unknown names raise DataError listing the known ones."""
    reg = _registry()
    if name not in reg:
        raise DataError(f"dataset: {name!r} is not registered; allowed: {allowed(reg)}")
    return reg[name]


# -- locations ---------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The download cache: ``PNAG_CACHE_DIR`` or pooch's per-user cache for ``pnag``."""
    env = os.environ.get("PNAG_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("pnag"))


def mirror_dir() -> Path | None:
    """The offline mirror ``PNAG_DATA_DIR``, or None when unset."""
    env = os.environ.get("PNAG_DATA_DIR")
    return Path(env).expanduser() if env else None


def _offline() -> bool:
    return os.environ.get("PNAG_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# -- verification ------------------------------------------------------------------------------
_HASHES: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process per (path, mtime, size)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _HASH_LOCK:
        if key in _HASHES:
            return _HASHES[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _HASH_LOCK:
        _HASHES[key] = digest
    return digest


def _problem(path: Path, f: DataFile) -> str | None:
    """None if ``path`` holds exactly ``f``; else a short description (truncated / altered)."""
    size = path.stat().st_size
    if size < f.size:
        return f"truncated: {size} bytes, expected {f.size}"
    if size > f.size:
        return f"altered: {size} bytes, expected {f.size}"
    got = file_sha256(path)
    if got != f.sha256:
        return f"altered: sha256 {got[:16]}..., expected {f.sha256[:16]}..."
    return None


def _fix_hint(f: DataFile) -> str:
    return (f"to fix: set PNAG_DATA_DIR to a mirror holding {f.dataset}/{f.relpath} unmodified, "
            f"or re-run `pnag data fetch {f.dataset}` with network access")


_ASKED: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar("pnag_files_asked", default=None)


@contextlib.contextmanager
def files_asked() -> Iterator[list[tuple[str, str]]]:
    """Within the block, the ``(dataset, relpath)`` of every :func:`get_file` call, in order: what a value
    computed in the block was read from (:func:`file_stamps` then tells whether those are still the files)."""
    asked: list[tuple[str, str]] = []
    token = _ASKED.set(asked)
    try:
        yield asked
    finally:
        _ASKED.reset(token)


def file_stamps(files: Iterable[tuple[str, str]]) -> tuple[tuple[str, int, int], ...]:
    """Where each ``(dataset, relpath)`` is read from now: ``(path, mtime ns, size)``, by :func:`get_file`
    (so it follows ``PNAG_DATA_DIR``, ``PNAG_CACHE_DIR`` and the files themselves, and raises as it does
    when a file can no longer be had). A cache of what was read from files keys on this."""
    out = []
    for dataset, relpath in dict.fromkeys(files):
        p = get_file(dataset, relpath)
        st = p.stat()
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def get_file(dataset: str, relpath: str) -> Path:
    """Local path of a verified copy of ``dataset/relpath`` (see the module docstring for the order)."""
    asked = _ASKED.get()
    if asked is not None:
        asked.append((dataset, relpath))
    f = get_dataset_info(dataset).file(relpath)
    looked: list[str] = []
    mirror = mirror_dir()
    if mirror is not None:
        mp = mirror / dataset / relpath
        if mp.is_file():
            bad = _problem(mp, f)
            if bad is None:
                return mp
            kind = bad.split(":")[0]
            raise DataError(f"data file {dataset}/{relpath} is {kind} in the offline mirror {mp} ({bad}); "
                            f"pnag never modifies the mirror: replace that file with the published one "
                            f"(from {f.url}) or unset PNAG_DATA_DIR and run `pnag data fetch {dataset}`")
        looked.append(f"mirror {mp} (PNAG_DATA_DIR): not there")
    else:
        looked.append("mirror: PNAG_DATA_DIR not set")
    cdir = cache_dir() / dataset / Path(relpath).parent
    cp = cdir / Path(relpath).name
    cache_note = ""
    if cp.is_file():
        bad = _problem(cp, f)
        if bad is None:
            return cp
        cp.unlink()  # never keep a corrupt file in the cache
        cache_note = f" (a {bad.split(':')[0]} copy was there and has been deleted: {bad})"
    looked.append(f"cache {cp}: not there{cache_note}")
    if _offline():
        looked.append(f"download from {f.url}: skipped (PNAG_OFFLINE=1)")
    else:
        try:
            return _download(f, cdir)
        except Exception as exc:  # network errors come in many types (requests, OSError, ValueError)
            looked.append(f"download from {f.url}: failed ({type(exc).__name__}: {str(exc)[:200]})")
            _clean_partial(cp, f)
    raise DataError(f"data file {dataset}/{relpath} is missing; looked at: " + "; ".join(looked)
                    + "; " + _fix_hint(f))


def _download(f: DataFile, cdir: Path) -> Path:
    import sys

    import pooch

    cdir.mkdir(parents=True, exist_ok=True)
    downloader = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), timeout=_DOWNLOAD_TIMEOUT_S)
    # pooch writes to a temporary file and only renames it into place after the sha256 matched.
    path = pooch.retrieve(f.url, known_hash=f"sha256:{f.sha256}", fname=Path(f.relpath).name,
                          path=cdir, downloader=downloader)
    return Path(path)


def _clean_partial(cp: Path, f: DataFile) -> None:
    """After a failed download: delete whatever is at ``cp`` unless it is the verified file."""
    if cp.is_file() and _problem(cp, f) is not None:
        cp.unlink()


def fetch(dataset: str) -> list[Path]:
    """Verified local paths of every file of ``dataset`` (downloading what is not yet there)."""
    info = get_dataset_info(dataset)
    return [get_file(dataset, f.relpath) for f in info.files]


__all__ = ["DataFile", "DatasetInfo", "list_datasets", "get_dataset_info", "get_file", "fetch",
           "cache_dir", "mirror_dir", "file_sha256", "files_asked", "file_stamps"]
