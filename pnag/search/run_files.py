"""A run directory's files: their format and version, and reading each one checked.

Files (each written atomically): ``config.json`` (format name and version, then the
:class:`~pnag.search.config.TrainConfig`), ``state.json`` (stages done), ``metrics.json``,
``data.pt`` (the measured table), ``predictors.pt``, ``ranker.pt``, ``generator.pt``, and a
``*.ckpt.pt`` while a stage is under way; a device-conditioned run (version 3) also ``devices.pt``
(:mod:`pnag.search.devices`: the reference architectures, each device's profile and the measured
table's latency on each device) and one archive per device in ``generator.pt``. Every file is checked when read: a damaged or foreign file
is reported by name, with what to do. :class:`pnag.search.run.Run` reads and writes them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import _io
from ..errors import DataError, PnagError
from .config import TrainConfig

RUN_FORMAT = "pnag-run"
RUN_VERSION = 2  # 2: skip-token generator, one-scale ranker labels, format field (1: no field)
DEVICE_RUN_VERSION = 3  # 3: a device-conditioned run (several latency sources or quantile budgets; devices.pt)
READ_VERSIONS = (RUN_VERSION, DEVICE_RUN_VERSION)

# data.pt: the measured table (decision indices, accuracy %, latency ms) and the fastest architecture
DATA_KEYS = {"idx": torch.int64, "accuracy": torch.float64, "latency": torch.float64, "fastest_idx": torch.int64}


def damaged(run_dir: Path, name: str, why: str) -> DataError:
    """The error for a run file ``name`` that is not what pnag train wrote."""
    return DataError(f"run {str(run_dir)!r}: {name} is damaged ({why}); re-run the pnag train command with -o "
                     f"{str(run_dir)!r} removed (or another -o) to rebuild it")


def read_json_file(run_dir: Path, name: str, kind: type, default: Any = None) -> Any:
    """A JSON file of the run, checked to hold a ``kind`` value (``default`` when absent)."""
    p = run_dir / name
    if not p.exists():
        return default
    value = _io.read_json_file(p, f"run {str(run_dir)!r}: {name} is damaged",
                               f"the file pnag train wrote; re-run the pnag train command with -o {str(run_dir)!r} "
                               "removed (or another -o) to rebuild it")
    if not isinstance(value, kind):
        raise damaged(run_dir, name, f"a JSON {type(value).__name__}, not a {kind.__name__}")
    return value


def config_document(config: TrainConfig) -> dict[str, Any]:
    """What ``config.json`` holds."""
    version = DEVICE_RUN_VERSION if config.device_conditioned else RUN_VERSION
    return {"format": RUN_FORMAT, "version": version, "config": config.to_json()}


def read_config(run_dir: Path) -> TrainConfig:
    """The run's configuration; a clear error for an old, foreign or damaged ``config.json``."""
    doc = read_json_file(run_dir, "config.json", dict)
    if doc is None:
        raise DataError(f"--run: {str(run_dir)!r} is not a training run (no config.json); allowed: a directory "
                        "written by pnag train -o")
    if doc.get("format") != RUN_FORMAT:
        if "space" in doc and "budgets" in doc:
            raise DataError(f"run {str(run_dir)!r}: written by an older pnag (run format 1, no version field); this "
                            f"pnag reads run format {RUN_VERSION}: re-run the same pnag train command with another -o")
        raise damaged(run_dir, "config.json", f"format {doc.get('format')!r}, not {RUN_FORMAT!r}")
    if doc.get("version") not in READ_VERSIONS:
        raise DataError(f"run {str(run_dir)!r}: run format version {doc.get('version')!r}; this pnag reads versions "
                        f"{', '.join(map(str, READ_VERSIONS))}: re-run the same pnag train command with another -o")
    try:
        config = TrainConfig.from_json(doc.get("config"))
    except (PnagError, TypeError, ValueError) as exc:
        raise damaged(run_dir, "config.json", str(exc)) from None
    if doc["version"] != config_document(config)["version"]:
        raise damaged(run_dir, "config.json", f"version {doc['version']} for "
                      f"{'a device-conditioned' if config.device_conditioned else 'a one-device'} run")
    return config


def load_pt_file(run_dir: Path, name: str, keys: Sequence[str] = ()) -> dict[str, Any]:
    """A ``.pt`` file of the run (``weights_only``), checked to be a dict with ``keys``."""
    p = run_dir / name
    if not p.exists():
        raise DataError(f"run {str(run_dir)!r}: {name} is missing; the run is incomplete (re-run the same pnag "
                        "train command to resume)")
    try:
        with warnings.catch_warnings():  # a damaged file makes torch warn before it raises: one message only
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        first = (str(exc).splitlines() or [""])[0][:120]
        raise damaged(run_dir, name, f"{type(exc).__name__}: {first}" if first else type(exc).__name__) from None
    if not isinstance(obj, dict):
        raise damaged(run_dir, name, f"holds a {type(obj).__name__}, not a dict")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise damaged(run_dir, name, f"no {', '.join(missing)}")
    return obj


def load_data(run_dir: Path, decisions: int) -> dict[str, torch.Tensor]:
    """``data.pt``: the measured table, checked to hold :data:`DATA_KEYS` tensors of ``decisions``-decision
    architectures (plus ``eval_measured``, the look-up rounds done, where :mod:`pnag.search.active` saved it)."""
    data = load_pt_file(run_dir, "data.pt", tuple(DATA_KEYS))
    for k, dtype in DATA_KEYS.items():
        if not isinstance(data[k], torch.Tensor) or data[k].dtype != dtype:
            raise damaged(run_dir, "data.pt", f"{k} is not a {dtype} tensor")
    n, T = len(data["idx"]), decisions
    if data["idx"].shape != (n, T) or data["accuracy"].shape != (n,) or data["latency"].shape != (n,) \
            or data["fastest_idx"].shape != (T,):
        raise damaged(run_dir, "data.pt", f"tensor shapes do not describe {T}-decision architectures")
    out = {k: data[k] for k in DATA_KEYS}
    if isinstance(data.get("eval_measured"), torch.Tensor) and data["eval_measured"].numel() == 1:
        out["eval_measured"] = data["eval_measured"]
    return out


def load_devices(run_dir: Path, names: Sequence[str], decisions: int, reference: int, rows: int) -> tuple:
    """``devices.pt`` of a device-conditioned run: the reference architectures ``(reference, decisions)``,
    the profile of each device of ``names`` and the measured table's latency (ms) on each ``(rows, D)``."""
    from .devices import profiles_from_state

    st = load_pt_file(run_dir, "devices.pt", ("latency",))
    try:
        profiles = profiles_from_state(st, names, decisions, reference)
        lat = st["latency"]
        if not isinstance(lat, torch.Tensor) or tuple(lat.shape) != (rows, len(names)):
            raise ValueError(f"latency is not a tensor of shape {(rows, len(names))}")
    except ValueError as exc:
        raise damaged(run_dir, "devices.pt", str(exc)) from None
    return st["reference_idx"].long(), profiles, lat.double()


__all__ = ["RUN_FORMAT", "RUN_VERSION", "DEVICE_RUN_VERSION", "READ_VERSIONS", "DATA_KEYS", "load_devices", "damaged", "read_json_file", "config_document", "read_config",
           "load_pt_file", "load_data"]
