"""The published PNAG models: a small registry in the style of timm's ``create_model``.

Architecture facts (the arch string, width, resolution) are kept apart from the pretrained-weight
metadata (URL, sha256 prefix). The table lives in ``pnag/resources/zoo.json`` and is read on first
use, never at import time.

>>> from pnag import zoo
>>> zoo.list_models()[:2]
['pnag_cpu_30', 'pnag_cpu_35']
>>> model = zoo.create_model("pnag-cpu-30", pretrained=False)  # random weights, no download
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import ArchError, DataError, PnagError, allowed
from .nn.mobilenetv3 import MobileNetV3
from .space.mbv3 import MBV3Arch, check_resolution, check_width, parse_arch, parse_legacy

_HASH = re.compile(r"-([a-f0-9]{8,})\.[A-Za-z0-9]+$")


@dataclass(frozen=True)
class ZooModel:
    """One published model: what it is (arch, width, resolution) and where its weights are.

    ``reported_latency_ms`` is the published measured latency on ``device``;
    ``reported_top1`` the published ImageNet top-1 in percent.
    """

    name: str
    platform: str
    device: str
    budget_ms: float
    arch_string: str
    width: float
    resolution: int
    weights_url: str
    reported_latency_ms: float
    reported_top1: float

    @property
    def arch(self) -> MBV3Arch:
        """The architecture as a value (at the model's width and resolution)."""
        return parse_legacy(self.arch_string, width=self.width, resolution=self.resolution)

    @property
    def file_name(self) -> str:
        """The published weight file name (ends in the first 8 hex digits of its sha256)."""
        return self.weights_url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str:
        """The sha256 prefix the published file name carries."""
        m = _HASH.search(self.file_name)
        return m.group(1) if m else ""

    @property
    def hyphen_name(self) -> str:
        return self.name.replace("_", "-")


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, ZooModel]:
    text = resources.files("pnag").joinpath("resources/zoo.json").read_text(encoding="utf-8")
    table = json.loads(text)
    out = {}
    for m in table["models"]:
        out[m["name"]] = ZooModel(
            name=m["name"], platform=m["platform"], device=m["device"], budget_ms=m["budget_ms"],
            arch_string=m["arch"], width=float(m.get("width", table["width"])),
            resolution=int(m.get("resolution", table["resolution"])), weights_url=m["weights"],
            reported_latency_ms=m["reported"]["latency_ms"], reported_top1=m["reported"]["top1"],
        )
    return out


def list_models(platform: str | None = None) -> list[str]:
    """Names of the published models (underscore form), optionally only those of ``platform``."""
    reg = _registry()
    if platform is not None:
        platforms = sorted({m.platform for m in reg.values()})
        if platform not in platforms:
            raise PnagError(f"platform: {platform!r} is not a zoo platform; allowed: {allowed(platforms)}")
        return [n for n, m in reg.items() if m.platform == platform]
    return list(reg)


def _canonical(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def is_model(name: str) -> bool:
    """Whether ``name`` (``pnag_cpu_30`` or ``pnag-cpu-30``) names a published model."""
    return isinstance(name, str) and _canonical(name) in _registry()


def get_model_info(name: str) -> ZooModel:
    """The registry entry of ``name``; accepts ``pnag_cpu_30`` and ``pnag-cpu-30``."""
    reg = _registry()
    if not isinstance(name, str) or _canonical(name) not in reg:
        raise PnagError(f"model: {name!r} is not a published model; allowed: {allowed(reg)}")
    return reg[_canonical(name)]


def resolve_arch(spec: str | MBV3Arch, width: float | None = None, resolution: int | None = None) -> MBV3Arch:
    """An architecture from a zoo name, any architecture text (see :func:`pnag.space.mbv3.parse_arch`)
    or an :class:`MBV3Arch`; ``width`` / ``resolution`` override its own."""
    if isinstance(spec, MBV3Arch):
        arch = spec
    elif isinstance(spec, str) and is_model(spec):
        arch = get_model_info(spec).arch
    elif isinstance(spec, str) and re.fullmatch(r"\s*[A-Za-z][\w.-]*\s*", spec):  # looks like a name
        raise ArchError(f"arch {spec!r}: neither a zoo model name nor an architecture; allowed: a name such as "
                        "pnag_cpu_30 (see `pnag zoo list`), a legacy string depths:kernels:expands or an OFA dict")
    elif isinstance(spec, str):
        return parse_arch(spec, width=width, resolution=resolution)
    else:
        raise ArchError(f"arch: {spec!r} is not an architecture; allowed: a zoo name, an MBV3Arch or architecture text")
    if width is not None:
        arch = arch.with_(width=check_width(width))
    if resolution is not None:
        arch = arch.with_(resolution=check_resolution(resolution))
    return arch


def _unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or ``{"state_dict": ...}``; drop a DataParallel ``module.`` prefix."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"weights {source}: not a state dict (a mapping of names to tensors); "
                        "allowed: a state dict or {'state_dict': state dict}")
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_state_dict_strict(model: torch.nn.Module, state_dict: Mapping[str, Any], source: str = "state dict") -> None:
    """``model.load_state_dict(strict=True)`` with a pnag error naming the first mismatch.

    The error names the first missing key, else the first unexpected key, else the first key whose
    shape differs (with both shapes).
    """
    sd = _unwrap_state_dict(state_dict, source)
    want = model.state_dict()
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    if missing:
        raise DataError(f"weights {source}: key {missing[0]!r} is missing ({len(missing)} missing in all); "
                        f"the model {_model_label(model)} needs exactly its {len(want)} state-dict keys")
    if unexpected:
        raise DataError(f"weights {source}: key {unexpected[0]!r} is unexpected ({len(unexpected)} unexpected in all); "
                        f"the model {_model_label(model)} has no such parameter")
    for k, t in want.items():
        if tuple(sd[k].shape) != tuple(t.shape):
            raise DataError(f"weights {source}: key {k!r} has shape {list(sd[k].shape)}; "
                            f"the model {_model_label(model)} needs {list(t.shape)}")
    model.load_state_dict(sd, strict=True)


def _model_label(model: torch.nn.Module) -> str:
    arch = getattr(model, "arch", None)
    return f"for arch {arch} (width {arch.width})" if isinstance(arch, MBV3Arch) else type(model).__name__


def load_weights(model: torch.nn.Module, path: str | os.PathLike, map_location: Any = "cpu") -> torch.nn.Module:
    """Load a local weight file into ``model`` (strictly) and return the model.

    The file is read with ``torch.load(weights_only=True)`` (no arbitrary unpickling); it may hold a
    bare state dict or ``{"state_dict": ...}``.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"weights: {str(path)!r} is not a file; allowed: a path to a .pt/.pth state-dict file")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... on bad files
        raise DataError(f"weights {str(path)!r}: cannot be read as a weights-only torch file "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                        "allowed: a state dict saved with torch.save") from None
    load_state_dict_strict(model, obj, source=repr(str(path)))
    return model


def _download_state_dict(info: ZooModel, map_location: Any, progress: bool) -> Any:
    """Fetch the published weights through torch.hub's cache, checking the sha256 prefix."""
    try:
        # torch.hub prints "Downloading ..." to stdout; keep stdout clean for JSON output.
        with contextlib.redirect_stdout(sys.stderr):
            return torch.hub.load_state_dict_from_url(
                info.weights_url, map_location=map_location, progress=progress, check_hash=True,
                file_name=info.file_name, weights_only=True,
            )
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "hash" in msg.lower():
            reason = f"the file's sha256 does not start with {info.hash_prefix} ({msg}); the partial file was discarded"
        else:
            reason = f"{type(exc).__name__}: {msg}"
        raise DataError(
            f"model {info.name}: downloading the pretrained weights from {info.weights_url} failed ({reason}). "
            f"Offline or behind a proxy? Download the file yourself and pass weights='/path/to/{info.file_name}' "
            "(CLI: --weights FILE), or use pretrained=False (CLI: --no-pretrained) for random weights"
        ) from None


def create_model(name: str, pretrained: bool = True, weights: str | os.PathLike | None = None,
                 map_location: Any = "cpu", progress: bool = True, **kwargs: Any) -> MobileNetV3:
    """Build the published model ``name`` (``pnag_cpu_30`` or ``pnag-cpu-30``).

    Args:
        name: a name from :func:`list_models`.
        pretrained: download the published weights (torch.hub cache, sha256 checked). Ignored when
            ``weights`` is given.
        weights: a local weight file to load instead of downloading.
        map_location: where tensors are loaded (``torch.load``'s argument).
        progress: show a download progress bar (stderr).
        **kwargs: passed to :class:`~pnag.nn.mobilenetv3.MobileNetV3` (``n_classes``, ``dropout``).
    Returns:
        the model, in eval mode when weights were loaded.
    """
    info = get_model_info(name)
    model = MobileNetV3(info.arch, **kwargs)
    if weights is not None:
        load_weights(model, weights, map_location=map_location)
        return model.eval()
    if pretrained:
        return load_pretrained(model, info.name, map_location=map_location, progress=progress).eval()
    return model


def load_pretrained(model: torch.nn.Module, name: str, map_location: Any = "cpu", progress: bool = True) -> torch.nn.Module:
    """Load the published weights of zoo model ``name`` into ``model`` (strictly); returns ``model``.

    Downloads through torch.hub's cache (``$TORCH_HOME/hub/checkpoints``) with the sha256 prefix of
    the published file name checked; a failed download raises a pnag error saying how to go on.
    """
    info = get_model_info(name)
    sd = _download_state_dict(info, map_location, progress)
    load_state_dict_strict(model, sd, source=f"{info.file_name} (downloaded)")
    return model


__all__ = ["ZooModel", "list_models", "is_model", "get_model_info", "resolve_arch", "create_model", "load_weights",
           "load_pretrained", "load_state_dict_strict"]
