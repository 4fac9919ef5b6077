"""The static MobileNetV3: exact published state-dict layouts for all 15 zoo models, forward shapes."""

from __future__ import annotations

import json

import pytest
import torch

from pnag import zoo
from pnag.nn.mobilenetv3 import MobileNetV3, layer_specs, make_divisible, stage_widths
from pnag.space.mbv3 import MBV3Space, parse_legacy

@pytest.fixture(scope="module")
def layouts(shared_reference) -> dict:
    return json.loads((shared_reference / "state-dict-layouts.json").read_text())["pnag_models"]


def test_reference_covers_the_zoo(layouts):
    assert sorted(layouts) == sorted(zoo.list_models())


@pytest.mark.parametrize("name", zoo.list_models())
def test_published_layout_strict_load(name, layouts):
    model = zoo.create_model(name, pretrained=False)
    sd = model.state_dict()
    # Exactly the published keys, in order, with the published shapes.
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(k, list(s)) for k, s in layouts[name]]
    g = torch.Generator().manual_seed(0)
    fake = {k: (torch.randint(0, 100, s, generator=g) if k.endswith("num_batches_tracked")
                else torch.rand(s, generator=g)) for k, s in layouts[name]}
    model.load_state_dict(fake, strict=True)
    assert torch.equal(model.state_dict()[layouts[name][0][0]], fake[layouts[name][0][0]])
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 160, 160)).shape == (1, 1000)


def test_forward_shapes():
    model = zoo.create_model("pnag_cpu_30", pretrained=False).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 1000)
        assert model(torch.randn(1, 3, 160, 160)).shape == (1, 1000)
        assert model.forward_features(torch.randn(1, 3, 160, 160)).shape == (1, 1536)  # 1280 x 1.2
    a = MBV3Space(width=1.0).sample(1, seed=4)[0]
    small = MobileNetV3(a, n_classes=10, dropout=0.0).eval()
    with torch.no_grad():
        assert small(torch.randn(3, 3, 128, 128)).shape == (3, 10)
        assert small.forward_features(torch.randn(1, 3, 128, 128)).shape == (1, 1280)
    assert small.classifier.linear.in_features == 1280


def test_width_one_matches_supernet_widths():
    sw1, sw12 = stage_widths(1.0), stage_widths(1.2)
    assert sw1 == {"stem": 16, "first_block": 16, "units": (24, 40, 80, 112, 160), "final_expand": 960,
                   "feature_mix": 1280}
    assert sw12 == {"stem": 24, "first_block": 24, "units": (32, 48, 96, 136, 192), "final_expand": 1152,
                    "feature_mix": 1536}
    assert make_divisible(19.2) == 24 and make_divisible(134.4) == 136


def test_layer_specs_follow_the_architecture():
    a = parse_legacy(zoo.get_model_info("pnag_cpu_30").arch_string)
    specs = layer_specs(a)
    mb = [s for s in specs if s["kind"] == "mbconv"]
    assert [s["kind"] for s in specs[:2]] == ["stem", "first_block"] and specs[-1]["kind"] == "classifier"
    assert len(mb) == a.n_layers
    assert [(s["unit"], s["layer"], s["kernel"], s["expand"]) for s in mb] == a.layers()
    assert [s["stride"] for s in mb if s["layer"] == 0] == [2, 2, 2, 1, 2]
    assert [s["se"] for s in mb if s["layer"] == 0] == [False, True, False, True, True]
    assert all(s["shortcut"] == (s["layer"] > 0) for s in mb)  # unit 3 (stride 1) widens 96 -> 136
    assert specs[-3]["input_size"] == 7  # final expand at 224 / 32


def test_layouts_at_width_one_differ(layouts):
    # Same arch at width 1.0 has other shapes: the published (width 1.2) file must not fit.
    a = zoo.get_model_info("pnag_cpu_30").arch.with_(width=1.0)
    sd = MobileNetV3(a).state_dict()
    assert list(sd) == [k for k, _ in layouts["pnag_cpu_30"]]
    assert list(sd["first_conv.conv.weight"].shape) == [16, 3, 3, 3]
