"""The once-for-all supernet: published layout, strict loading, weight inheritance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pnag.errors import ArchError, DataError
from pnag.nn.mobilenetv3 import MobileNetV3
from pnag.nn.supernet import DynamicDepthwiseConv2d, OFAMobileNetV3, load_supernet, random_supernet, randomize_
from pnag.space.mbv3 import MBV3Space

LAYOUTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "state-dict-layouts.json"


@pytest.fixture(scope="module")
def layouts() -> dict:
    if not LAYOUTS.is_file():
        pytest.skip("no ../shared/reference/state-dict-layouts.json beside the checkout")
    return json.loads(LAYOUTS.read_text())


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_state_dict_layout_equals_published(layouts, width):
    got = [[k, list(v.shape)] for k, v in OFAMobileNetV3(width).state_dict().items()]
    assert got == layouts[f"supernet_w{width}"]


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_strict_load_of_published_layout(layouts, width, tmp_path):
    g = torch.Generator().manual_seed(1)
    state = {k: (torch.randint(0, 5, s, generator=g) if k.endswith("num_batches_tracked")
                 else torch.rand(s, generator=g)) for k, s in layouts[f"supernet_w{width}"]}
    path = tmp_path / "ofa.pth"
    torch.save({"state_dict": state}, path)  # once-for-all's checkpoint wrapping
    net = load_supernet(path, width)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    # a bare state dict is accepted too
    assert torch.equal(load_supernet(state, width).classifier.linear.bias, state["classifier.linear.bias"])


def test_wrong_layout_names_the_key():
    state = OFAMobileNetV3(1.2).state_dict()
    with pytest.raises(DataError, match=r"first_conv\.conv\.weight.*\[24, 3, 3, 3\].*\[16, 3, 3, 3\]"):
        load_supernet(state, width=1.0)
    state.pop("blocks.3.mobile_inverted_conv.depth_conv.conv.7to5_matrix")
    with pytest.raises(DataError, match=r"blocks\.3\.mobile_inverted_conv\.depth_conv\.conv\.7to5_matrix"):
        load_supernet(state, width=1.2)


def test_unreadable_checkpoint(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.pth"):
        load_supernet(bad, 1.2)
    with pytest.raises(DataError, match="missing.pth"):
        load_supernet(tmp_path / "missing.pth", 1.2)


def test_kernel_transform_follows_once_for_all():
    """3x3 = centre of (7->5 transformed) through 5to3; identity matrices give the plain centre crop."""
    conv = DynamicDepthwiseConv2d(4, stride=1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        conv.conv.weight.copy_(torch.randn(4, 1, 7, 7, generator=g))
        assert torch.equal(conv.active_filter(4, 3), conv.conv.weight[:, :, 2:5, 2:5])
        m75, m53 = torch.randn(25, 25, generator=g), torch.randn(9, 9, generator=g)
        conv.transform_matrix(7, 5).copy_(m75)
        conv.transform_matrix(5, 3).copy_(m53)
    w = conv.conv.weight.detach()
    five = (w[:, 0, 1:6, 1:6].reshape(4, 25) @ m75.T).reshape(4, 1, 5, 5)
    three = (five[:, 0, 1:4, 1:4].reshape(4, 9) @ m53.T).reshape(4, 1, 3, 3)
    assert torch.allclose(conv.active_filter(4, 7), w)
    assert torch.allclose(conv.active_filter(4, 5), five, atol=1e-5)
    assert torch.allclose(conv.active_filter(2, 3), three[:2], atol=1e-5)
    x = torch.randn(1, 4, 9, 9, generator=g)
    assert torch.allclose(conv(x, 3), F.conv2d(x, three, padding=1, groups=4), atol=1e-5)


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_extracted_subnet_equals_active_supernet(width):
    """20 random archs in all (10 per width); random weights, BN statistics and kernel transforms."""
    net = random_supernet(width, seed=11)
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    archs = MBV3Space(width=width, resolution=128).sample(10, seed=int(width * 10))
    with torch.no_grad():
        for arch in archs:
            net.set_active(arch)
            sub = net.get_active_subnet()
            assert isinstance(sub, MobileNetV3) and sub.arch == arch
            ref, out = net(x), sub.eval()(x)
            assert out.abs().max() > 0.1  # a non-degenerate output
            assert (ref - out).abs().max().item() <= 1e-5, arch


def test_subnet_inherits_weights_by_value():
    net = random_supernet(1.0, seed=2)
    arch = MBV3Space(width=1.0).sample(1, seed=5)[0]
    sub = net.get_active_subnet(arch)
    u, i, k, e = arch.layers()[0]
    dyn = net.blocks[1 + 4 * u + i].mobile_inverted_conv
    mid = sub.blocks[1].mobile_inverted_conv.mid_channels
    assert torch.equal(sub.blocks[1].mobile_inverted_conv.inverted_bottleneck.bn.running_var,
                       dyn.inverted_bottleneck.bn.bn.running_var[:mid])
    with torch.no_grad():  # no shared storage: changing the subnet leaves the supernet alone
        sub.blocks[1].mobile_inverted_conv.point_linear.conv.weight.zero_()
    assert dyn.point_linear.conv.conv.weight.abs().sum() > 0


def test_randomize_is_seeded_and_width_checked():
    a, b = randomize_(OFAMobileNetV3(1.0), seed=4), randomize_(OFAMobileNetV3(1.0), seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = randomize_(OFAMobileNetV3(1.0), seed=5)
    assert not torch.equal(a.classifier.linear.weight, c.classifier.linear.weight)
    arch = MBV3Space(width=1.2).sample(1, seed=0)[0]
    with pytest.raises(ArchError, match="width"):
        a.set_active(arch)
