"""Losses: (weighted) Adaptive Wing, (weighted) MSE, semantic cross-entropy, total loss.

Adaptive Wing (Wang et al., ICCV 2019; paper Eq. 1-3) with the paper's constants
alpha=2.1, omega=14, epsilon=1, theta=0.5. The positive mask M_pos is the 3x3 grey
dilation of the target heatmap thresholded at 0.2, and the loss map is weighted by
(gamma * M_pos + 1) with gamma=10, then averaged over pixels, channels and batch, as in
the AWing reference code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from realtime.config import IGNORE_INDEX

HM_LOSSES = ("wawing", "awing", "mse", "wmse")


@dataclass
class LossConfig:
    """Loss settings (paper Sec. 3.1, 4.2; Table 2 ablations via ``heatmap``).

    Attributes:
        heatmap: ``wawing`` (paper), ``awing``, ``mse`` or ``wmse``.
        alpha, omega, epsilon, theta: AWing constants (paper / AWing reference).
        gamma: positive-mask magnification (paper Eq. 3: 10).
        mask_threshold: M_pos threshold on the dilated target (paper Eq. 2: 0.2).
        dilation: grey dilation kernel size (paper: 3).
        semantic_weight: lambda in L = L_hm + lambda * L_sm (paper Eq. 8: 0.1).
    """

    heatmap: str = "wawing"
    alpha: float = 2.1
    omega: float = 14.0
    epsilon: float = 1.0
    theta: float = 0.5
    gamma: float = 10.0
    mask_threshold: float = 0.2
    dilation: int = 3
    semantic_weight: float = 0.1

    def __post_init__(self) -> None:
        if self.heatmap not in HM_LOSSES:
            raise ValueError(f"loss.heatmap must be one of {HM_LOSSES}, got {self.heatmap!r}")


def awing_map(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.1, omega: float = 14.0,
              epsilon: float = 1.0, theta: float = 0.5) -> torch.Tensor:
    """Element-wise Adaptive Wing loss (paper Eq. 1), continuous and smooth at |d| = theta."""
    pred = pred.float()
    target = target.float()
    delta = (target - pred).abs()
    power = alpha - target
    small = omega * torch.log1p((delta / epsilon).clamp_min(1e-12) ** power)
    ratio = theta / epsilon
    a = omega * (1.0 / (1.0 + ratio ** power)) * power * (ratio ** (power - 1.0)) / epsilon
    b = theta * a - omega * torch.log1p(ratio ** power)
    large = a * delta - b
    return torch.where(delta < theta, small, large)


def positive_mask(target: torch.Tensor, threshold: float = 0.2, dilation: int = 3) -> torch.Tensor:
    """M_pos (paper Eq. 2): 3x3 grey dilation (max filter) of the target, >= threshold."""
    dilated = F.max_pool2d(target.float(), dilation, stride=1, padding=dilation // 2)
    return (dilated >= threshold).float()


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """L_hm for (N, K, H, W) predictions and targets, per ``cfg.heatmap``."""
    if cfg.heatmap in ("awing", "wawing"):
        loss = awing_map(pred, target, cfg.alpha, cfg.omega, cfg.epsilon, cfg.theta)
    else:
        loss = (pred.float() - target.float()) ** 2
    if cfg.heatmap in ("wawing", "wmse"):
        loss = loss * (cfg.gamma * positive_mask(target, cfg.mask_threshold, cfg.dilation) + 1.0)
    return loss.mean()


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross-entropy (paper Eq. 7); pixels labelled IGNORE_INDEX are skipped.

    Returns zero (with a graph) when every pixel is ignored, instead of NaN.
    """
    valid = labels != IGNORE_INDEX
    if not bool(valid.any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE_INDEX)


def total_loss(pred_hm: torch.Tensor, target_hm: torch.Tensor, sem_logits: torch.Tensor | None,
               sem_labels: torch.Tensor | None, cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L_hm + lambda * L_sm (paper Eq. 8). Returns the loss and its parts as floats."""
    l_hm = heatmap_loss(pred_hm, target_hm, cfg)
    parts = {"hm": float(l_hm.detach())}
    loss = l_hm
    if sem_logits is not None and sem_labels is not None and cfg.semantic_weight > 0:
        l_sm = semantic_loss(sem_logits, sem_labels)
        parts["sm"] = float(l_sm.detach())
        loss = loss + cfg.semantic_weight * l_sm
    parts["total"] = float(loss.detach())
    return loss, parts
