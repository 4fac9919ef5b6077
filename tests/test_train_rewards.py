"""Rewards against hand-computed values."""

import numpy as np
import pytest
import torch

from pnag.search.rewards import mnas_reward, tunas_reward


def test_mnas_hand_values():
    # 0.75 * (12 / 10) ** -0.07 = 0.75 * exp(-0.07 ln 1.2) = 0.75 * 0.987318 = 0.740489
    assert mnas_reward(0.75, 12.0, 10.0) == pytest.approx(0.740489, abs=1e-6)
    assert mnas_reward(0.75, 10.0, 10.0) == pytest.approx(0.75)
    # faster than the budget is rewarded too: 0.7 * 0.5 ** -0.07 = 0.7 * 1.049716 = 0.734801
    assert mnas_reward(0.7, 5.0, 10.0) == pytest.approx(0.734801, abs=1e-6)


def test_tunas_hand_values():
    assert tunas_reward(0.75, 12.0, 10.0) == pytest.approx(0.75 - 0.07 * 0.2)
    assert tunas_reward(0.75, 8.0, 10.0) == pytest.approx(0.75 - 0.07 * 0.2)
    assert tunas_reward(0.8, 10.0, 10.0) == pytest.approx(0.8)


def test_rewards_vectorise_numpy_and_torch():
    a, l, b = np.array([0.7, 0.8]), np.array([5.0, 15.0]), np.array([10.0, 10.0])
    np.testing.assert_allclose(tunas_reward(a, l, b), [0.7 - 0.035, 0.8 - 0.035])
    t = mnas_reward(torch.tensor(a), torch.tensor(l), torch.tensor(b))
    np.testing.assert_allclose(t.numpy(), [mnas_reward(0.7, 5.0, 10.0), mnas_reward(0.8, 15.0, 10.0)])
