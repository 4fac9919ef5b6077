"""The published per-layer latency tables, read as they are.

* ``lut:note10``: once-for-all's Samsung Note10 tables for the width-1.2 space, one YAML file per
  resolution 160, 176, 192, 208, 224 (dataset ``ofa-note10-lut-w1.2``). Summed as once-for-all's
  ``MBv3LatencyTable.predict_network_latency`` does: ``Conv`` (stem), one ``expanded_conv`` per
  block including the first (``expand`` = middle channels), ``Conv_1`` (final expand),
  ``AvgPool2D``, ``Conv_2`` (feature mix) and ``Logits``; the value is the entry's ``mean`` (ms).
* ``lut:i7-8700k``: NSGANetV2's Intel i7-8700K table, both widths, resolutions 96..256 step 4
  (dataset ``i7-8700k-lut``). Summed as NSGANetV2's ``look_up_latency``: ``first_conv``
  (output ``r // 2``), one ``MBConv`` per block including the first (``expand`` = ratio),
  ``final_expand_layer``, ``feature_mix_layer`` and ``classifier``; value ``mean`` (ms).

Both are :class:`~pnag.latency.base.TableSource` objects; a layer a table lacks raises a
:class:`pnag.errors.DataError` naming the missing key.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Mapping

from ..errors import DataError, check_number
from .base import TableSource, hwc as _hwc

NOTE10_DATASET = "ofa-note10-lut-w1.2"
NOTE10_RESOLUTIONS = (160, 176, 192, 208, 224)
NOTE10_WIDTH = 1.2
I7_DATASET = "i7-8700k-lut"
I7_FILE = "i7-8700K_lut.yaml"
I7_RESOLUTIONS = tuple(range(96, 257, 4))
N_CLASSES = 1000


def data_file(dataset: str, relpath: str) -> Path:
    """Path of a public data file: through ``pnag.data.registry.get_file`` when the registry is
    available, else from the offline mirror ``$PNAG_DATA_DIR/<dataset>/<relpath>``."""
    try:
        from ..data.registry import get_file  # type: ignore[attr-defined]
    except ImportError:
        get_file = None
    if get_file is not None:
        return Path(get_file(dataset, relpath))
    root = os.environ.get("PNAG_DATA_DIR")
    if not root:
        raise DataError(f"dataset {dataset}: file {relpath} is needed; set PNAG_DATA_DIR to an offline mirror "
                        "of the public datasets")
    p = Path(root) / dataset / relpath
    if not p.is_file():
        raise DataError(f"dataset {dataset}: {p} does not exist; PNAG_DATA_DIR={root} must hold {dataset}/{relpath}")
    return p


def read_yaml_table(path: str | Path) -> dict[str, float]:
    """A published per-layer YAML table as ``{key: mean ms}``; checks every entry has a number.

    Parsed once per process per file version (the i7 table takes about a second to parse)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise DataError(f"latency table {p}: cannot be read ({exc.strerror})") from None
    return dict(_read_yaml_table(str(p.resolve()), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=8)
def _read_yaml_table(path: str, mtime_ns: int, size: int) -> dict[str, float]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=loader)
    except yaml.YAMLError as exc:
        raise DataError(f"latency table {path}: not valid YAML ({exc})") from None
    if not isinstance(raw, Mapping):
        raise DataError(f"latency table {path}: top level is {type(raw).__name__}; allowed: a mapping key -> entry")
    out: dict[str, float] = {}
    for key, entry in raw.items():
        if not isinstance(entry, Mapping) or "mean" not in entry:
            raise DataError(f"latency table {path}: entry {key!r} has no 'mean' (ms)")
        out[str(key)] = check_number(entry["mean"], f"latency table {path}: entry {key!r} mean (ms)", positive=True)
    return out


def note10_keys(spec: dict) -> tuple[str, ...]:
    """once-for-all ``MBv3LatencyTable`` keys of one layer spec."""
    kind, s, cin, cout = spec["kind"], spec["input_size"], spec["in_channels"], spec["out_channels"]
    if kind == "stem":
        return (f"Conv-input:{_hwc(s, cin)}-output:{_hwc(spec['output_size'], cout)}",)
    if kind in ("first_block", "mbconv"):
        return (f"expanded_conv-input:{_hwc(s, cin)}-output:{_hwc(spec['output_size'], cout)}"
                f"-expand:{spec['mid_channels']}-kernel:{spec['kernel']}-stride:{spec['stride']}"
                f"-idskip:{int(spec['shortcut'])}-se:{int(spec['se'])}-hs:{int(spec['act'] == 'h_swish')}",)
    if kind == "final_expand":
        return (f"Conv_1-input:{_hwc(s, cin)}-output:{_hwc(s, cout)}",
                f"AvgPool2D-input:{_hwc(s, cout)}-output:{_hwc(1, cout)}")
    if kind == "feature_mix":
        return (f"Conv_2-input:{_hwc(1, cin)}-output:{_hwc(1, cout)}",)
    if kind == "classifier":
        return (f"Logits-input:{_hwc(1, cin)}-output:{N_CLASSES}",)
    raise ValueError(f"layer kind {kind!r}")


def i7_keys(spec: dict) -> tuple[str, ...]:
    """NSGANetV2 ``LatencyEstimator`` keys of one layer spec."""
    kind, s, cin, cout = spec["kind"], spec["input_size"], spec["in_channels"], spec["out_channels"]
    if kind == "stem":  # NSGANetV2 writes the stem output as r // 2
        return (f"first_conv-input:{_hwc(s, cin)}-output:{_hwc(s // 2, cout)}",)
    if kind in ("first_block", "mbconv"):
        return (f"MBConv-input:{_hwc(s, cin)}-output:{_hwc(spec['output_size'], cout)}-expand:{int(spec['expand'])}"
                f"-kernel:{spec['kernel']}-stride:{spec['stride']}-idskip:{int(spec['shortcut'])}"
                f"-se:{int(spec['se'])}",)
    if kind == "final_expand":
        return (f"final_expand_layer-input:{_hwc(s, cin)}-output:{_hwc(s, cout)}",)
    if kind == "feature_mix":
        return (f"feature_mix_layer-input:{_hwc(1, cin)}-output:{_hwc(1, cout)}",)
    if kind == "classifier":
        return (f"classifier-input:{cin}-output:{N_CLASSES}",)
    raise ValueError(f"layer kind {kind!r}")


def load_note10(resolution: int = 224) -> TableSource:
    """The Samsung Note10 tables as a latency source (width 1.2; ``resolution`` is the default for
    text-form architectures). Files are read when a resolution is first priced."""
    cache: dict[int, Mapping[str, float]] = {}

    def entries_for(width: float, res: int) -> Mapping[str, float]:
        if width != NOTE10_WIDTH or res not in NOTE10_RESOLUTIONS:
            return {}
        if res not in cache:
            cache[res] = read_yaml_table(data_file(NOTE10_DATASET, f"{res}_lookup_table.yaml"))
        return cache[res]

    coverage = (f"lut:note10 covers width {NOTE10_WIDTH} at resolutions "
                f"{', '.join(map(str, NOTE10_RESOLUTIONS[:-1]))} or {NOTE10_RESOLUTIONS[-1]}")
    return TableSource("lut:note10", note10_keys, entries_for, NOTE10_WIDTH, resolution, coverage,
                       device="Samsung Note10 (once-for-all, TFLite)")


def load_i7_8700k(width: float = 1.2, resolution: int = 224) -> TableSource:
    """The Intel i7-8700K table as a latency source (both widths; resolutions 96..256 step 4, of
    which the space uses 128..224). ``width`` / ``resolution`` are defaults for text forms."""
    cache: dict[str, Mapping[str, float]] = {}

    def entries_for(width: float, res: int) -> Mapping[str, float]:
        if "t" not in cache:
            cache["t"] = read_yaml_table(data_file(I7_DATASET, I7_FILE))
        return cache["t"]

    coverage = "lut:i7-8700k covers widths 1.0 and 1.2 at resolutions 96..256 in steps of 4"
    return TableSource("lut:i7-8700k", i7_keys, entries_for, width, resolution, coverage,
                       device="Intel Core i7-8700K (NSGANetV2, PyTorch CPU)")
