"""Heatmap codec: Gaussian targets and soft-argmax decoding (SPEC section 2).

The one place where heatmaps meet coordinates. Training (targets), evaluation, export
verification and the live loop all go through :class:`HeatmapCodec`.

Conventions:
    * Points are ``pts_xy`` in heatmap pixel coordinates, pixel centres at integers
      0..W-1 (x) and 0..H-1 (y).
    * Keypoint order is canonical: top-left, top-right, bottom-right, bottom-left
      (``realtime.config.CORNER_NAMES``); :func:`canonical_corner_order` restores it.
    * Decoding is float32 throughout: ``beta * heatmap`` with beta = 1000 overflows half
      precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from realtime.config import CodecConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Floor for heatmap values before the log in the quadratic refinement.
_LOG_FLOOR = 1e-6
#: Largest sub-pixel step the quadratic refinement may take (beyond this the local
#: parabola is not trusted and the soft-argmax point is kept).
_MAX_REFINE_STEP = 1.0
#: exp(-104) underflows to 0 in float32 (smallest subnormal is about exp(-103.3)).
_EXP_UNDERFLOW = np.float32(104.0)


def canonical_corner_order(pts_xy: np.ndarray) -> np.ndarray:
    """Reorder 4 quad corners to top-left, top-right, bottom-right, bottom-left.

    Sorts by angle around the centroid (image coordinates, y down) and starts at the
    corner with the smallest x + y. Robust to any input permutation of a convex quad,
    including moderate rotations.

    Args:
        pts_xy: (4, 2) corners in any order.

    Returns:
        (4, 2) float array in canonical order.
    """
    pts = np.asarray(pts_xy, dtype=np.float64).reshape(4, 2)
    centre = pts.mean(axis=0)
    # Angle measured clockwise on screen (y points down), so sorting ascending gives TL->TR->BR->BL.
    ang = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    order = np.argsort(ang)
    pts = pts[order]
    start = int(np.argmin(pts[:, 0] + pts[:, 1]))
    return np.roll(pts, -start, axis=0)


def flip_corners_horizontally(pts_xy: np.ndarray, width: float) -> np.ndarray:
    """Mirror corners in an image of ``width`` pixels and relabel to canonical order.

    A horizontal flip swaps left and right: TL<->TR and BR<->BL.
    """
    pts = np.asarray(pts_xy, dtype=np.float64).copy()
    pts[..., 0] = (width - 1) - pts[..., 0]
    return pts[..., [1, 0, 3, 2], :]


@dataclass(frozen=True)
class Decoded:
    """Decoded keypoints of one or more images.

    Attributes:
        pts_xy: (..., K, 2) float32 keypoints in heatmap pixels.
        peak: (..., K) float32 heatmap maximum per keypoint, a confidence in [0, 1].
    """

    pts_xy: np.ndarray
    peak: np.ndarray

    @property
    def confidence(self) -> np.ndarray:
        """(...,) one confidence per image: the weakest keypoint's peak."""
        return self.peak.min(axis=-1)


@dataclass(frozen=True)
class QuadDecoded:
    """One image's decoded quad (:meth:`HeatmapCodec.decode_quad`).

    Attributes:
        pts_xy: (4, 2) float32 corners in heatmap pixels (weak ones completed).
        peak: (4,) heatmap maximum per corner.
        completed: (4,) which corners were placed from the accessory's shape.
        confidence: the weakest peak among the corners the network placed itself.
    """

    pts_xy: np.ndarray
    peak: np.ndarray
    completed: np.ndarray
    confidence: float


class HeatmapCodec:
    """Encode keypoints to Gaussian heatmaps and decode heatmaps back (numpy and torch)."""

    def __init__(self, config: CodecConfig | None = None) -> None:
        self.config = config or CodecConfig()
        self.sigma = self.config.sigma
        if self.config.refine not in ("none", "quadratic"):
            raise ValueError(f"codec.refine must be 'none' or 'quadratic', got {self.config.refine!r}")

    # ------------------------------------------------------------------ targets
    def encode(self, pts_xy: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
        """Gaussian target heatmaps, peak 1 at the (sub-pixel) point, zero beyond radius g.

        Args:
            pts_xy: (K, 2) keypoints in heatmap pixels; points outside the map give a
                partial or empty heatmap.
            shape_hw: heatmap (H, W).

        Returns:
            (K, H, W) float32.
        """
        pts = np.asarray(pts_xy, dtype=np.float64).reshape(-1, 2)
        h, w = shape_hw
        ys = np.arange(h, dtype=np.float64)
        xs = np.arange(w, dtype=np.float64)
        inv = 1.0 / (2.0 * self.sigma * self.sigma)
        out = np.empty((len(pts), h, w), dtype=np.float32)
        r2 = self.config.radius ** 2
        for k, (x, y) in enumerate(pts):
            # Separable: exp(-(dx^2+dy^2)/2s^2) = gx * gy; truncated to the disc of radius g.
            dx2 = (xs - x) ** 2
            dy2 = (ys - y) ** 2
            g = np.exp(-dy2[:, None] * inv) * np.exp(-dx2[None, :] * inv)
            g[(dy2[:, None] + dx2[None, :]) > r2] = 0.0
            out[k] = g
        return out

    # ------------------------------------------------------------------ decoding (numpy)
    def decode(self, heatmaps: np.ndarray) -> Decoded:
        """Soft-argmax (paper Eq. 4) in float32, then the optional sub-pixel refinement.

        Args:
            heatmaps: (..., K, H, W) network output after its activation.

        Returns:
            :class:`Decoded` with ``pts_xy`` (..., K, 2) and ``peak`` (..., K).
        """
        hm = np.asarray(heatmaps, dtype=np.float32)
        *lead, h, w = hm.shape
        flat = hm.reshape(-1, h * w)
        peak = flat.max(axis=1)
        pts = np.empty((len(flat), 2), dtype=np.float32)
        beta = np.float32(self.config.beta)
        for i, row in enumerate(flat):
            logits = (row - peak[i]) * beta
            # exp() of anything below -_EXP_UNDERFLOW is exactly 0 in float32, so only the
            # pixels near the peak can contribute: same result, a fraction of the exp() calls.
            near = np.flatnonzero(logits > -_EXP_UNDERFLOW)
            p = np.exp(logits[near])
            p /= p.sum()
            pts[i, 0] = p @ (near % w).astype(np.float32)
            pts[i, 1] = p @ (near // w).astype(np.float32)
        if self.config.refine == "quadratic":
            pts = _refine_quadratic_np(flat.reshape(-1, h, w), pts)
        return Decoded(pts.reshape(*lead, 2).astype(np.float32), peak.reshape(*lead).astype(np.float32))

    def decode_quad(self, heatmaps: np.ndarray, init_vertex_xy: np.ndarray) -> "QuadDecoded":
        """One image's 4 corners: :meth:`decode`, then the weak corners completed from the
        accessory's shape (``config.complete_below``, :func:`realtime.geometry.complete_quad`).

        Args:
            heatmaps: (4, H, W) for one image.
            init_vertex_xy: (4, 2) the accessory's own quad (foreground pixels).
        """
        from realtime.geometry import complete_quad

        dec = self.decode(heatmaps)
        pts, completed = complete_quad(dec.pts_xy, dec.peak, init_vertex_xy, self.config.complete_below)
        confidence = float(dec.peak[~completed].min())
        return QuadDecoded(pts, dec.peak, completed, confidence)

    # ------------------------------------------------------------------ decoding (torch)
    def decode_torch(self, heatmaps: "torch.Tensor") -> "torch.Tensor":
        """Torch twin of :meth:`decode` (differentiable soft-argmax part, float32).

        Args:
            heatmaps: (N, K, H, W) tensor.

        Returns:
            (N, K, 2) float32 keypoints.
        """
        import torch

        hm = heatmaps.float()
        n, k, h, w = hm.shape
        flat = hm.reshape(n * k, h * w)
        p = torch.softmax(flat * self.config.beta, dim=1)
        xs = torch.arange(w, dtype=torch.float32, device=hm.device).repeat(h)
        ys = torch.arange(h, dtype=torch.float32, device=hm.device).repeat_interleave(w)
        pts = torch.stack([p @ xs, p @ ys], dim=1)
        if self.config.refine == "quadratic":
            pts = _refine_quadratic_torch(flat.reshape(n * k, h, w), pts)
        return pts.reshape(n, k, 2)


def _three_point_vertex(lm: np.ndarray, l0: np.ndarray, lp: np.ndarray,
                        at_lo: np.ndarray, at_hi: np.ndarray) -> np.ndarray:
    """Vertex offset of the parabola through log-values at centre-1, centre, centre+1.

    At a border the three samples are shifted inward (c, c+1, c+2 or c-2, c-1, c) and
    the offset is re-expressed relative to ``centre``. ``lm, l0, lp`` are the samples at
    positions ``base-1, base, base+1`` where base = centre clamped away from borders.
    """
    d1 = 0.5 * (lp - lm)
    d2 = lp - 2.0 * l0 + lm
    ok = d2 < -1e-9
    off = np.where(ok, -d1 / np.where(ok, d2, -1.0), 0.0)
    # base differs from centre by +1 at the low border and -1 at the high border.
    off = off + np.where(at_lo, 1.0, 0.0) - np.where(at_hi, 1.0, 0.0)
    bad = ~ok | (np.abs(off) > _MAX_REFINE_STEP)
    return np.where(bad, np.nan, off)


def _refine_quadratic_np(hm: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Sub-pixel refinement on log(heatmap) around the soft-argmax point (per axis).

    A Gaussian's log is a parabola, so three samples per axis give its vertex exactly.
    Falls back to the soft-argmax coordinate where the local shape is not a maximum.

    Args:
        hm: (N, H, W) float32 heatmaps.
        pts: (N, 2) soft-argmax points.
    """
    n, h, w = hm.shape
    out = pts.astype(np.float64).copy()
    idx = np.arange(n)
    cx = np.clip(np.rint(pts[:, 0]).astype(np.int64), 0, w - 1)
    cy = np.clip(np.rint(pts[:, 1]).astype(np.int64), 0, h - 1)
    for axis, c, size in ((0, cx, w), (1, cy, h)):
        if size < 3:
            continue
        base = np.clip(c, 1, size - 2)
        # Gather the three samples first, then take logs: O(N), not O(N*H*W).
        if axis == 0:
            samples = hm[idx[:, None], cy[:, None], base[:, None] + np.array([-1, 0, 1])]
        else:
            samples = hm[idx[:, None], base[:, None] + np.array([-1, 0, 1]), cx[:, None]]
        lm, l0, lp = np.log(np.maximum(samples.astype(np.float64), _LOG_FLOOR)).T
        off = _three_point_vertex(lm, l0, lp, base > c, base < c)
        refined = c + off
        out[:, axis] = np.where(np.isnan(off), out[:, axis], refined)
    return out.astype(np.float32)


def _refine_quadratic_torch(hm: "torch.Tensor", pts: "torch.Tensor") -> "torch.Tensor":
    """Torch twin of :func:`_refine_quadratic_np` (same formulas, float32)."""
    import torch

    n, h, w = hm.shape
    idx = torch.arange(n, device=hm.device)
    cx = pts[:, 0].round().long().clamp(0, w - 1)
    cy = pts[:, 1].round().long().clamp(0, h - 1)
    out = pts.double().clone()
    offsets = torch.tensor([-1, 0, 1], device=hm.device)
    for axis, c, size in ((0, cx, w), (1, cy, h)):
        if size < 3:
            continue
        base = c.clamp(1, size - 2)
        if axis == 0:
            samples = hm[idx[:, None], cy[:, None], base[:, None] + offsets]
        else:
            samples = hm[idx[:, None], base[:, None] + offsets, cx[:, None]]
        lm, l0, lp = torch.log(samples.double().clamp_min(_LOG_FLOOR)).unbind(dim=1)
        d1 = 0.5 * (lp - lm)
        d2 = lp - 2.0 * l0 + lm
        ok = d2 < -1e-9
        off = torch.where(ok, -d1 / torch.where(ok, d2, torch.full_like(d2, -1.0)), torch.zeros_like(d2))
        off = off + (base > c).double() - (base < c).double()
        good = ok & (off.abs() <= _MAX_REFINE_STEP)
        out[:, axis] = torch.where(good, c.double() + off, out[:, axis])
    return out.float()
