"""Temporal smoothing of the keypoint quad, and a confidence gate that hides a lost accessory.

The filter is the One Euro filter (Casiez, Roussel, Vogel, "1 Euro Filter: A Simple
Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012; reference
code at https://gery.casiez.net/1euro/): an exponential low-pass whose cutoff rises with
the signal's speed, so a still head is steady and a moving head has little lag::

    alpha(fc, dt) = 1 / (1 + tau / dt),   tau = 1 / (2 pi fc)
    dx_hat = lowpass(dx / dt, d_cutoff)
    fc     = min_cutoff + beta * |dx_hat|
    x_hat  = lowpass(x, fc)

Filtering the 8 corner coordinates independently lets the accessory shear and breathe
when each corner jitters on its own. We filter a parameterisation instead
(:func:`quad_to_params`): centre (2), log size (1), in-plane angle (1) of the quad, and its
shape (8 numbers: the corners in the quad's own rotated and scaled frame). Centre, size
and angle follow the head with the main filter; the shape (aspect, perspective), which
changes slowly, gets a stronger filter, which is what removes the shear jitter.

Units: speeds are measured in quad sizes per second (centre), in log-size per second and
in radians per second, so ``beta`` does not depend on the camera resolution or on how far
the person sits: scaling the input quads by k scales the output by k exactly.

The gate (:class:`QuadSmoother`) uses the network's own confidence (the weakest corner's
heatmap peak, :attr:`realtime.codec.Decoded.confidence`) with hysteresis: the accessory
appears after ``show_frames`` frames above ``show_confidence`` and disappears after
``hide_frames`` frames below ``hide_confidence``; when it disappears the filter is reset so
it re-acquires without gliding from where the person was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Time step assumed when two samples carry the same (or a decreasing) timestamp.
_FALLBACK_DT_S = 1.0 / 30.0


@dataclass
class SmoothingConfig:
    """Parameters of the keypoint smoothing and of the confidence gate.

    Defaults chosen by the jitter-vs-lag sweep first run with the synthetic-trained tiny glasses
    model (benchmarks/results/smoothing_sweep_2026-11-27_synthetic-tiny-model.{md,json,png};
    ``python benchmarks/steadiness.py``, :mod:`realtime.bench.stability`). Rule: meet the 1-frame
    lag target on a slow pan, then be as steady as possible (coordinate descent over
    min_cutoff x beta, the shape filter, d_cutoff x beta). Re-checked with the shipped
    ``glasses_lite`` model on 4 held-out Helen photos under synthetic camera motion
    (benchmarks/results/steadiness_2026-11-27_amd-epyc-2c.md for the upstream study,
    steadiness_confirm/ for the shipped configuration): with the ROI tracker's re-detection
    dead-band (0.3 face sizes), static-hold jitter 0.049 % of the quad diagonal (raw
    keypoints 0.47 %), slow-pan lag 0.69 frames, motion error 3.6 %. The new sweep's own
    pick (min_cutoff 0.05, beta 32, d_cutoff 1, shape 0.05 / 0) trades that for 0.075 %
    jitter at 0.13 frames lag; both met the targets, and beta 8 was kept then. beta is now 24
    (2026-12-02, issue 13): with the tracking changes the filter's own lag on the slow pan was
    0.7-1.6 frames (1.6 on held-out FMD 0_0_baobeier_0046, whose large face makes the pan slow in
    quad sizes / s), over the 1-frame target; replayed on FMD 326's recording, beta 24 cuts it
    from 0.70 to 0.40 frames (every other segment's lag and the motion error drop too) for 0.050
    -> 0.053 % jitter (benchmarks/results/stability_heldout/ has the held-out photos with both).

    The low min_cutoff (0.05 Hz) only applies to a truly still quad: the slowly filtered
    speed estimate (d_cutoff 0.25 Hz) ignores frame-to-frame noise, and beta 24 opens the
    cutoff as soon as the head moves.

    Attributes:
        enabled: apply the temporal filter (the gate works either way).
        min_cutoff: cutoff (Hz) of centre, size and angle at rest. Lower = steadier, laggier.
        beta: cutoff increase per unit of speed (speed in quad sizes / s, log-size / s,
            rad / s). Higher = less lag during motion.
        d_cutoff: cutoff (Hz) of the speed estimate (Casiez et al.: 1 Hz; lower = noise at
            rest opens the cutoff less, motion opens it later).
        shape_min_cutoff: cutoff (Hz) at rest of the 8 shape numbers (aspect, perspective).
        shape_beta: speed coefficient of the shape filter.
        show_confidence: confidence at or above which a hidden accessory may appear.
        hide_confidence: confidence below which a visible accessory may disappear.
        show_frames: consecutive confident frames needed to appear.
        hide_frames: consecutive unconfident frames needed to disappear.
    """

    enabled: bool = True
    min_cutoff: float = 0.05
    beta: float = 24.0
    d_cutoff: float = 0.25
    shape_min_cutoff: float = 1.0
    shape_beta: float = 1.0
    show_confidence: float = 0.4
    hide_confidence: float = 0.25
    show_frames: int = 2
    hide_frames: int = 3

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff", "shape_min_cutoff"):
            if getattr(self, name) <= 0:
                raise ValueError(f"smoothing.{name} must be > 0, got {getattr(self, name)}")
        for name in ("beta", "shape_beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"smoothing.{name} must be >= 0, got {getattr(self, name)}")
        if self.hide_confidence > self.show_confidence:
            raise ValueError(f"smoothing.hide_confidence ({self.hide_confidence}) must not exceed "
                             f"smoothing.show_confidence ({self.show_confidence})")
        if self.show_frames < 1 or self.hide_frames < 1:
            raise ValueError("smoothing.show_frames and smoothing.hide_frames must be >= 1")


def _alpha(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter over an array of independent channels (Casiez et al. 2012).

    Args:
        min_cutoff: cutoff at rest, Hz.
        beta: speed coefficient (per unit of ``|dx/dt| / scale``).
        d_cutoff: cutoff of the derivative, Hz.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @property
    def value(self) -> np.ndarray | None:
        """The last filtered value (None after :meth:`reset`)."""
        return None if self._x is None else self._x.copy()

    @property
    def speed(self) -> np.ndarray | None:
        """The filtered derivative (units per second; None after :meth:`reset`)."""
        return None if self._dx is None else self._dx.copy()

    def __call__(self, x: np.ndarray | float, t: float, scale: float = 1.0) -> np.ndarray:
        """Filter one sample.

        Args:
            x: the sample (any shape, constant across calls).
            t: its timestamp in seconds.
            scale: unit in which the speed is measured (the speed is divided by it), so
                that ``beta`` is dimensionless (e.g. the quad size in pixels).

        Returns:
            The filtered sample (float64, same shape as ``x``).
        """
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if not dt > 0:
            dt = _FALLBACK_DT_S
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / scale
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = float(t)
        return self._x.copy()


# --------------------------------------------------------------------------------------
# Quad <-> (centre, log size, angle, shape)
# --------------------------------------------------------------------------------------

def quad_size(pts_xy: np.ndarray) -> float:
    """Size of a quad in pixels: the square root of its area (shoelace). Plain floats: on 4
    points numpy's per-call overhead was most of the tracker's own per-frame cost."""
    p = np.asarray(pts_xy, dtype=np.float64).tolist()
    twice = sum(x0 * y1 - y0 * x1 for (x0, y0), (x1, y1) in zip(p, p[1:] + p[:1]))
    return math.sqrt(abs(0.5 * twice))


def _rot(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def quad_to_params(pts_xy: np.ndarray) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Split a quad (4, 2) in TL, TR, BR, BL order into (centre, log size, angle, shape).

    centre = mean of the corners; size = sqrt(area); angle = direction of the sum of the
    top and bottom edges (TL->TR + BL->BR); shape = (4, 2) corners in the frame centred at
    ``centre``, rotated by ``-angle`` and divided by ``size``.

    Raises:
        ValueError: non-finite corners or a quad with (near) zero area.
    """
    p = np.asarray(pts_xy, dtype=np.float64).reshape(4, 2)
    if not np.all(np.isfinite(p)):
        raise ValueError("quad has non-finite corners")
    size = quad_size(p)
    if size < 1e-6:
        raise ValueError("quad has zero area")
    centre = p.mean(axis=0)
    edge = (p[1] - p[0]) + (p[2] - p[3])
    theta = math.atan2(edge[1], edge[0])
    shape = (p - centre) @ _rot(theta) / size  # row vectors: v @ R == R^T v
    return centre, math.log(size), theta, shape


def params_to_quad(centre: np.ndarray, log_size: float, theta: float, shape: np.ndarray) -> np.ndarray:
    """Inverse of :func:`quad_to_params`: (4, 2) corners."""
    return np.asarray(centre) + math.exp(log_size) * (np.asarray(shape) @ _rot(theta).T)


class QuadFilter:
    """One Euro filtering of a quad in the (centre, log size, angle, shape) parameterisation."""

    def __init__(self, cfg: SmoothingConfig) -> None:
        self.cfg = cfg
        self._centre = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
        self._log_size = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
        self._theta = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
        self._shape = OneEuroFilter(cfg.shape_min_cutoff, cfg.shape_beta, cfg.d_cutoff)

    def reset(self) -> None:
        """Forget the history."""
        for f in (self._centre, self._log_size, self._theta, self._shape):
            f.reset()

    def __call__(self, pts_xy: np.ndarray, t: float) -> np.ndarray:
        """Filter one quad (4, 2) at time ``t`` (s); returns the smoothed quad (4, 2)."""
        centre, log_size, theta, shape = quad_to_params(pts_xy)
        prev_theta = self._theta.value
        if prev_theta is not None:  # unwrap so that +pi and -pi are neighbours
            theta = float(prev_theta) + math.remainder(theta - float(prev_theta), 2.0 * math.pi)
        log_size_hat = float(self._log_size(log_size, t))
        theta_hat = float(self._theta(theta, t))
        # Centre speed in quad sizes per second: divide by the (smoothed) size in pixels.
        centre_hat = self._centre(centre, t, scale=math.exp(log_size_hat))
        shape_hat = self._shape(shape, t)
        return params_to_quad(centre_hat, log_size_hat, theta_hat, shape_hat)


@dataclass(frozen=True)
class SmoothedQuad:
    """Output of :class:`QuadSmoother` for one measurement.

    Attributes:
        pts_xy: (4, 2) smoothed quad (the raw one when smoothing is off), or None when
            there is nothing to draw yet.
        visible: the confidence gate's verdict.
    """

    pts_xy: np.ndarray | None
    visible: bool


class QuadSmoother:
    """Confidence gate with hysteresis + :class:`QuadFilter`; one per tracked person.

    Call :meth:`update` with each new measurement, :meth:`reset` when the face is lost.
    """

    def __init__(self, cfg: SmoothingConfig | None = None) -> None:
        self.cfg = cfg or SmoothingConfig()
        self.filter = QuadFilter(self.cfg)
        self.enabled = self.cfg.enabled
        self.reset()

    def reset(self) -> None:
        """Hide the accessory and forget the history (face lost, category changed)."""
        self.filter.reset()
        self.visible = False
        self.last: np.ndarray | None = None
        self._above = 0
        self._below = 0

    def update(self, pts_xy: np.ndarray, confidence: float, t: float) -> SmoothedQuad:
        """Add one measurement: raw quad (4, 2) in frame pixels, its confidence, time (s)."""
        if confidence >= self.cfg.show_confidence:
            self._above, self._below = self._above + 1, 0
        elif confidence < self.cfg.hide_confidence:
            self._above, self._below = 0, self._below + 1
        else:  # inside the hysteresis band: keep the current state
            self._above = self._below = 0
        appeared = False
        if not self.visible and self._above >= self.cfg.show_frames:
            self.visible = appeared = True
        elif self.visible and self._below >= self.cfg.hide_frames:
            self.visible = False
        if appeared or not self.visible:  # start afresh where it (re)appears: no glide from the past
            self.filter.reset()
        try:
            smoothed = self.filter(pts_xy, t)
        except ValueError:  # zero-area / non-finite quad: keep the last good one
            return SmoothedQuad(self.last, self.visible)
        self.last = smoothed if self.enabled else np.asarray(pts_xy, dtype=np.float64).copy()
        return SmoothedQuad(self.last, self.visible)
