"""Losses: AWing continuity at theta, weighting, MSE variants, semantic CE with ignore."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from realtime.config import IGNORE_INDEX  # noqa: E402
from training.losses import LossConfig, awing_map, heatmap_loss, positive_mask, semantic_loss, total_loss  # noqa: E402


@pytest.mark.parametrize("y", [0.0, 0.3, 0.7, 1.0])
def test_awing_continuous_and_smooth_at_theta(y):
    theta = 0.5
    target = torch.full((3,), y, dtype=torch.float64)
    eps = 1e-6
    pred = torch.tensor([y - (theta - eps), y - theta, y - (theta + eps)], dtype=torch.float64, requires_grad=True)
    loss = awing_map(pred, target)
    assert abs(float(loss[0].detach() - loss[2].detach())) < 1e-4  # value continuous across |d| = theta
    loss.sum().backward()
    g = pred.grad
    assert abs(float(g[0] - g[2])) < 1e-3 * max(1.0, abs(float(g[0])))  # slope continuous too


def test_awing_zero_at_perfect_prediction_and_positive_elsewhere():
    t = torch.rand(2, 4, 16, 16)
    assert float(awing_map(t, t).abs().max()) < 1e-6
    assert float(awing_map(t + 0.1, t).min()) > 0


def test_positive_mask_is_dilated_threshold():
    t = torch.zeros(1, 1, 9, 9)
    t[0, 0, 4, 4] = 0.25
    m = positive_mask(t, 0.2, 3)
    assert int(m.sum()) == 9 and float(m[0, 0, 3:6, 3:6].min()) == 1.0


def test_weighting_increases_loss_near_the_peak():
    t = torch.zeros(1, 1, 16, 16)
    t[0, 0, 7:10, 7:10] = 1.0
    pred = torch.zeros_like(t)
    plain = heatmap_loss(pred, t, LossConfig(heatmap="awing"))
    weighted = heatmap_loss(pred, t, LossConfig(heatmap="wawing"))
    assert float(weighted) > float(plain) * 5
    assert float(heatmap_loss(pred, t, LossConfig(heatmap="wmse"))) > float(heatmap_loss(pred, t, LossConfig(heatmap="mse")))


def test_semantic_loss_ignores_and_total_combines():
    logits = torch.randn(2, 5, 8, 8, requires_grad=True)
    labels = torch.randint(0, 5, (2, 8, 8))
    labels[0] = IGNORE_INDEX
    l_sm = semantic_loss(logits, labels)
    assert torch.isfinite(l_sm)
    all_ignored = torch.full((2, 8, 8), IGNORE_INDEX)
    assert float(semantic_loss(logits, all_ignored).detach()) == 0.0
    hm = torch.rand(2, 4, 8, 8)
    cfg = LossConfig()
    loss, parts = total_loss(hm, torch.rand(2, 4, 8, 8), logits, labels, cfg)
    assert parts["total"] == pytest.approx(parts["hm"] + cfg.semantic_weight * parts["sm"], rel=1e-5)
    loss.backward()
    assert logits.grad is not None


def test_unknown_loss_name_raises():
    with pytest.raises(ValueError, match="loss.heatmap"):
        LossConfig(heatmap="l1")
