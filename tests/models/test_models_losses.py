"""Losses: focal loss of Hong et al. 2022 eq. 4 on hand-computed values, CE, Dice."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cac_lightning.errors import CACError
from cac_lightning.models import CRITERIA, build_criterion
from cac_lightning.models.losses import DiceFocalLoss, DiceLoss, FocalLoss


def _pixels(logits: list[list[float]], target: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """N pixels as a (1, C, 1, N) logits and (1, 1, N) target batch."""
    x = torch.tensor(logits, dtype=torch.float32).T.reshape(1, len(logits[0]), 1, len(logits))
    return x, torch.tensor(target).reshape(1, 1, -1)


def test_focal_two_classes_one_pixel():
    # softmax([0, ln 3]) = [1/4, 3/4]
    x, _ = _pixels([[0.0, math.log(3.0)]], [1])
    fl = build_criterion("focal")  # alpha 0.5, gamma 3
    expected_1 = -0.5 * (1 - 0.75) ** 3 * math.log(0.75)
    expected_0 = -0.5 * (1 - 0.25) ** 3 * math.log(0.25)
    assert fl(x, torch.tensor([[[1]]])).item() == pytest.approx(expected_1, rel=1e-5)
    assert fl(x, torch.tensor([[[0]]])).item() == pytest.approx(expected_0, rel=1e-5)
    assert expected_0 == pytest.approx(0.2924, abs=1e-4)


def test_focal_three_classes_mean_over_pixels():
    # softmax([0, ln 2, ln 5]) = [1/8, 2/8, 5/8]; targets 2 and 0
    row = [0.0, math.log(2.0), math.log(5.0)]
    x, y = _pixels([row, row], [2, 0])
    fl = FocalLoss(alpha=0.5, gamma=3.0)
    per_pixel = [-0.5 * (1 - p) ** 3 * math.log(p) for p in (5 / 8, 1 / 8)]
    assert fl(x, y).item() == pytest.approx(sum(per_pixel) / 2, rel=1e-5)
    # gamma 2, alpha 0.25: same formula
    fl2 = FocalLoss(alpha=0.25, gamma=2.0)
    per_pixel = [-0.25 * (1 - p) ** 2 * math.log(p) for p in (5 / 8, 1 / 8)]
    assert fl2(x, y).item() == pytest.approx(sum(per_pixel) / 2, rel=1e-5)


def test_focal_gamma0_alpha1_is_cross_entropy():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 4)
    y = torch.randint(0, 5, (2, 4, 4))
    fl = FocalLoss(alpha=1.0, gamma=0.0)
    torch.testing.assert_close(fl(x, y), F.cross_entropy(x, y))
    w = [0.5, 1.0, 2.0, 3.0, 4.0]
    flw = FocalLoss(alpha=1.0, gamma=0.0, weight=w)
    torch.testing.assert_close(flw(x, y), F.cross_entropy(x, y, weight=torch.tensor(w)))
    torch.testing.assert_close(build_criterion("ce")(x, y), F.cross_entropy(x, y))


def test_focal_ignore_index():
    row = [0.0, math.log(2.0), math.log(5.0)]
    x, y = _pixels([row, row, row], [2, 255, 0])
    fl = FocalLoss(ignore_index=255)
    x2, y2 = _pixels([row, row], [2, 0])
    assert fl(x, y).item() == pytest.approx(FocalLoss()(x2, y2).item(), rel=1e-6)
    all_ignored = torch.full_like(y, 255)
    assert fl(x, all_ignored).item() == 0.0


def test_bf16_input_gives_float32_value():
    torch.manual_seed(1)
    x = torch.randn(2, 5, 8, 8).to(torch.bfloat16)
    y = torch.randint(0, 5, (2, 8, 8))
    for name in CRITERIA:
        loss = build_criterion(name)
        out = loss(x, y)
        assert out.dtype == torch.float32
        assert out.item() == pytest.approx(loss(x.float(), y).item(), rel=1e-6, abs=1e-7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv = torch.nn.Conv2d(5, 5, 1)
        z = conv(x.float())
        assert z.dtype == torch.bfloat16
        assert build_criterion("focal")(z, y).dtype == torch.float32


@pytest.mark.parametrize("name", sorted(CRITERIA))
def test_gradient_finite_on_saturated_logits(name):
    x = (torch.randn(2, 5, 4, 4) * 60).requires_grad_()
    y = torch.randint(0, 5, (2, 4, 4))
    loss = build_criterion(name)(x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_dice_hand_values():
    # two classes, both pixels p = [1/2, 1/2], target [1, 0]:
    # inter = 1/2, sum p_1 = 1, sum y_1 = 1 -> Dice_1 = (1 + s) / (2 + s)
    x, y = _pixels([[0.0, 0.0], [0.0, 0.0]], [1, 0])
    s = 1e-5
    assert DiceLoss(smooth=s)(x, y).item() == pytest.approx(1 - (1 + s) / (2 + s), rel=1e-5)
    # include background: class 0 has the same Dice by symmetry
    assert DiceLoss(include_background=True)(x, y).item() == pytest.approx(0.5, abs=1e-4)
    # confident and right -> ~0, confident and wrong -> ~1
    good, _ = _pixels([[-30.0, 30.0], [30.0, -30.0]], [1, 0])
    bad, _ = _pixels([[30.0, -30.0], [-30.0, 30.0]], [1, 0])
    assert DiceLoss()(good, y).item() == pytest.approx(0.0, abs=1e-4)
    assert DiceLoss()(bad, y).item() == pytest.approx(1.0, abs=1e-4)


def test_dice_focal_is_weighted_sum():
    torch.manual_seed(2)
    x = torch.randn(1, 5, 4, 4)
    y = torch.randint(0, 5, (1, 4, 4))
    combo = DiceFocalLoss(lambda_dice=2.0, lambda_focal=0.5)
    expected = 2.0 * DiceLoss()(x, y) + 0.5 * FocalLoss()(x, y)
    torch.testing.assert_close(combo(x, y), expected)


def test_unknown_criterion_lists_names():
    with pytest.raises(CACError) as err:
        build_criterion("lovasz")
    for name in CRITERIA:
        assert name in str(err.value)
