"""Latency: measurement protocol, backends, invalid options, published tables and sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pnag.errors import DataError, PnagError
from pnag.latency import MeasureProtocol, load_i7_8700k, load_note10, measure_latency, measure_module
from pnag.latency.base import TableSource
from pnag.latency.measure import time_runs
from pnag.latency.published import I7_DATASET, I7_FILE, data_file, i7_keys, read_yaml_table
from pnag.sources import get_latency_source
from pnag.nn.mobilenetv3 import MobileNetV3
from pnag.space.mbv3 import MBV3Arch, MBV3Space

SMALL = MBV3Arch((2,) * 5, (3, 3, 0, 0) * 5, (3, 3, 0, 0) * 5, width=1.0, resolution=128)
TINY = dict(warmup=1, runs=3, min_time_s=0.0)


# -- protocol ------------------------------------------------------------------------------------
def test_protocol_counts_runs_and_time():
    calls = []

    def run():  # a fake runner that "takes" 2 ms
        calls.append(1)
        return 2.0

    t = time_runs(run, MeasureProtocol(warmup=4, runs=3, min_time_s=0.0))
    assert len(t) == 3 and len(calls) == 7  # 4 warm-up + 3 timed
    calls.clear()
    t = time_runs(run, MeasureProtocol(warmup=0, runs=3, min_time_s=0.05))  # 50 ms of 2 ms runs
    assert len(t) == 25
    t = time_runs(run, MeasureProtocol(warmup=0, runs=3, min_time_s=10.0, max_runs=7))
    assert len(t) == 7


def test_measurement_fields_and_threads_restored():
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m = measure_latency(SMALL, backend="torch", threads=1, batch=2, **TINY)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)
    assert m.runs == 3 and m.warmup == 1
    assert m.p25_ms <= m.median_ms <= m.p75_ms and m.min_ms <= m.median_ms
    assert m.iqr_ms == pytest.approx(m.p75_ms - m.p25_ms) and m.median_ms > 0
    e = m.env
    assert e.threads == 1 and e.batch == 2 and e.resolution == 128 and e.backend == "torch"
    assert e.cpu_model and e.cores >= 1 and e.torch_version == torch.__version__
    assert "torch" in e.backend_version
    d = m.to_dict()
    assert d["env"]["batch"] == 2 and set(d) >= {"median_ms", "iqr_ms", "p25_ms", "p75_ms", "runs", "env"}


def test_measure_text_arch_resolution_override_and_module():
    m = measure_latency(SMALL.to_legacy(), width=1.0, resolution=160, threads=1, **TINY)
    assert m.env.resolution == 160
    net = MobileNetV3(SMALL)
    assert measure_latency(net, threads=1, **TINY).env.resolution == 128  # from net.arch
    with pytest.raises(PnagError, match="resolution"):
        measure_latency(nn.Conv2d(3, 4, 3), threads=1, **TINY)
    assert measure_latency(nn.Conv2d(3, 4, 3), threads=1, resolution=16, **TINY).env.resolution == 16


def test_onnxruntime_backend():
    m = measure_module(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Hardswish()), (1, 3, 32, 32), "onnxruntime", threads=1,
                       protocol=MeasureProtocol(1, 3, 0.0))
    assert m.env.backend == "onnxruntime" and "onnxruntime" in m.env.backend_version and m.runs == 3
    assert m.median_ms > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_backend():
    m = measure_latency(SMALL, backend="torch-cuda", **TINY)
    assert m.env.backend == "torch-cuda" and m.median_ms > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_backend_without_gpu_is_a_clear_error():
    with pytest.raises(PnagError, match="torch-cuda.*no CUDA device"):
        measure_latency(SMALL, backend="torch-cuda", **TINY)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(backend="tensorrt"), r"backend: 'tensorrt' is not known; allowed: onnxruntime, torch or torch-cuda"),
    (dict(threads=0), r"threads: 0 is not allowed; allowed: an integer >= 1"),
    (dict(threads=-2), r"threads: -2"),
    (dict(threads=True), r"threads: True"),
    (dict(batch=0), r"batch: 0 is not allowed; allowed: an integer >= 1"),
    (dict(batch=-4), r"batch: -4"),
    (dict(runs=0), r"runs: 0 is not allowed"),
    (dict(warmup=-1), r"warmup: -1"),
    (dict(min_time_s=-1.0), r"min_time_s: -1.0"),
    (dict(resolution=500), r"resolution: 500 is outside the space"),
    (dict(width=1.1), r"width: 1.1"),
])
def test_invalid_options(kwargs, pattern):
    with pytest.raises(PnagError, match=pattern):
        measure_latency(SMALL, **kwargs)


# -- published tables ----------------------------------------------------------------------------
def _ofa_style_keys(net: MobileNetV3, r: int, flavour: str) -> list[str]:
    """Keys walked from the module itself, as once-for-all / NSGANetV2 do (independent of layer_specs)."""
    keys = []
    c0 = net.first_conv.conv.out_channels
    f = (r + 1) // 2
    keys.append(f"Conv-input:{r}x{r}x3-output:{f}x{f}x{c0}" if flavour == "note10"
                else f"first_conv-input:{r}x{r}x3-output:{r // 2}x{r // 2}x{c0}")
    for blk in net.blocks:
        c = blk.mobile_inverted_conv
        o = (f - 1) // c.stride + 1
        base = f"input:{f}x{f}x{c.in_channels}-output:{o}x{o}x{c.out_channels}"
        if flavour == "note10":
            keys.append(f"expanded_conv-{base}-expand:{c.depth_conv.conv.in_channels}-kernel:{c.kernel_size}"
                        f"-stride:{c.stride}-idskip:{int(blk.has_shortcut)}-se:{int(c.use_se)}"
                        f"-hs:{int(c.act == 'h_swish')}")
        else:
            keys.append(f"MBConv-{base}-expand:{int(c.expand_ratio)}-kernel:{c.kernel_size}-stride:{c.stride}"
                        f"-idskip:{int(blk.has_shortcut)}-se:{int(c.use_se)}")
        f = o
    fe, fm, cl = net.final_expand_layer.conv, net.feature_mix_layer.conv, net.classifier.linear
    if flavour == "note10":
        keys += [f"Conv_1-input:{f}x{f}x{fe.in_channels}-output:{f}x{f}x{fe.out_channels}",
                 f"AvgPool2D-input:{f}x{f}x{fe.out_channels}-output:1x1x{fe.out_channels}",
                 f"Conv_2-input:1x1x{fm.in_channels}-output:1x1x{fm.out_channels}",
                 f"Logits-input:1x1x{cl.in_features}-output:{cl.out_features}"]
    else:
        keys += [f"final_expand_layer-input:{f}x{f}x{fe.in_channels}-output:{f}x{f}x{fe.out_channels}",
                 f"feature_mix_layer-input:1x1x{fm.in_channels}-output:1x1x{fm.out_channels}",
                 f"classifier-input:{cl.in_features}-output:{cl.out_features}"]
    return keys


def test_note10_sums_like_once_for_all(use_mirror):
    src = load_note10()
    for r in (160, 224):
        table = read_yaml_table(use_mirror / "ofa-note10-lut-w1.2" / f"{r}_lookup_table.yaml")
        for arch in MBV3Space(1.2, r).sample(5, seed=r):
            want = sum(table[k] for k in _ofa_style_keys(MobileNetV3(arch), r, "note10"))
            assert src.latency_of(arch) == pytest.approx(want, rel=1e-9)


def test_i7_sums_like_nsganetv2(use_mirror):
    src = load_i7_8700k()
    table = read_yaml_table(use_mirror / I7_DATASET / I7_FILE)
    for w, r in ((1.0, 128), (1.2, 224), (1.2, 172)):
        for arch in MBV3Space(w, r).sample(5, seed=r):
            want = sum(table[k] for k in _ofa_style_keys(MobileNetV3(arch), r, "i7"))
            assert src.latency_of(arch) == pytest.approx(want, rel=1e-9)


def test_published_tables_price_every_arch_of_their_widths_and_resolutions(use_mirror):
    cases = [(load_note10(), [(1.2, r) for r in (160, 176, 192, 208, 224)]),
             (load_i7_8700k(), [(w, r) for w in (1.0, 1.2) for r in range(128, 225, 4)])]
    for src, grid in cases:
        for w, r in grid:
            assert src.covers(w, r), (src.name, w, r)  # every slot x kernel x expand entry exists
            archs = MBV3Space(w, r).sample(120, seed=r)
            lat = src.latency_ms(archs)
            assert np.isfinite(lat).all() and (lat > 0).all()
            t = src.slot_table(w, r)
            assert len(t.all_keys()) >= 94


def test_published_tables_missing_entries_are_named(use_mirror):
    note10, i7 = load_note10(), load_i7_8700k()
    arch = MBV3Space(1.2, 224).sample(1, seed=0)[0]
    with pytest.raises(DataError, match=r"no entry 'Conv-input:170x170x3-output:85x85x24'.*resolutions 160"):
        note10.latency_ms([arch.with_(resolution=170)])
    with pytest.raises(DataError, match=r"no entry 'Conv-input:224x224x3-output:112x112x16'.*width 1.2"):
        note10.latency_ms([arch.with_(width=1.0)])
    with pytest.raises(DataError, match=r"no entry 'first_conv-input:130x130x3-output:65x65x24'"):
        i7.latency_ms([arch.with_(resolution=130)])
    # A table with one hole: only archs that use it fail, and the error names that key.
    table = read_yaml_table(data_file(I7_DATASET, I7_FILE))
    hole = "MBConv-input:14x14x136-output:7x7x192-expand:6-kernel:7-stride:2-idskip:0-se:1"
    holed = {k: v for k, v in table.items() if k != hole}
    src = TableSource("holed", i7_keys, lambda w, r: holed, 1.2, 224, "test table")
    # slot 16 = unit 4, layer 0
    uses = arch.with_(kernels=arch.kernels[:16] + (7,) + arch.kernels[17:],
                      expands=arch.expands[:16] + (6,) + arch.expands[17:])
    spares = uses.with_(kernels=uses.kernels[:16] + (3,) + uses.kernels[17:])
    assert np.isfinite(src.latency_ms([spares])).all()
    with pytest.raises(DataError, match=hole):
        src.latency_ms([spares, uses])
    idx = torch.as_tensor(np.stack([MBV3Space().to_indices(a) for a in (spares, uses)]))
    with pytest.raises(DataError, match=hole):
        src.latency_from_indices(idx)


def test_vectorised_pricing_matches_per_arch(use_mirror):
    src = get_latency_source("lut:i7-8700k")
    space = MBV3Space(1.2, 224)
    archs = space.sample(300, seed=3)
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in archs]))
    t = src.latency_from_indices(idx)
    assert t.dtype == torch.float32 and t.shape == (300,)
    np.testing.assert_allclose(t.numpy(), src.latency_ms(archs), rtol=1e-5)
    np.testing.assert_allclose(src.latency_from_indices(idx.numpy()), src.latency_ms(archs), rtol=1e-12)
    # inactive decisions do not change the price
    mask = space.active_mask(idx)
    scrambled = torch.where(mask, idx, torch.randint_like(idx, 0, 3))
    np.testing.assert_allclose(src.latency_from_indices(scrambled).numpy(), t.numpy(), rtol=1e-6)


# -- sources -------------------------------------------------------------------------------------
def test_unknown_source_lists_the_forms():
    for bad in ("foo", "lut:", "nb201", "", "table:other:x"):
        with pytest.raises(PnagError, match=r"allowed forms: lut:FILE, lut:note10, lut:i7-8700k"):
            get_latency_source(bad)


def test_source_text_forms_and_space_defaults(use_mirror):
    src = get_latency_source("lut:i7-8700k", space=MBV3Space(1.0, 160))
    a = MBV3Space(1.0, 160).sample(1, seed=1)[0]
    assert src.latency_ms([a.to_legacy()])[0] == pytest.approx(src.latency_of(a))
    assert src.unit == "ms" and src.width == 1.0 and src.resolution == 160


def test_nb201_source(use_mirror):
    from pnag.data.nb201 import load_nb201

    src = get_latency_source("nb201:pixel3")
    bench = load_nb201()
    archs = bench.archs[:3]
    want = bench.latency("pixel3")[[bench.index_of(a) for a in archs]]
    np.testing.assert_allclose(src.latency_ms(archs), want)
    np.testing.assert_allclose(src.latency_ms([a.to_string() for a in archs]), want)


def test_help_ofa_gpu_source(use_mirror):
    from pnag.data import load_help_ofa_gpu

    archs, lat = load_help_ofa_gpu()
    src = get_latency_source("table:help-ofa-gpu:v100_1")
    assert src.latency_ms(archs[:2]) == pytest.approx(lat["v100_1"][:2])
    outside = MBV3Arch((4,) * 5, (7,) * 20, (6,) * 20, 1.2, 224)
    if outside not in set(archs):
        with pytest.raises(DataError, match="is not in the table"):
            src.latency_ms([outside])
    with pytest.raises(PnagError, match="allowed: .*v100_1"):
        get_latency_source("table:help-ofa-gpu:h100_1")


def test_measure_source():
    from pnag.latency.base import MeasuredSource

    src = MeasuredSource("torch", threads=1, **TINY)
    v = src.latency_ms([SMALL, SMALL.with_(resolution=160)])
    assert v.shape == (2,) and (v > 0).all()
