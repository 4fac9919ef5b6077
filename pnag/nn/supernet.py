"""The once-for-all MobileNetV3 supernet (``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``).

One network holds the largest ("max") weights of every layer of the space: 20 MBConv layers with
7x7 depthwise kernels and expand ratio 6. An architecture selects a sub-network:

* depth: the first ``d`` layers of each unit run, the rest are skipped;
* expand ratio: the first ``make_divisible(round(cin * e))`` middle channels, in stored order
  (batch norm and squeeze-and-excitation use the statistics and weights of those first channels;
  SE reduces to the first ``make_divisible(mid // 4)`` channels);
* kernel size: the centre of the 7x7 kernel; for 5 and 3 the cropped kernel passes through the
  learned kernel transformation matrices in turn (7 -> 5 through ``7to5_matrix``, then 5 -> 3
  through ``5to3_matrix``), as once-for-all's released supernets do (kernel transform mode 1).

Module names mirror once-for-all so that ``state_dict()`` keys and shapes, in order, equal the
published checkpoints (``load_state_dict(strict=True)`` works). :meth:`OFAMobileNetV3.get_active_subnet`
returns the static :class:`pnag.nn.MobileNetV3` of an architecture with the inherited weights.
"""

from __future__ import annotations

import os
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArchError, DataError
from ..space.mbv3 import KERNELS, MAX_DEPTH, N_SLOTS, N_UNITS, MBV3Arch, check_width
from .mobilenetv3 import (
    UNIT_ACTS,
    UNIT_SE,
    UNIT_STRIDES,
    Classifier,
    MBBlock,
    MBConvLayer,
    MobileNetV3,
    SEModule,
    conv_bn_act,
    middle_channels,
    se_channels,
    stage_widths,
)

MAX_EXPAND = 6
MAX_KERNEL = max(KERNELS)
SUPERNET_NAMES = {1.0: "ofa_mbv3_d234_e346_k357_w1.0", 1.2: "ofa_mbv3_d234_e346_k357_w1.2"}

_ACTS = {"relu": F.relu, "h_swish": F.hardswish}


class DynamicBatchNorm2d(nn.Module):
    """Batch norm over the first ``x.size(1)`` channels of a max-width ``nn.BatchNorm2d``."""

    def __init__(self, max_channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(max_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn, c = self.bn, x.size(1)
        if c == bn.num_features:
            return bn(x)
        factor = 0.0
        if bn.training and bn.track_running_stats:
            bn.num_batches_tracked += 1
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        # In training mode the sliced running statistics (views) are updated in place.
        return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                            bn.training or not bn.track_running_stats, factor, bn.eps)

    def active_state(self, channels: int) -> dict[str, torch.Tensor]:
        """``nn.BatchNorm2d(channels)`` state of the first ``channels`` channels."""
        bn = self.bn
        return {"weight": bn.weight[:channels], "bias": bn.bias[:channels],
                "running_mean": bn.running_mean[:channels], "running_var": bn.running_var[:channels],
                "num_batches_tracked": bn.num_batches_tracked}


class DynamicPointwise(nn.Module):
    """1x1 convolution (no bias) + dynamic batch norm (+ activation) over leading channels."""

    def __init__(self, max_in: int, max_out: int, act: str | None):
        super().__init__()
        self.conv = _Holder(nn.Conv2d(max_in, max_out, 1, bias=False))
        self.bn = DynamicBatchNorm2d(max_out)
        self.act = act

    def active_weight(self, out_channels: int, in_channels: int) -> torch.Tensor:
        return self.conv.conv.weight[:out_channels, :in_channels]

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        x = self.bn(F.conv2d(x, self.active_weight(out_channels, x.size(1)).contiguous()))
        return _ACTS[self.act](x) if self.act else x


class _Holder(nn.Module):
    """A plain container giving once-for-all's extra ``.conv`` level in the state-dict keys."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv


class DynamicDepthwiseConv2d(nn.Module):
    """Depthwise convolution with elastic kernel size (3, 5, 7) and channel count.

    Holds the 7x7 weight and the kernel transformation matrices ``5to3_matrix`` (9x9) and
    ``7to5_matrix`` (25x25), registered in that order as in once-for-all.
    """

    def __init__(self, max_channels: int, stride: int, kernels: tuple[int, ...] = KERNELS):
        super().__init__()
        self.kernels = tuple(sorted(set(kernels)))
        self.stride = stride
        self.conv = nn.Conv2d(max_channels, max_channels, self.kernels[-1], stride, groups=max_channels, bias=False)
        for small, large in zip(self.kernels, self.kernels[1:]):
            self.register_parameter(f"{large}to{small}_matrix", nn.Parameter(torch.eye(small * small)))

    def transform_matrix(self, src: int, dst: int) -> torch.Tensor:
        return self._parameters[f"{src}to{dst}_matrix"]

    def active_filter(self, channels: int, kernel: int) -> torch.Tensor:
        """The ``(channels, 1, kernel, kernel)`` depthwise filter of the active kernel size."""
        if kernel not in self.kernels:
            raise ArchError(f"kernel size: {kernel}; allowed: {', '.join(map(str, self.kernels))}")
        w = self.conv.weight[:channels]
        # Shrink step by step from the largest kernel: centre crop, then the learned linear map.
        for src, dst in zip(self.kernels[::-1], self.kernels[-2::-1]):
            if src <= kernel:
                break
            s = (src - dst) // 2
            crop = w[:, :, s:s + dst, s:s + dst].reshape(-1, dst * dst)
            w = F.linear(crop, self.transform_matrix(src, dst)).reshape(channels, 1, dst, dst)
        return w

    def forward(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        c = x.size(1)
        return F.conv2d(x, self.active_filter(c, kernel).contiguous(), None, self.stride, kernel // 2, 1, c)


class DynamicDepthwise(nn.Module):
    """Depthwise stage of an elastic MBConv layer: conv, batch norm, activation, optional SE."""

    def __init__(self, max_channels: int, stride: int, act: str, se: bool):
        super().__init__()
        self.conv = DynamicDepthwiseConv2d(max_channels, stride)
        self.bn = DynamicBatchNorm2d(max_channels)
        self.act = act
        self.se = SEModule(max_channels) if se else None

    def se_active_state(self, channels: int) -> dict[str, torch.Tensor]:
        """State of ``SEModule(channels)``: first reduce channels, first ``channels`` inputs."""
        fc, r = self.se.fc, se_channels(channels)
        return {"fc.reduce.weight": fc.reduce.weight[:r, :channels], "fc.reduce.bias": fc.reduce.bias[:r],
                "fc.expand.weight": fc.expand.weight[:channels, :r], "fc.expand.bias": fc.expand.bias[:channels]}

    def forward(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        x = _ACTS[self.act](self.bn(self.conv(x, kernel)))
        if self.se is None:
            return x
        p = self.se_active_state(x.size(1))
        y = x.mean((2, 3), keepdim=True)
        y = F.relu(F.conv2d(y, p["fc.reduce.weight"].contiguous(), p["fc.reduce.bias"]))
        y = F.hardsigmoid(F.conv2d(y, p["fc.expand.weight"].contiguous(), p["fc.expand.bias"]))
        return x * y


class DynamicMBConvLayer(nn.Module):
    """Elastic inverted bottleneck: expand ratio 3/4/6 and kernel 3/5/7 chosen per call."""

    def __init__(self, cin: int, cout: int, stride: int, act: str, se: bool):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = cin, cout, stride
        self.act, self.use_se = act, se
        mid = middle_channels(cin, MAX_EXPAND)
        self.inverted_bottleneck = DynamicPointwise(cin, mid, act)
        self.depth_conv = DynamicDepthwise(mid, stride, act, se)
        self.point_linear = DynamicPointwise(mid, cout, None)

    def forward(self, x: torch.Tensor, kernel: int, expand: int) -> torch.Tensor:
        mid = middle_channels(x.size(1), expand)
        x = self.inverted_bottleneck(x, mid)
        x = self.depth_conv(x, kernel)
        return self.point_linear(x, self.out_channels)

    def active_state(self, kernel: int, expand: int) -> dict[str, torch.Tensor]:
        """State dict of the static :class:`MBConvLayer` of this kernel and expand ratio."""
        cin, mid = self.in_channels, middle_channels(self.in_channels, expand)
        ib, dc, pl = self.inverted_bottleneck, self.depth_conv, self.point_linear
        state = {"inverted_bottleneck.conv.weight": ib.active_weight(mid, cin)}
        state.update({f"inverted_bottleneck.bn.{k}": v for k, v in ib.bn.active_state(mid).items()})
        state["depth_conv.conv.weight"] = dc.conv.active_filter(mid, kernel)
        state.update({f"depth_conv.bn.{k}": v for k, v in dc.bn.active_state(mid).items()})
        if dc.se is not None:
            state.update({f"depth_conv.se.{k}": v for k, v in dc.se_active_state(mid).items()})
        state["point_linear.conv.weight"] = pl.active_weight(self.out_channels, mid)
        state.update({f"point_linear.bn.{k}": v for k, v in pl.bn.active_state(self.out_channels).items()})
        return state


class DynamicMBBlock(nn.Module):
    """An elastic MBConv layer with once-for-all's identity shortcut rule."""

    def __init__(self, conv: DynamicMBConvLayer):
        super().__init__()
        self.mobile_inverted_conv = conv
        self.has_shortcut = conv.stride == 1 and conv.in_channels == conv.out_channels

    def forward(self, x: torch.Tensor, kernel: int, expand: int) -> torch.Tensor:
        y = self.mobile_inverted_conv(x, kernel, expand)
        return y + x if self.has_shortcut else y


class OFAMobileNetV3(nn.Module):
    """The once-for-all MobileNetV3 supernet at width 1.0 or 1.2.

    Args:
        width: width multiplier of the supernet (1.0 or 1.2).
        n_classes: classifier outputs (1000 for ImageNet).
        dropout: dropout rate before the classifier.

    The active sub-network (initially the largest one) is set with :meth:`set_active`; ``forward``
    runs it. :meth:`get_active_subnet` returns it as a static :class:`MobileNetV3`.
    """

    def __init__(self, width: float = 1.2, n_classes: int = 1000, dropout: float = 0.1):
        super().__init__()
        self.width = check_width(width)
        self.n_classes, self.dropout = n_classes, dropout
        sw = stage_widths(self.width)
        self.first_conv = conv_bn_act(3, sw["stem"], 3, 2, act="h_swish")
        blocks: list[nn.Module] = [MBBlock(MBConvLayer(sw["stem"], sw["first_block"], 3, 1, 1, "relu", False))]
        cin = sw["first_block"]
        for cout, stride, act, se in zip(sw["units"], UNIT_STRIDES, UNIT_ACTS, UNIT_SE):
            for i in range(MAX_DEPTH):
                blocks.append(DynamicMBBlock(DynamicMBConvLayer(cin, cout, stride if i == 0 else 1, act, se)))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = conv_bn_act(cin, sw["final_expand"], 1, act="h_swish")
        self.feature_mix_layer = conv_bn_act(sw["final_expand"], sw["feature_mix"], 1, act="h_swish", bn=False)
        self.classifier = Classifier(sw["feature_mix"], n_classes, dropout)
        self.active_arch = MBV3Arch((MAX_DEPTH,) * N_UNITS, (MAX_KERNEL,) * N_SLOTS, (MAX_EXPAND,) * N_SLOTS,
                                    width=self.width)  # the largest sub-network

    @property
    def name(self) -> str:
        """Once-for-all's self-describing id, e.g. ``ofa_mbv3_d234_e346_k357_w1.2``."""
        return SUPERNET_NAMES[self.width]

    def _check_arch(self, arch: MBV3Arch) -> MBV3Arch:
        if not isinstance(arch, MBV3Arch):
            raise ArchError(f"supernet arch: {type(arch).__name__}; allowed: an MBV3Arch")
        if arch.width != self.width:
            raise ArchError(f"arch width: {arch.width} does not match the supernet {self.name}; "
                            f"allowed: {self.width} (or load the width-{arch.width} supernet)")
        return arch

    def set_active(self, arch: MBV3Arch) -> None:
        """Select the sub-network ``arch`` (its width must be the supernet's)."""
        self.active_arch = self._check_arch(arch)

    def _active_layers(self, arch: MBV3Arch):
        for u, i, k, e in arch.layers():
            yield self.blocks[1 + u * MAX_DEPTH + i], k, e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0](self.first_conv(x))
        for block, k, e in self._active_layers(self.active_arch):
            x = block(x, k, e)
        x = self.final_expand_layer(x)
        x = self.feature_mix_layer(x.mean((2, 3), keepdim=True))
        return self.classifier(torch.flatten(x, 1))

    @torch.no_grad()
    def get_active_subnet(self, arch: MBV3Arch | None = None) -> MobileNetV3:
        """The static network of ``arch`` (default: the active one) with inherited weights.

        Kernels are centre-cropped and transformed, channels taken in stored order, batch-norm
        statistics copied. The result shares no storage with the supernet.
        """
        arch = self.active_arch if arch is None else self._check_arch(arch)
        with torch.device("meta"):  # no wasted random initialisation: every tensor is assigned below
            net = MobileNetV3(arch, n_classes=self.n_classes, dropout=self.dropout)
        state: dict[str, torch.Tensor] = {}
        for name in ("first_conv", "final_expand_layer", "feature_mix_layer", "classifier"):
            state.update({f"{name}.{k}": v for k, v in getattr(self, name).state_dict().items()})
        state.update({f"blocks.0.{k}": v for k, v in self.blocks[0].state_dict().items()})
        for j, (block, k, e) in enumerate(self._active_layers(arch), start=1):
            layer_state = block.mobile_inverted_conv.active_state(k, e)
            state.update({f"blocks.{j}.mobile_inverted_conv.{n}": v for n, v in layer_state.items()})
        net.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=True, assign=True)
        return net.train(self.training)


def load_supernet(checkpoint: str | os.PathLike | Mapping[str, torch.Tensor], width: float = 1.2,
                  n_classes: int = 1000) -> OFAMobileNetV3:
    """The width-``width`` supernet with weights from a checkpoint file or state dict (strict).

    Files are read with ``torch.load(weights_only=True)``; a bare state dict or ``{"state_dict": ...}``.
    A checkpoint of another layout raises :class:`~pnag.errors.DataError` naming the first missing
    or unexpected key or the first key of the wrong shape.
    """
    from ..zoo import load_state_dict_strict, load_weights  # one strict loader for every network

    net = OFAMobileNetV3(width, n_classes=n_classes)
    try:
        if isinstance(checkpoint, Mapping):
            load_state_dict_strict(net, checkpoint, source="state dict")
        else:
            load_weights(net, checkpoint)
    except DataError as exc:
        raise DataError(f"{exc} (expected the layout of supernet {net.name}; is the checkpoint of another "
                        "network or width?)") from None
    return net.eval()


@torch.no_grad()
def randomize_(net: nn.Module, seed: int = 0, transforms: bool = True) -> nn.Module:
    """Fill every weight and batch-norm statistic with seeded random values, in place.

    Scales keep activations of order 1 through the network; kernel transformation matrices become
    identity plus noise when ``transforms`` (so tests exercise them). For tests and ``--supernet
    random``; such a network classifies at chance.
    """
    g = torch.Generator().manual_seed(int(seed))

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.weight.copy_(uniform(n, 0.5, 1.5))
            module.bias.copy_(normal(n, 0.1))
            module.running_mean.copy_(normal(n, 0.1))
            module.running_var.copy_(uniform(n, 0.5, 1.5))
            module.num_batches_tracked.fill_(0)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight
            fan_in = w[0].numel()
            w.copy_(normal(w.shape, (2.0 / fan_in) ** 0.5))
            if module.bias is not None:
                module.bias.copy_(normal(module.bias.shape, 0.05))
        if isinstance(module, DynamicDepthwiseConv2d):
            for p in module._parameters.values():
                eye = torch.eye(p.shape[0])
                p.copy_(eye + normal(p.shape, 0.05) if transforms else eye)
    return net


def random_supernet(width: float = 1.2, seed: int = 0, n_classes: int = 1000) -> OFAMobileNetV3:
    """A supernet with seeded random weights (for testing without the published checkpoint)."""
    return randomize_(OFAMobileNetV3(width, n_classes=n_classes), seed).eval()


__all__ = ["OFAMobileNetV3", "DynamicMBConvLayer", "DynamicDepthwiseConv2d", "DynamicBatchNorm2d", "load_supernet",
           "random_supernet", "randomize_",
           "SUPERNET_NAMES"]
