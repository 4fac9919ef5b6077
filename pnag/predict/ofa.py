"""The published once-for-all accuracy predictor for the width-1.2 MobileNetV3 supernet.

``Sequential(Linear(128, 400), ReLU, Linear(400, 400), ReLU, Linear(400, 400), ReLU, Linear(400, 1))``
on the 128-d ``ofa`` encoding (kernel and expand one-hots per slot, then a resolution one-hot).
The file stores a fraction; this class reports top-1 accuracy in percent, like the datasets.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import DataError, PnagError

DATASET = "ofa-acc-predictor-w1.2"
FILE = "acc_predictor.pth"


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(128, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(),
                         nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 1))


class OFAAccuracyPredictor:
    """Top-1 ImageNet accuracy (%) of width-1.2 MobileNetV3 subnets, from the published OFA predictor.

    ``space`` must be an :class:`pnag.space.MBV3Space` at width 1.2 (any encoding; the 128-d ``ofa``
    encoding is built from it at its resolution). ``state`` (a state dict) skips the file look-up.
    """

    def __init__(self, space, state: dict[str, Any] | None = None):
        from ..space.mbv3 import ENC_RESOLUTIONS, MBV3Space

        if not isinstance(space, MBV3Space):
            raise PnagError(f"ofa-predictor: space {getattr(space, 'name', space)!r} is not supported; allowed: mbv3")
        if space.width != 1.2:
            raise PnagError(f"ofa-predictor: width {space.width} is not supported; allowed: 1.2 "
                            "(the predictor was trained on the width-1.2 supernet)")
        bad = [r for r in space.resolutions if r not in ENC_RESOLUTIONS]
        if bad:
            raise PnagError(f"ofa-predictor: resolution {bad[0]} has no slot in its encoding; allowed: "
                            + ", ".join(map(str, ENC_RESOLUTIONS)))
        self.space = space
        self.ofa_space = MBV3Space(width=space.width, resolution=space.resolution, encoding="ofa",
                                   resolutions=space.resolutions if space.searches_resolution else None)
        if state is None:
            from ..data.registry import get_file

            path = get_file(DATASET, FILE)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # a corrupt or foreign file
                raise DataError(f"{path}: cannot be read as a state dict ({exc})") from None
        self.net = _net()
        try:
            self.net.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError) as exc:
            raise DataError(f"ofa-predictor state dict does not match Sequential 128-400-400-400-1 ({exc})") from None
        self.net.eval()

    @torch.no_grad()
    def predict_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """Accuracy (%) ``(B,)`` from choice indices ``(B, T)``."""
        return self.net(self.ofa_space.encode_indices(idx)).squeeze(-1) * 100.0

    @torch.no_grad()
    def predict_archs(self, archs: Sequence) -> np.ndarray:
        """Accuracy (%) of each architecture."""
        if not len(archs):
            return np.zeros(0)
        x = torch.from_numpy(self.ofa_space.encode_many(list(archs)))
        return (self.net(x).squeeze(-1) * 100.0).double().numpy()


__all__ = ["OFAAccuracyPredictor"]
