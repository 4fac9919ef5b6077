"""The once-for-all MobileNetV3 architecture (``ofa_mbv3_d234_e346_k357``) as a value, its checks and
its text forms; the space over it (decisions, encodings, sampling) is :mod:`pnag.space.mbv3`.

Five units; each unit has a depth in {2, 3, 4}; each of its four layer slots a kernel size in
{3, 5, 7} and an expand ratio in {3, 4, 6}. Slot ``4*u + i`` is unit ``u``, layer ``i``. Slots at
or beyond a unit's depth are unused and carry no choice: in canonical form they hold 0. The width
multiplier (1.0 or 1.2) selects the supernet; the input resolution defaults to 224.

Text forms:

* legacy string ``depths:kernels:expands`` (5, 20 and 20 comma-separated integers, 0 in unused
  slots; readers accept and ignore non-zero values there), as in the published PNAG release;
* the once-for-all dict ``{"ks": [20], "e": [20], "d": [5], "r": [224]}``;
* the Python-dict literal of the public ImageNet CSVs (``{'wid': None, 'ks': [...], ...}``), parsed
  with :func:`ast.literal_eval` (never ``eval``).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import MAX_INT_DIGITS, ArchError, allowed, check_ascii_number, parse_int, shown

N_UNITS = 5
MAX_DEPTH = 4
N_SLOTS = N_UNITS * MAX_DEPTH
DEPTHS = (2, 3, 4)
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
WIDTHS = (1.0, 1.2)
RESOLUTION_RANGE = (128, 224)  # the once-for-all space; inclusive
ENC_RESOLUTIONS = tuple(range(112, 225, 16))  # resolution one-hot of the 128-d encoding
DEFAULT_WIDTH = 1.2
DEFAULT_RESOLUTION = 224
DEFAULT_RESOLUTIONS = (160, 176, 192, 208, 224)  # once-for-all's elastic resolutions, searched by default


def _unit_layer(slot: int) -> str:
    return f"unit {slot // MAX_DEPTH}, layer {slot % MAX_DEPTH}"


def check_width(width: Any, what: str = "width") -> float:
    """Validate a width multiplier; returns it as a float (1.0 or 1.2)."""
    try:
        w = float(check_ascii_number(width, what, allowed(WIDTHS), ArchError) if isinstance(width, str) else width)
    except (TypeError, ValueError, OverflowError):
        raise ArchError(f"{what}: {shown(width)} is not a number; allowed: {allowed(WIDTHS)}") from None
    for ok in WIDTHS:
        if abs(w - ok) < 1e-9:
            return ok
    raise ArchError(f"{what}: {width!r} is not a width of the space; allowed: {allowed(WIDTHS)}")


def check_resolution(res: Any, what: str = "resolution") -> int:
    """Validate an input resolution (pixels, square)."""
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)):
        if isinstance(res, float) and res.is_integer():
            res = int(res)
        elif isinstance(res, str):
            res = parse_int(res, what, f"{RESOLUTION_RANGE[0]}..{RESOLUTION_RANGE[1]}", ArchError)
        else:
            lo, hi = RESOLUTION_RANGE
            raise ArchError(f"{what}: {shown(res)} is not an integer; allowed: {lo}..{hi}")
    res = int(res)
    lo, hi = RESOLUTION_RANGE
    if not lo <= res <= hi:
        raise ArchError(f"{what}: {shown(res)} is outside the space; allowed: {lo}..{hi}")
    return res


def check_resolutions(values: Any, what: str = "--resolutions") -> tuple[int, ...]:
    """Validate a list of input resolutions: sorted, distinct, each within the space."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)) or len(values) == 0:
        raise ArchError(f"{what}: {values!r}; allowed: a non-empty list of resolutions in "
                        f"{RESOLUTION_RANGE[0]}..{RESOLUTION_RANGE[1]}")
    out = sorted({check_resolution(v, what) for v in values})
    return tuple(out)


@dataclass(frozen=True)
class MBV3Arch:
    """One architecture of the once-for-all MobileNetV3 space, in canonical form.

    ``kernels`` and ``expands`` have 20 entries, 0 in unused slots. Construct through
    :meth:`MBV3Space.validate`, :func:`parse_arch` or :meth:`from_units` to get checked values.
    """

    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    width: float = DEFAULT_WIDTH
    resolution: int = DEFAULT_RESOLUTION
    space: str = field(default="mbv3", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Canonicalise and validate eagerly so that no malformed value ever exists.
        d, k, e = _check_parts(self.depths, self.kernels, self.expands, source="arch")
        object.__setattr__(self, "depths", d)
        object.__setattr__(self, "kernels", k)
        object.__setattr__(self, "expands", e)
        object.__setattr__(self, "width", check_width(self.width))
        object.__setattr__(self, "resolution", check_resolution(self.resolution))

    # -- views -----------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of searchable MBConv layers (sum of depths)."""
        return sum(self.depths)

    def layers(self) -> list[tuple[int, int, int, int]]:
        """Active layers as ``(unit, layer, kernel, expand)``, in network order."""
        out = []
        for u, d in enumerate(self.depths):
            for i in range(d):
                s = u * MAX_DEPTH + i
                out.append((u, i, self.kernels[s], self.expands[s]))
        return out

    def with_(self, **changes: Any) -> "MBV3Arch":
        """A copy with fields changed (e.g. ``arch.with_(width=1.0)``)."""
        return replace(self, **changes)

    def to_legacy(self) -> str:
        """The published legacy string ``depths:kernels:expands`` (0 in unused slots)."""
        j = lambda xs: ",".join(str(x) for x in xs)  # noqa: E731
        return f"{j(self.depths)}:{j(self.kernels)}:{j(self.expands)}"

    def to_ofa_dict(self, fill: int | None = None) -> dict:
        """The once-for-all dict ``{"ks", "e", "d", "r"}``.

        Unused slots hold 0 by default; ``fill`` puts a valid value there instead (once-for-all's
        own code indexes every slot, so ``fill=3`` gives a dict it accepts).
        """
        ks = [k if k or fill is None else fill for k in self.kernels]
        es = [e if e or fill is None else fill for e in self.expands]
        return {"ks": ks, "e": es, "d": list(self.depths), "r": [self.resolution]}

    def __str__(self) -> str:
        return self.to_legacy()

    @classmethod
    def from_units(
        cls,
        units: Sequence[Sequence[tuple[int, int]]],
        width: float = DEFAULT_WIDTH,
        resolution: int = DEFAULT_RESOLUTION,
    ) -> "MBV3Arch":
        """Build from ``units[u] = [(kernel, expand), ...]`` (one pair per active layer)."""
        if len(units) != N_UNITS:
            raise ArchError(f"arch units: got {len(units)} units; allowed: exactly {N_UNITS}")
        depths, ks, es = [], [0] * N_SLOTS, [0] * N_SLOTS
        for u, layers in enumerate(units):
            depths.append(len(layers))
            for i, (k, e) in enumerate(layers[:MAX_DEPTH]):
                ks[u * MAX_DEPTH + i], es[u * MAX_DEPTH + i] = k, e
        return cls(tuple(depths), tuple(ks), tuple(es), width, resolution)


def _as_int(value: Any, what: str, allowed_values: Sequence[int]) -> int:
    if isinstance(value, bool):
        raise ArchError(f"{what}: {value!r} is not a number; allowed: {allowed(allowed_values)}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return parse_int(value, what, allowed(allowed_values), ArchError, noun="a number")
    raise ArchError(f"{what}: {shown(value)} is not a number; allowed: {allowed(allowed_values)}")


def _check_parts(depths: Any, kernels: Any, expands: Any, source: str) -> tuple[tuple, tuple, tuple]:
    """Validate and canonicalise the three lists; unused slots become 0."""
    for name, vals, n in (("depths", depths, N_UNITS), ("kernels", kernels, N_SLOTS), ("expands", expands, N_SLOTS)):
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence) and not isinstance(vals, np.ndarray):
            raise ArchError(f"{source} {name}: {shown(vals)} is not a list; allowed: a list of {n} integers")
        if len(vals) != n:
            raise ArchError(f"{source} {name}: got {len(vals)} values; allowed: exactly {n}")
    d = tuple(_as_int(v, f"{source} depths[{u}] (unit {u})", DEPTHS) for u, v in enumerate(depths))
    for u, v in enumerate(d):
        if v not in DEPTHS:
            raise ArchError(f"{source} depths[{u}] (unit {u}): {v} is not allowed; allowed: {allowed(DEPTHS)}")
    ks, es = [0] * N_SLOTS, [0] * N_SLOTS
    for s in range(N_SLOTS):
        used = s % MAX_DEPTH < d[s // MAX_DEPTH]
        for name, vals, choices, out in (("kernels", kernels, KERNELS, ks), ("expands", expands, EXPANDS, es)):
            what = f"{source} {name}[{s}] ({_unit_layer(s)})"
            v = _as_int(vals[s], what, choices)
            if used:
                if v == 0:
                    raise ArchError(
                        f"{what}: 0 marks an unused slot, but unit {s // MAX_DEPTH} has depth "
                        f"{d[s // MAX_DEPTH]} so this layer is used; allowed: {allowed(choices)}"
                    )
                if v not in choices:
                    raise ArchError(f"{what}: {v} is not allowed; allowed: {allowed(choices)}")
                out[s] = v
            elif v != 0 and v not in choices:
                # Unused slots may carry a leftover value (ignored), but it must still be a choice.
                raise ArchError(f"{what}: {v} is not allowed in an unused slot; allowed: 0, {allowed(choices)}")
    return d, tuple(ks), tuple(es)


# -- text forms ----------------------------------------------------------------------------------
def parse_legacy(text: str, width: float = DEFAULT_WIDTH, resolution: int = DEFAULT_RESOLUTION) -> MBV3Arch:
    """Parse the published ``depths:kernels:expands`` string."""
    if not isinstance(text, str):
        raise ArchError(f"arch: {text!r} is not a string; allowed: 'depths:kernels:expands'")
    groups = text.strip().split(":")
    if len(groups) != 3:
        raise ArchError(
            f"arch {text!r}: found {len(groups)} ':'-separated groups; allowed: exactly 3 "
            "(depths:kernels:expands, each a comma-separated list)"
        )
    parts = []
    for name, g in zip(("depths", "kernels", "expands"), groups):
        if ";" in g or " " in g.strip() or "/" in g:
            raise ArchError(f"arch {name} {shown(g)}: values must be separated by ','; allowed separators: ',' inside "
                            "a group, ':' between groups")
        parts.append([x.strip() for x in g.split(",")] if g.strip() else [])
    return MBV3Arch(*_check_parts(*parts, source="arch"), width=width, resolution=resolution)


def parse_ofa_dict(obj: Mapping[str, Any], width: float | None = None) -> MBV3Arch:
    """Parse a once-for-all dict ``{"ks", "e", "d", "r"}`` (``r`` an int or a one-element list).

    ``wid`` (once-for-all writes ``None``) is accepted; a number there is taken as the width.
    """
    if not isinstance(obj, Mapping):
        raise ArchError(f"arch dict: {shown(obj)} is not a dict; allowed: "
                        "{'ks': [20], 'e': [20], 'd': [5], 'r': [R]}")
    missing = [k for k in ("ks", "e", "d") if k not in obj]
    if missing:
        raise ArchError(f"arch dict: missing key(s) {', '.join(missing)}; required: ks, e, d (r optional)")
    unknown = sorted(map(str, set(obj) - {"ks", "e", "d", "r", "wid", "w"}))
    if unknown:
        raise ArchError(f"arch dict: unknown key(s) {', '.join(unknown)}; allowed: ks, e, d, r, wid")
    d, k, e = _check_parts(obj["d"], obj["ks"], obj["e"], source="arch dict")
    r = obj.get("r", DEFAULT_RESOLUTION)
    if isinstance(r, (list, tuple)):
        if len(r) != 1:
            raise ArchError(f"arch dict r: {shown(r)} has {len(r)} values; allowed: one resolution")
        r = r[0]
    w = width
    wid = obj.get("wid", obj.get("w"))
    if w is None:
        w = DEFAULT_WIDTH if wid is None else wid
    return MBV3Arch(d, k, e, width=check_width(w, "arch dict wid" if wid is not None and width is None else "width"),
                    resolution=check_resolution(r, "arch dict r"))


def parse_dict_literal(text: str, width: float | None = None) -> MBV3Arch:
    """Parse the Python-dict literal of the public ImageNet CSVs, safely (``ast.literal_eval``)."""
    try:
        obj = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ArchError(f"arch dict literal {text[:80]!r}: not a valid Python/JSON dict literal (only literal values, "
                        "no expressions); allowed: {'ks': [20 ints], 'e': [20 ints], 'd': [5 ints], 'r': [224]}") from None
    return parse_ofa_dict(obj, width=width)


def _json_int(digits: str) -> int | str:
    """A JSON integer; one too long for ``int()`` stays text, for :func:`_as_int` to refuse by name."""
    return int(digits) if len(digits) <= MAX_INT_DIGITS else digits


def parse_arch(text: str, width: float | None = None, resolution: int | None = None) -> MBV3Arch:
    """Parse any supported text form: legacy string, JSON object or Python-dict literal.

    ``width`` / ``resolution`` override what the text says (the legacy string says neither).
    """
    if not isinstance(text, str):
        raise ArchError(f"arch: {shown(text)} is not a string")
    s = text.strip()
    if s.startswith("["):
        raise ArchError(f"arch {s[:80]!r}: a list is not an architecture; allowed: a legacy string "
                        "depths:kernels:expands or a dict {'ks': [20], 'e': [20], 'd': [5], 'r': [R]}")
    if s.startswith("{"):
        try:
            obj = json.loads(s, parse_int=_json_int)
        except (ValueError, RecursionError):  # not JSON (JSONDecodeError), or nested or long beyond Python's limits
            arch = parse_dict_literal(s, width=width)
        else:
            arch = parse_ofa_dict(obj, width=width)
        return arch if resolution is None else arch.with_(resolution=check_resolution(resolution))
    return parse_legacy(
        s,
        width=DEFAULT_WIDTH if width is None else check_width(width),
        resolution=DEFAULT_RESOLUTION if resolution is None else check_resolution(resolution),
    )


__all__ = ["N_UNITS", "MAX_DEPTH", "N_SLOTS", "DEPTHS", "KERNELS", "EXPANDS", "WIDTHS", "RESOLUTION_RANGE",
           "ENC_RESOLUTIONS", "DEFAULT_WIDTH", "DEFAULT_RESOLUTION", "DEFAULT_RESOLUTIONS", "check_width",
           "check_resolution", "check_resolutions", "MBV3Arch", "parse_legacy", "parse_ofa_dict", "parse_dict_literal",
           "parse_arch"]
