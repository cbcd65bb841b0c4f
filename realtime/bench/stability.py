"""Steadiness of the placed accessory: synthetic camera motion with a known trajectory.

A still photo is filmed by a synthetic camera whose motion is known exactly: each frame
is the photo warped by a per-frame transform (:class:`Trajectory`), over a blurred
backdrop, with Gaussian sensor noise (:class:`TrajectorySource`, built on
:class:`realtime.live.capture.PortraitMotionSource`). The script (:data:`DEFAULT_SCRIPT`) is a
sequence of segments: a static hold, a slow pan, a fast pan, a zoom, a roll, a horizontal
squeeze (a yaw proxy: it changes the quad's aspect, which only the shape filter sees) and
a step, with short holds between them.

Ground truth. The network is not perfectly accurate, and what we want to measure here is
its *temporal* behaviour (noise, lag), not its placement accuracy (that is ``tryon eval``'s
job). So the ground truth is the network's own placement during the static hold, carried
through the known motion: every raw prediction of the hold is mapped back into photo
pixels (the inverse of that frame's transform); their mean is the reference quad ``Q``;
the ground truth of frame t is ``M_t Q``. (The brief's "first-frame prediction pushed
through the motion" is the same idea; the mean over the hold removes that one frame's
noise from the reference.) A network that is perfectly equivariant to the camera motion
and noise-free would then score zero everywhere.

Metrics (all distances in frame pixels, reported as % of the ground-truth quad diagonal,
the mean length of its two diagonals):

* **jitter**: RMS frame-to-frame displacement of the 4 corners during the static hold
  (after :data:`WARMUP_S` for the ROI tracker to settle). A still camera has zero true
  motion there, so every pixel of movement is noise. (For independent noise of standard
  deviation s per coordinate this is 2 s: each difference has variance 2 s^2 per axis.)
* **lag**: frames of delay, per moving segment: the shift k (sub-frame, by linear
  interpolation) that minimises the mean squared distance between the prediction at t and
  the ground truth at t - k over the segment and the :data:`LAG_TAIL_S` after it, i.e. the
  peak of their (least-squares) cross-correlation. A pure delay of k frames gives k.
* **motion error**: RMS corner error against the ground truth during the moving segments.

The estimator runs synchronously (:meth:`realtime.live.pipeline.TryOnPipeline.estimate` on every
frame), so these are properties of ROI + network + decoding + smoothing, not of CPU
scheduling. The smoothing stage is downstream of everything that feeds back (the ROI
tracker follows the *raw* keypoints), so one pipeline run records the raw keypoints and
:func:`replay_smoothing` re-runs only the filter for every point of the parameter sweep
(:func:`sweep_smoothing`); tests check that the replay reproduces the pipeline exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from realtime.config import IMAGE_SUFFIXES
from realtime.geometry import warp_points
from realtime.live.capture import PortraitMotionSource
from realtime.live.pipeline import STATUS_NO_FACE
from realtime.live.smoothing import QuadSmoother, SmoothingConfig, quad_to_params
from realtime.live.tracking import REASON_LEFT, REASON_REJECTED

log = logging.getLogger(__name__)

#: Estimate statuses of a frame on which the presence check dropped the face (the pipeline
#: resets the smoothing and draws nothing).
DROPPED = (REASON_REJECTED, REASON_LEFT)

#: Frame rate of the synthetic camera.
FPS = 30.0
#: Start of the static hold ignored by the jitter and the reference (ROI tracker settling).
WARMUP_S = 0.5
#: Time after a moving segment that the lag window still includes (the catch-up).
LAG_TAIL_S = 0.5
#: Largest lag searched, frames (either sign), and the search resolution.
MAX_LAG_FRAMES = 15.0
LAG_STEP_FRAMES = 0.02
#: Webcam-like sensor noise, grey levels (standard deviation per pixel and channel).
DEFAULT_NOISE_SIGMA = 3.0

SEGMENT_KINDS = ("hold", "pan", "zoom", "roll", "squeeze", "step", "away", "cut")
#: Segments without the face: a non-face picture is in view instead (the accessory must not show).
ABSENT_KINDS = ("away",)


@dataclass(frozen=True)
class Segment:
    """One piece of the camera script.

    Ramps change the pose linearly over the segment; a step applies its whole change at
    the segment's first frame and then holds. ``away``: the face is gone, a non-face picture
    (scikit-image's space shuttle) stands where it was; ``cut``: like a step, for the first
    frames after an ``away`` (the face comes back already moved, e.g. tilted).

    Attributes:
        name: label in reports ("slow pan", ...).
        kind: hold, pan, zoom, roll, squeeze, step, away or cut.
        seconds: duration.
        dx, dy: total translation, fractions of the frame width / height.
        dlog_scale: total change of log(zoom).
        droll_deg: total roll, degrees.
        dlog_squeeze: total change of log(horizontal / vertical scale): a yaw proxy.
    """

    name: str
    kind: str
    seconds: float
    dx: float = 0.0
    dy: float = 0.0
    dlog_scale: float = 0.0
    droll_deg: float = 0.0
    dlog_squeeze: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SEGMENT_KINDS:
            raise ValueError(f"segment {self.name!r}: kind must be one of {', '.join(SEGMENT_KINDS)}, "
                             f"got {self.kind!r}")
        if self.seconds <= 0:
            raise ValueError(f"segment {self.name!r}: seconds must be > 0, got {self.seconds}")


#: The default script (about 34 s at 30 fps). Speeds, for the astronaut at 640x480 (face
#: box ~95 px): slow pan 0.1 frame widths/s = 64 px/s = 2.1 px/frame (~0.7 face/s, an
#: unhurried head turn); fast pan 0.5 W/s = 10.7 px/frame (~3.4 faces/s); zoom x1.28 in
#: 1.5 s; roll 12 degrees in 1 s; squeeze to 0.8x width in 1 s (the aspect change of a
#: ~37 degree yaw); step 0.05 W (a dropped frame / sudden move).
DEFAULT_SCRIPT: tuple[Segment, ...] = (
    Segment("static hold", "hold", 3.0),
    Segment("slow pan", "pan", 2.0, dx=0.2),
    Segment("hold", "hold", 1.0),
    Segment("fast pan", "pan", 0.6, dx=-0.3),
    Segment("hold", "hold", 1.0),
    Segment("zoom", "zoom", 1.5, dlog_scale=math.log(1.28)),
    Segment("hold", "hold", 1.0),
    Segment("roll", "roll", 1.0, droll_deg=12.0),
    Segment("hold", "hold", 1.0),
    Segment("squeeze", "squeeze", 1.0, dlog_squeeze=math.log(0.8)),
    Segment("hold", "hold", 1.0),
    Segment("step", "step", 1.5, dx=0.05, dy=-0.02),
    # The squeeze undone before the roll segments: they measure the roll on the photo's own
    # aspect. (Left squeezed, every later segment carried the network's response to the
    # aspect change, a yaw proxy: placement error 0.9 % on the hold before the squeeze,
    # 3.7 % on the hold after it, then 3.3-4.9 % through the rolls.)
    Segment("squeeze back", "squeeze", 1.0, dlog_squeeze=-math.log(0.8)),
    # Roll, absence and re-entry (issue 13): ramps to +-45 degrees with holds, the face leaving
    # with a non-face picture left in view, coming back, and a cut to a 30-degree tilt.
    Segment("hold before roll", "hold", 1.0),
    Segment("roll to +45", "roll", 1.5, droll_deg=33.0),
    Segment("hold +45", "hold", 1.5),
    Segment("roll to -45", "roll", 3.0, droll_deg=-90.0),
    Segment("hold -45", "hold", 1.5),
    Segment("roll back to 0", "roll", 1.5, droll_deg=45.0),
    Segment("face away", "away", 2.0),
    Segment("re-entry", "hold", 2.0),
    Segment("face away again", "away", 1.0),
    Segment("cut to 30 deg tilt", "cut", 2.0, droll_deg=30.0),
)


#: The issue-13 targets only, in about 60 % of the frames of :data:`DEFAULT_SCRIPT` (21.5 s): the static
#: hold (jitter), the slow pan (lag), a roll to +45 degrees with its hold (visible fraction,
#: roll and placement error beyond 30 degrees), the face leaving with a non-face picture in view
#: (accessory with no face), re-entry and a cut to a 30-degree tilt (frames to re-acquire). The
#: segments are the full script's at the same speeds (the rolls start from 0 here, not 12
#: degrees), so their metrics compare.
#: The face pans back to the centre before the rolls (as the full script squeezes back): 0.2 of the
#: frame width pushes a tight face crop's (FMD's) side out of a 640 x 480 frame, and the rolls
#: would then measure the network on a cut-off face (placement 3.7-5.8 % on the hold after the
#: pan on FMD photos, 0.3-1.2 % on Helen's, before this segment was added).
TARGETS_SCRIPT: tuple[Segment, ...] = (
    Segment("static hold", "hold", 3.0),
    Segment("slow pan", "pan", 2.0, dx=0.2),
    Segment("hold", "hold", 1.0),
    Segment("slow pan back", "pan", 2.0, dx=-0.2),
    Segment("hold before roll", "hold", 1.0),
    Segment("roll to +45", "roll", 2.0, droll_deg=45.0),  # the full script's 22 degrees / s, from 0
    Segment("hold +45", "hold", 1.5),
    Segment("roll back to 0", "roll", 2.0, droll_deg=-45.0),
    Segment("face away", "away", 2.0),
    Segment("re-entry", "hold", 2.0),
    Segment("face away again", "away", 1.0),
    Segment("cut to 30 deg tilt", "cut", 2.0, droll_deg=30.0),
)
#: Scripts by name (``tryon bench --stability --script NAME``).
SCRIPTS: dict[str, tuple[Segment, ...]] = {"full": DEFAULT_SCRIPT, "targets": TARGETS_SCRIPT}


@dataclass(frozen=True)
class SegmentSpan:
    """Where a segment lies in the clip: frames [start, stop)."""

    segment: Segment
    start: int
    stop: int


class Trajectory:
    """Per-frame camera pose of a script, and the image -> frame transform it gives.

    The pose is (tx, ty) offset of the photo centre from the frame centre (px), log zoom,
    roll (rad) and log squeeze (horizontal / vertical scale). At rest the photo is centred
    with its height at :attr:`PortraitMotionSource.FILL` of the frame height.

    Args:
        script: the segments.
        size_wh: frame size.
        fps: frame rate.
    """

    def __init__(self, script: Sequence[Segment] = DEFAULT_SCRIPT, size_wh: tuple[int, int] = (640, 480),
                 fps: float = FPS) -> None:
        if not script:
            raise ValueError("trajectory: empty script")
        self.script, self.size_wh, self.fps = tuple(script), (int(size_wh[0]), int(size_wh[1])), float(fps)
        w, h = self.size_wh
        pose = np.zeros(5)  # tx px, ty px, log zoom, roll rad, log squeeze
        rows, spans = [], []
        for seg in self.script:
            n = max(1, int(round(seg.seconds * self.fps)))
            delta = np.array([seg.dx * w, seg.dy * h, seg.dlog_scale, math.radians(seg.droll_deg), seg.dlog_squeeze])
            frac = np.ones(n) if seg.kind in ("step", "cut") else (np.arange(1, n + 1) / n)
            rows.append(pose[None, :] + frac[:, None] * delta[None, :])
            spans.append(SegmentSpan(seg, sum(len(r) for r in rows[:-1]), sum(len(r) for r in rows)))
            pose = rows[-1][-1].copy()
        self.poses = np.concatenate(rows)  # (N, 5)
        self.spans: tuple[SegmentSpan, ...] = tuple(spans)
        self.present = np.ones(len(self.poses), dtype=bool)  # the face is in view
        for sp in self.spans:
            if sp.segment.kind in ABSENT_KINDS:
                self.present[sp.start:sp.stop] = False

    def __len__(self) -> int:
        return len(self.poses)

    @property
    def seconds(self) -> float:
        return len(self) / self.fps

    def frame_from_image(self, index: int, image_hw: tuple[int, int]) -> np.ndarray:
        """3x3 affine mapping photo pixels to frame pixels at frame ``index``.

        Pixel centres at integers in both images; the photo centre ((iw-1)/2, (ih-1)/2)
        goes to the frame centre ((w-1)/2, (h-1)/2) plus the pan offset.
        """
        tx, ty, log_zoom, roll, log_squeeze = self.poses[index]
        w, h = self.size_wh
        ih, iw = image_hw
        scale = PortraitMotionSource.FILL * h / ih * math.exp(log_zoom)
        sx, sy = scale * math.exp(0.5 * log_squeeze), scale * math.exp(-0.5 * log_squeeze)
        c, s = math.cos(roll), math.sin(roll)
        lin = np.array([[c, -s], [s, c]]) @ np.diag([sx, sy])  # squeeze in the photo's axes, then roll
        icx, icy = (iw - 1) / 2.0, (ih - 1) / 2.0
        cx, cy = (w - 1) / 2.0 + tx, (h - 1) / 2.0 + ty
        t = np.array([cx, cy]) - lin @ np.array([icx, icy])
        return np.array([[lin[0, 0], lin[0, 1], t[0]], [lin[1, 0], lin[1, 1], t[1]], [0.0, 0.0, 1.0]])

    def span(self, name: str) -> SegmentSpan:
        """The first segment called ``name``."""
        for sp in self.spans:
            if sp.segment.name == name:
                return sp
        raise KeyError(f"no segment called {name!r}; have {', '.join(s.segment.name for s in self.spans)}")


class TrajectorySource(PortraitMotionSource):
    """Frames of a photo filmed along a :class:`Trajectory` (BGR, with sensor noise).

    Args:
        image_rgb: (h, w, 3) uint8 RGB photo.
        trajectory: the camera motion (its size and frame rate are the source's).
        noise_sigma: Gaussian sensor noise, grey levels.
        seed: noise seed.
    """

    def __init__(self, image_rgb: np.ndarray, trajectory: Trajectory, noise_sigma: float = DEFAULT_NOISE_SIGMA,
                 seed: int = 0) -> None:
        self.trajectory = trajectory  # needed by frame_from_image, which the base class calls
        self._image_hw = image_rgb.shape[:2]
        super().__init__(image_rgb, size_wh=trajectory.size_wh, fps=trajectory.fps,
                         seconds=len(trajectory) / trajectory.fps, noise_sigma=noise_sigma, seed=seed)
        self.frame_count = len(trajectory)

    def frame_from_image(self, index: int) -> np.ndarray:
        return self.trajectory.frame_from_image(index, self._image_hw)

    def _render(self, index: int) -> np.ndarray:
        if self.trajectory.present[index]:
            return super()._render(index)
        # Face away: the non-face picture stands where the portrait was, same motion and noise.
        img, self._img = self._img, self._away_image()
        try:
            return super()._render(index)
        finally:
            self._img = img

    def _away_image(self) -> np.ndarray:
        if getattr(self, "_away", None) is None:
            from skimage.data import rocket

            h, w = self._img.shape[:2]
            self._away = np.ascontiguousarray(cv2.resize(rocket(), (w, h), interpolation=cv2.INTER_AREA)[..., ::-1])
        return self._away


# --------------------------------------------------------------------------------------
# Metrics (pure functions on (N, 4, 2) trajectories; NaN rows = no prediction)
# --------------------------------------------------------------------------------------

def quad_diagonal(pts_xy: np.ndarray) -> np.ndarray:
    """Mean length of the two diagonals (TL-BR, TR-BL) of quads (..., 4, 2)."""
    p = np.asarray(pts_xy, dtype=np.float64)
    return 0.5 * (np.linalg.norm(p[..., 2, :] - p[..., 0, :], axis=-1)
                  + np.linalg.norm(p[..., 3, :] - p[..., 1, :], axis=-1))


def jitter_pct(pts_xy: np.ndarray, diagonal: float) -> float:
    """RMS frame-to-frame corner displacement, % of ``diagonal``.

    Args:
        pts_xy: (N, 4, 2) consecutive frames; pairs with a NaN frame are skipped.
        diagonal: quad diagonal in the same units.

    Returns:
        The jitter (NaN with fewer than 2 consecutive valid frames).
    """
    p = np.asarray(pts_xy, dtype=np.float64)
    d = np.linalg.norm(p[1:] - p[:-1], axis=-1)  # (N-1, 4)
    ok = np.all(np.isfinite(d), axis=-1)
    if not ok.any():
        return float("nan")
    return float(np.sqrt(np.mean(d[ok] ** 2)) / diagonal * 100.0)


def rms_error_pct(pts_xy: np.ndarray, gt_xy: np.ndarray, diagonal: float) -> float:
    """RMS corner distance between ``pts_xy`` and ``gt_xy`` (N, 4, 2), % of ``diagonal``."""
    d = np.linalg.norm(np.asarray(pts_xy, np.float64) - np.asarray(gt_xy, np.float64), axis=-1)
    ok = np.all(np.isfinite(d), axis=-1)
    if not ok.any():
        return float("nan")
    return float(np.sqrt(np.mean(d[ok] ** 2)) / diagonal * 100.0)


def _shifted(gt: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``gt`` (N, ...) at fractional frame indices (clamped to the clip)."""
    t = np.clip(times, 0.0, len(gt) - 1.0)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, len(gt) - 1)
    f = (t - i0).reshape((-1,) + (1,) * (gt.ndim - 1))
    return gt[i0] * (1.0 - f) + gt[i1] * f


def estimate_lag(pts_xy: np.ndarray, gt_xy: np.ndarray, frames: np.ndarray,
                 max_lag: float = MAX_LAG_FRAMES, step: float = LAG_STEP_FRAMES) -> float:
    """Delay (frames) of ``pts_xy`` behind ``gt_xy`` over ``frames``.

    The k in [-max_lag, max_lag] minimising mean ||pts(t) - gt(t - k)||^2 over the valid
    frames t of ``frames`` (gt interpolated linearly between frames): the least-squares
    form of the cross-correlation peak, searched every half frame and then refined to
    ``step`` around the best one. Positive = the prediction is late.

    Returns:
        The lag, or NaN when the ground truth does not move over the window or fewer than
        3 frames are valid.
    """
    p = np.asarray(pts_xy, np.float64)
    g = np.asarray(gt_xy, np.float64)
    frames = np.asarray(frames)
    frames = frames[np.all(np.isfinite(p[frames]), axis=(1, 2))]
    if len(frames) < 3:
        return float("nan")
    window = g[frames]
    if not np.nanmax(np.linalg.norm(window - window[:1], axis=-1), initial=0.0) > 1e-9:
        return float("nan")  # nothing moves: no delay to measure
    target = p[frames]  # (F, 4, 2)

    def best(lags: np.ndarray) -> float:
        cost = np.full(len(lags), np.inf)
        for i, k in enumerate(lags):
            sq = np.sum((target - _shifted(g, frames - k)) ** 2, axis=(-2, -1))  # (F,), NaN where gt has a gap
            if np.count_nonzero(np.isfinite(sq)) >= 3:
                cost[i] = np.nanmean(sq)
        return float(lags[int(np.argmin(cost))]) if np.isfinite(cost).any() else float("nan")

    # Coarse to fine: every half frame, then ``step`` around the best half frame.
    coarse = best(np.arange(-max_lag, max_lag + 0.25, 0.5))
    if not np.isfinite(coarse):
        return coarse
    return best(np.clip(np.arange(coarse - 0.5, coarse + 0.5 + 0.5 * step, step), -max_lag, max_lag))


# --------------------------------------------------------------------------------------
# Recording one clip
# --------------------------------------------------------------------------------------

@dataclass
class Recording:
    """What the pipeline did on one clip (arrays over frames; NaN where nothing).

    Attributes:
        name: the photo.
        t: (N,) timestamps, s.
        raw: (N, 4, 2) decoded keypoints, frame px.
        smoothed: (N, 4, 2) after the smoothing stage.
        confidence: (N,) the network's confidence.
        visible: (N,) the confidence gate's verdict.
        status: per-frame estimate status (``ok``, ``no face``, non-finite).
        frame_from_image: (N, 3, 3) the known camera transforms.
        trajectory: the script it was filmed with.
    """

    name: str
    t: np.ndarray
    raw: np.ndarray
    smoothed: np.ndarray
    confidence: np.ndarray
    visible: np.ndarray
    status: list[str]
    frame_from_image: np.ndarray
    trajectory: Trajectory

    def __post_init__(self) -> None:
        self.gt = ground_truth(self.raw, self.frame_from_image, self.reference_frames())

    def reference_frames(self) -> np.ndarray:
        """Frames of the static hold after the warm-up (jitter and reference window)."""
        hold = self.trajectory.spans[0]
        if hold.segment.kind != "hold":
            raise ValueError("the script must start with a static hold (the reference window)")
        first = min(hold.start + int(round(WARMUP_S * self.trajectory.fps)), hold.stop - 2)
        return np.arange(first, hold.stop)

    @property
    def diagonal(self) -> float:
        """Ground-truth quad diagonal at rest (px): the unit of every metric."""
        return float(np.mean(quad_diagonal(self.gt[self.reference_frames()])))


def ground_truth(raw_xy: np.ndarray, frame_from_image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The reference placement carried through the known motion (see the module docstring).

    Args:
        raw_xy: (N, 4, 2) raw predictions (NaN rows allowed).
        frame_from_image: (N, 3, 3) known camera transforms.
        reference: frame indices whose predictions define the reference quad.

    Returns:
        (N, 4, 2) ground-truth corners.

    Raises:
        ValueError: fewer than half of the reference frames have a prediction.
    """
    in_photo = [warp_points(np.linalg.inv(frame_from_image[i]), raw_xy[i]) for i in reference
                if np.all(np.isfinite(raw_xy[i]))]
    if len(in_photo) < max(2, len(reference) // 2):
        raise ValueError(f"only {len(in_photo)} of {len(reference)} static-hold frames have keypoints "
                         "(no face found, or the accessory is hidden): cannot define the ground truth")
    ref = np.mean(in_photo, axis=0)  # (4, 2) photo px
    return np.stack([warp_points(m, ref) for m in frame_from_image])


def record_clip(pipeline: Any, source: TrajectorySource, name: str) -> Recording:
    """Run ``pipeline.estimate`` on every frame of ``source`` (synchronously).

    Args:
        pipeline: a :class:`realtime.live.pipeline.TryOnPipeline` (reset first).
        source: the clip.
        name: label (the photo's name).
    """
    from tqdm import tqdm

    pipeline.reset()
    n = source.frame_count
    raw = np.full((n, 4, 2), np.nan)
    smoothed = np.full((n, 4, 2), np.nan)
    conf = np.full(n, np.nan)
    visible = np.zeros(n, dtype=bool)
    t = np.zeros(n)
    status = []
    for i in tqdm(range(n), desc=f"steadiness {name}", leave=False, unit="frame"):
        frame = source.read()
        est = pipeline.estimate(frame)
        t[i] = frame.timestamp
        status.append(est.status)
        if est.raw_pts_xy is not None:
            raw[i] = est.raw_pts_xy
        if est.smooth_pts_xy is not None:
            smoothed[i] = est.smooth_pts_xy
        if est.confidence is not None:
            conf[i] = est.confidence
        visible[i] = est.visible
    mats = np.stack([source.frame_from_image(i) for i in range(n)])
    return Recording(name, t, raw, smoothed, conf, visible, status, mats, source.trajectory)


def replay_smoothing(rec: Recording, cfg: SmoothingConfig) -> tuple[np.ndarray, np.ndarray]:
    """Re-run only the smoothing stage on a recording's raw keypoints.

    Mirrors :meth:`realtime.live.pipeline.TryOnPipeline.estimate`: a frame without a face
    resets the filter, a non-finite frame keeps the last output, every other frame is one
    :meth:`QuadSmoother.update`.

    Returns:
        (smoothed (N, 4, 2), visible (N,)).
    """
    smoother = QuadSmoother(cfg)
    out = np.full_like(rec.raw, np.nan)
    visible = np.zeros(len(rec.raw), dtype=bool)
    for i, status in enumerate(rec.status):
        if status in DROPPED:  # the presence check dropped the face on this frame
            smoother.reset()
            continue
        if not np.all(np.isfinite(rec.raw[i])) or not np.isfinite(rec.confidence[i]):
            if status == STATUS_NO_FACE:
                smoother.reset()
            else:  # non-finite network output: the pipeline holds the last pose
                if smoother.last is not None:
                    out[i] = smoother.last
                visible[i] = smoother.visible
            continue
        res = smoother.update(rec.raw[i], float(rec.confidence[i]), float(rec.t[i]))
        if res.pts_xy is not None:
            out[i] = res.pts_xy
        visible[i] = res.visible
    return out, visible


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------

MOVING_KINDS = ("pan", "zoom", "roll", "squeeze", "step")


def score(rec: Recording, pts_xy: np.ndarray | None = None, visible: np.ndarray | None = None) -> dict[str, Any]:
    """Jitter, lag per moving segment and motion error of ``pts_xy`` (default: the
    recording's smoothed keypoints) against the recording's ground truth.

    Only frames where the accessory is visible count (a hidden accessory has no jitter,
    and the filter is bypassed while hidden).

    Besides the lag behind the ground truth (which includes the ROI's and the network's
    own delay and, on zoom and squeeze, any under-response of the network to the size or
    aspect change), ``filter_lag_frames`` is the lag behind the *raw* keypoints: the delay
    the smoothing stage alone adds.

    Returns:
        {"jitter_pct", "lag_frames": {segment: k}, "filter_lag_frames": {segment: k},
        "motion_error_pct", "segment_error_pct": {segment: e}, "visible_frac"}.
    """
    pts = rec.smoothed if pts_xy is None else pts_xy
    vis = rec.visible if visible is None else visible
    pts = np.where(vis[:, None, None], pts, np.nan)
    diag = rec.diagonal
    fps = rec.trajectory.fps
    tail = int(round(LAG_TAIL_S * fps))
    lags, filter_lags, errors, moving = {}, {}, {}, []
    for sp in rec.trajectory.spans:
        if sp.segment.kind not in MOVING_KINDS:
            continue
        if sp.segment.kind == "step":  # the jump happens between the frame before and the first one
            frames = np.arange(max(0, sp.start - tail), sp.stop)
        else:  # the ramp and its catch-up
            frames = np.arange(sp.start, min(len(pts), sp.stop + tail))
        lags[sp.segment.name] = estimate_lag(pts, rec.gt, frames)
        filter_lags[sp.segment.name] = estimate_lag(pts, rec.raw, frames)
        errors[sp.segment.name] = rms_error_pct(pts[sp.start:sp.stop], rec.gt[sp.start:sp.stop], diag)
        moving.append(np.arange(sp.start, sp.stop))
    motion = np.concatenate(moving) if moving else np.arange(0)
    ref = rec.reference_frames()
    present = rec.trajectory.present
    return {"jitter_pct": jitter_pct(pts[ref], diag), "lag_frames": lags, "filter_lag_frames": filter_lags,
            "motion_error_pct": rms_error_pct(pts[motion], rec.gt[motion], diag) if len(motion) else float("nan"),
            "segment_error_pct": errors, "visible_frac": float(np.mean(vis[present])),
            "false_accessory_frac": float(np.mean(vis[~present])) if (~present).any() else float("nan"),
            "segments": segment_metrics(rec, pts, vis)}


def _angle_deg(quads: np.ndarray) -> np.ndarray:
    return np.array([math.degrees(quad_to_params(q)[2]) if np.all(np.isfinite(q)) else np.nan for q in quads])


def segment_metrics(rec: Recording, pts_xy: np.ndarray, visible: np.ndarray) -> list[dict[str, Any]]:
    """Per segment: visible fraction, placement error, roll error; false-accessory fraction
    while the face is away; frames to re-acquire after an absence.

    * placement error: each visible quad mapped back into the photo by the known transform,
      against the reference (upright) placement: mean corner distance, % of the reference
      quad's diagonal, median over the segment's visible frames;
    * placement error at the same place (``placement_error_local_pct``, segments after an upright
      hold): the same, against the mean placement of the latest *earlier* upright hold (no roll,
      no absence since) instead of the static hold's. A pan, zoom or step moves the face to
      another part of the frame and the network's placement there differs a little from the
      static hold's (its equivariance error, seen on the upright hold after the pan already);
      this column isolates what a roll adds to it;
    * roll error: |angle of the quad - angle of the ground truth| in degrees, median;
    * frames to re-acquire (the segment right after an ``away``): frames from its start to
      the first visible one (None: never within the segment).
    """
    out = []
    ref_photo = warp_points(np.linalg.inv(rec.frame_from_image[0]), rec.gt[0])
    diag_photo = float(quad_diagonal(ref_photo))
    gt_angle = _angle_deg(rec.gt)
    pred_angle = _angle_deg(pts_xy)
    prev_kind = None
    local_ref: np.ndarray | None = None  # mean placement (photo px) of the latest upright hold

    def in_photo(i: int) -> np.ndarray:
        return warp_points(np.linalg.inv(rec.frame_from_image[i]), pts_xy[i])

    for sp in rec.trajectory.spans:
        idx = np.arange(sp.start, sp.stop)
        vis = visible[idx] & np.all(np.isfinite(pts_xy[idx]), axis=(1, 2))
        row: dict[str, Any] = {"name": sp.segment.name, "kind": sp.segment.kind, "frames": len(idx),
                               "visible_frac": float(np.mean(vis))}
        if sp.segment.kind in ABSENT_KINDS:
            row["false_accessory_frac"] = row.pop("visible_frac")
            local_ref = None
        else:
            shown = idx[vis]
            if len(shown):
                mapped = [in_photo(i) for i in shown]
                err = [np.mean(np.linalg.norm(q - ref_photo, axis=-1)) for q in mapped]
                row["placement_error_pct"] = float(np.median(err) / diag_photo * 100.0)
                if local_ref is not None:
                    local = [np.mean(np.linalg.norm(q - local_ref, axis=-1)) for q in mapped]
                    row["placement_error_local_pct"] = float(np.median(local) / diag_photo * 100.0)
                d = np.abs((pred_angle[shown] - gt_angle[shown] + 180.0) % 360.0 - 180.0)
                row["roll_error_deg"] = float(np.median(d))
                upright = bool(np.all(np.abs(rec.trajectory.poses[idx, 3]) < math.radians(0.5)))  # camera roll
                if sp.segment.kind == "hold" and upright:
                    local_ref = np.mean(mapped, axis=0)
            else:
                row["placement_error_pct"] = row["roll_error_deg"] = float("nan")
            if prev_kind in ABSENT_KINDS:
                first = np.flatnonzero(vis)
                row["reacquire_frames"] = int(first[0]) if len(first) else None
        out.append(row)
        prev_kind = sp.segment.kind
    return out


def mean_scores(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Average of :func:`score` dicts over photos (NaN-aware)."""
    def avg(values: list[float]) -> float:
        a = np.asarray(values, dtype=np.float64)
        return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")

    out: dict[str, Any] = {}
    for key in ("jitter_pct", "motion_error_pct", "visible_frac", "false_accessory_frac"):
        out[key] = avg([s.get(key, float("nan")) for s in scores])
    if scores and "segments" in scores[0]:
        segs = []
        for i, row in enumerate(scores[0]["segments"]):
            merged = dict(row)
            for key in ("visible_frac", "false_accessory_frac", "placement_error_pct", "placement_error_local_pct",
                        "roll_error_deg"):
                if key in row:
                    merged[key] = avg([s["segments"][i].get(key, float("nan")) for s in scores])
            if "reacquire_frames" in row:  # worst photo; None (never) counts as the whole segment
                merged["reacquire_frames"] = max(s["segments"][i]["reacquire_frames"]
                                                 if s["segments"][i]["reacquire_frames"] is not None
                                                 else s["segments"][i]["frames"] for s in scores)
            segs.append(merged)
        out["segments"] = segs
    for key in ("lag_frames", "filter_lag_frames", "segment_error_pct"):
        names = list(scores[0][key]) if scores else []
        out[key] = {n: avg([s[key][n] for s in scores]) for n in names}
    return out


# --------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------

def load_photos(folder: str | Path | None, limit: int = 5) -> list[tuple[str, np.ndarray]]:
    """(name, RGB image) pairs: up to ``limit`` images of ``folder`` (sorted by name), or
    scikit-image's public-domain astronaut portrait when ``folder`` is None.

    Raises:
        FileNotFoundError: ``folder`` does not exist or holds no readable image.
    """
    if folder is None:
        from skimage.data import astronaut

        return [("astronaut", astronaut())]
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"photo folder not found: {root}")
    out = []
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            log.warning("skipping %s: not a readable image", path)
            continue
        out.append((path.stem, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
        if len(out) >= limit:
            break
    if not out:
        raise FileNotFoundError(f"no readable image ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    return out


def record_photos(make_pipeline: Callable[[], Any], photos: Sequence[tuple[str, np.ndarray]],
                  trajectory: Trajectory, noise_sigma: float = DEFAULT_NOISE_SIGMA) -> list[Recording]:
    """Record one clip per photo; photos where no ground truth can be defined (no face
    found in the static hold, or the accessory stays hidden) are skipped with a warning.

    Args:
        make_pipeline: returns the pipeline to use (called once; reset between clips).
        photos: (name, RGB image) pairs.
        trajectory: the camera script.
        noise_sigma: sensor noise, grey levels.
    """
    pipeline = make_pipeline()
    recs = []
    for i, (name, img) in enumerate(photos):
        src = TrajectorySource(img, trajectory, noise_sigma=noise_sigma, seed=i)
        try:
            rec = record_clip(pipeline, src, name)
        except ValueError as exc:
            log.warning("skipping photo %s: %s", name, exc)
            continue
        recs.append(rec)
    if not recs:
        raise ValueError("no photo gave a usable clip (no face found / accessory never visible)")
    return recs


# --------------------------------------------------------------------------------------
# The smoothing sweep
# --------------------------------------------------------------------------------------

#: Targets (the issue "Speed and steadiness"): static-hold jitter and slow-pan lag.
TARGET_JITTER_PCT = 0.2
TARGET_LAG_FRAMES = 1.0


@dataclass(frozen=True)
class SweepStage:
    """One stage of the smoothing sweep: a grid over two :class:`SmoothingConfig` fields,
    judged on static-hold jitter against the lag ``row[lag_field][lag_key]``."""

    name: str
    params: tuple[str, str]
    grids: tuple[tuple[float, ...], tuple[float, ...]]
    lag_key: str
    lag_field: str
    lag_target: float = TARGET_LAG_FRAMES


#: Stage 1, the main filter (centre, log size, angle): cutoff at rest (Hz) x speed
#: coefficient, judged on the slow pan's lag behind the ground truth (the target).
#: Stage 2, the shape filter, judged on the lag the filter adds on the squeeze (the only
#: segment that changes the quad's shape; the network itself follows the squeeze only
#: partly, so its lag behind the ground truth is not the filter's doing). Stage 3, the
#: cutoff of the speed estimate (how fast beta reacts to a movement starting) with beta.
#: The shape filter gets a 2-frame lag budget: on the squeeze (a fast yaw, 37 degrees in
#: 1 s) the width changes by 0.67 % a frame, so 2 frames late is 1.3 % of the width at
#: the fastest point, while the rigid motion keeps the 1-frame target.
SWEEP_STAGES: tuple[SweepStage, ...] = (
    SweepStage("main filter", ("min_cutoff", "beta"),
               ((0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0),
                (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)), "slow pan", "lag_frames"),
    SweepStage("shape filter", ("shape_min_cutoff", "shape_beta"),
               ((0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 2.0, 5.0), (0.0, 1.0, 4.0, 16.0, 64.0)),
               "squeeze", "filter_lag_frames", lag_target=2.0),
    SweepStage("speed estimate", ("d_cutoff", "beta"),
               ((0.25, 0.5, 1.0, 2.0, 4.0), (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)), "slow pan", "lag_frames"),
)
def evaluate_config(recs: Sequence[Recording], cfg: SmoothingConfig) -> dict[str, Any]:
    """Mean :func:`score` over the recordings with the smoothing stage replayed under ``cfg``."""
    return mean_scores([score(r, *replay_smoothing(r, cfg)) for r in recs])


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``points`` (N, 2), both coordinates minimised,
    sorted by the first coordinate."""
    pts = np.asarray(points, dtype=np.float64)
    ok = np.all(np.isfinite(pts), axis=1)
    front = []
    for i in np.flatnonzero(ok):
        dominated = np.any(ok & np.all(pts <= pts[i], axis=1) & np.any(pts < pts[i], axis=1))
        if not dominated:
            front.append(i)
    return np.array(sorted(front, key=lambda i: tuple(pts[i])), dtype=int)


def choose(rows: Sequence[dict[str, Any]], lag_key: str, lag_field: str = "lag_frames",
           lag_target: float = TARGET_LAG_FRAMES) -> int:
    """Index of the chosen row of a sweep (lag = ``row[lag_field][lag_key]``).

    1. Rows meeting both targets (jitter <= :data:`TARGET_JITTER_PCT`, lag <=
       ``lag_target``): the one with the smallest motion error (which also
       rewards little lag on the fast segments).
    2. Else the lag target is the constraint: among the rows within it, the steadiest
       (the Pareto point at the lag budget). A late accessory visibly trails the head
       on every movement; jitter above the target is reported as not met.
    3. Else (nothing within the lag target) the row with the least lag.
    """
    jit = np.array([r["jitter_pct"] for r in rows], dtype=np.float64)
    lag = np.array([r[lag_field][lag_key] for r in rows], dtype=np.float64)
    err = np.array([r["motion_error_pct"] for r in rows], dtype=np.float64)
    finite = np.isfinite(jit) & np.isfinite(lag) & np.isfinite(err)
    within = finite & (lag <= lag_target)
    both = within & (jit <= TARGET_JITTER_PCT)
    if both.any():
        idx = np.flatnonzero(both)
        return int(idx[np.argmin(err[idx])])
    if within.any():
        idx = np.flatnonzero(within)
        return int(idx[np.argmin(jit[idx])])
    if not finite.any():
        raise ValueError("sweep: no setting has finite jitter, lag and motion error")
    idx = np.flatnonzero(finite)
    return int(idx[np.argmin(lag[idx])])


def _row(cfg: SmoothingConfig, result: dict[str, Any]) -> dict[str, Any]:
    return {**dataclasses.asdict(cfg), **result}


def sweep_smoothing(recs: Sequence[Recording], base: SmoothingConfig | None = None,
                    stages: Sequence[SweepStage] = SWEEP_STAGES, rounds: int = 2) -> dict[str, Any]:
    """Sweep the smoothing parameters on recorded clips and choose defaults.

    Coordinate descent: the stages run in order, each on a grid of its two parameters
    with the others at the choice so far (starting from ``base``), each picking a row with
    :func:`choose`; the whole sequence runs ``rounds`` times, since each stage's best
    depends on the others (the shape filter caps the jitter the main filter can reach).
    Finally each stage's grid is evaluated once more around the final choice (the slices
    that :func:`plot_sweep` draws).

    Returns:
        {"raw": row with smoothing off, "base": row of ``base``, "stages": the slices
        [{"stage", "rows", "chosen_index"}], "history": [{"round", "stage", "chosen"}],
        "chosen": the final row, "chosen_config": dict, "evaluated": settings scored}.
    """
    from tqdm import tqdm

    if rounds < 1:
        raise ValueError(f"sweep: rounds must be >= 1, got {rounds}")
    base = base or SmoothingConfig()
    cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    def evaluate(cfg: SmoothingConfig) -> dict[str, Any]:
        key = tuple(dataclasses.asdict(cfg).items())
        if key not in cache:
            cache[key] = _row(cfg, evaluate_config(recs, cfg))
        return cache[key]

    def grid_rows(stage: SweepStage, around: SmoothingConfig, desc: str) -> list[dict[str, Any]]:
        grid = [(a, b) for a in stage.grids[0] for b in stage.grids[1]]
        return [evaluate(dataclasses.replace(around, **{stage.params[0]: a, stage.params[1]: b}))
                for a, b in tqdm(grid, desc=desc, leave=False)]

    off = dataclasses.replace(base, enabled=False)
    out: dict[str, Any] = {"raw": evaluate(off), "base": evaluate(base), "stages": [], "history": []}
    current = base
    for rnd in range(rounds):
        for stage in stages:
            rows = grid_rows(stage, current, f"sweep round {rnd + 1}: {stage.name}")
            best = choose(rows, stage.lag_key, stage.lag_field, stage.lag_target)
            current = dataclasses.replace(current, **{k: rows[best][k] for k in stage.params})
            out["history"].append({"round": rnd + 1, "stage": stage.name,
                                   "chosen": {k: rows[best][k] for k in stage.params}})
    # Slices through the final choice: each stage's grid with every other parameter at it.
    for stage in stages:
        rows = grid_rows(stage, current, f"sweep slices: {stage.name}")
        index = next(i for i, r in enumerate(rows) if all(r[k] == getattr(current, k) for k in stage.params))
        out["stages"].append({"stage": dataclasses.asdict(stage), "rows": rows, "chosen_index": index})
    out["chosen"] = evaluate(current)
    out["chosen_config"] = dataclasses.asdict(current)
    out["evaluated"] = len(cache)
    return out


def plot_sweep(result: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Jitter-vs-lag scatter of a :func:`sweep_smoothing` result, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    stages = result["stages"]
    fig, axes = plt.subplots(1, len(stages), figsize=(6.5 * len(stages), 5.5), squeeze=False)
    for ax, st in zip(axes[0], stages):
        spec, rows = st["stage"], st["rows"]
        size_key, colour_key = spec["params"]

        def lag_of(row: dict[str, Any], spec: dict[str, Any] = spec) -> float:
            return row[spec["lag_field"]][spec["lag_key"]]

        jit = np.array([r["jitter_pct"] for r in rows])
        lag = np.array([lag_of(r) for r in rows])
        colours = np.log2(1.0 + np.array([r[colour_key] for r in rows]))
        sizes = 15 + 25 * np.log2(1.0 + 10 * np.array([r[size_key] for r in rows]))
        sc = ax.scatter(jit, lag, c=colours, s=sizes, cmap="viridis", alpha=0.8, edgecolors="none")
        fig.colorbar(sc, ax=ax).set_label(f"log2(1 + {colour_key})")
        front = pareto_front(np.stack([jit, lag], axis=1))
        ax.plot(jit[front], lag[front], "k-", lw=1, label="Pareto front")
        for label, row, marker, colour in (("no smoothing", result["raw"], "X", "black"),
                                           ("previous default", result["base"], "s", "black"),
                                           ("chosen", result["chosen"], "*", "red")):
            ax.scatter([row["jitter_pct"]], [lag_of(row)], marker=marker, s=180, c=colour, label=label, zorder=5)
        ax.axvline(TARGET_JITTER_PCT, color="red", ls="--", lw=0.8)
        ax.axhline(spec["lag_target"], color="red", ls="--", lw=0.8, label="targets")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("static-hold jitter, % of quad diagonal (log)")
        what = "lag behind ground truth" if spec["lag_field"] == "lag_frames" else "lag added by the filter"
        ax.set_ylabel(f"{what} on the {spec['lag_key']}, frames")
        ax.set_title(f"{spec['name']}: {size_key} (marker size) x {colour_key} (colour)\n"
                     "other parameters at the final choice", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------
# The whole measurement and its report
# --------------------------------------------------------------------------------------

def run_stability(make_pipeline: Callable[[], Any], photos: Sequence[tuple[str, np.ndarray]],
                  smoothing: SmoothingConfig | None = None, noise_sigma: float = DEFAULT_NOISE_SIGMA,
                  sweep: bool = False, size_wh: tuple[int, int] = (640, 480),
                  script: Sequence[Segment] = DEFAULT_SCRIPT) -> dict[str, Any]:
    """Steadiness of ``make_pipeline()`` on every photo (and the smoothing sweep).

    Args:
        make_pipeline: returns the pipeline (its smoothing config is what "smoothed" means).
        photos: (name, RGB) pairs.
        smoothing: the pipeline's smoothing config (the sweep starts from it).
        noise_sigma: sensor noise, grey levels.
        sweep: also run :func:`sweep_smoothing`.
        size_wh: frame size of the clips.
        script: the camera script.

    Returns:
        JSON-ready report: per-photo and mean scores with smoothing off ("raw") and on.
    """
    smoothing = smoothing or SmoothingConfig()
    trajectory = Trajectory(script, size_wh)
    recs = record_photos(make_pipeline, photos, trajectory, noise_sigma)
    return stability_report(recs, smoothing, noise_sigma, len(photos) - len(recs), sweep)


def stability_report(recs: Sequence[Recording], smoothing: SmoothingConfig, noise_sigma: float,
                     skipped: int = 0, sweep: bool = False) -> dict[str, Any]:
    """The report of :func:`run_stability` from its recordings (same script and frame size)."""
    trajectory = recs[0].trajectory
    size_wh = trajectory.size_wh
    per_photo = [{"photo": r.name, "diagonal_px": r.diagonal, "raw": score(r, r.raw, r.visible),
                  "smoothed": score(r)} for r in recs]
    report: dict[str, Any] = {
        "kind": "stability", "photos": [r.name for r in recs], "skipped_photos": skipped,
        "noise_sigma": noise_sigma, "frame_size": f"{size_wh[0]}x{size_wh[1]}", "fps": trajectory.fps,
        "script": [dataclasses.asdict(s) for s in trajectory.script], "smoothing": dataclasses.asdict(smoothing),
        "per_photo": per_photo, "raw": mean_scores([p["raw"] for p in per_photo]),
        "smoothed": mean_scores([p["smoothed"] for p in per_photo]),
        "targets": {"jitter_pct": TARGET_JITTER_PCT, "slow_pan_lag_frames": TARGET_LAG_FRAMES}}
    if sweep:
        report["sweep"] = sweep_smoothing(recs, smoothing)
    return report


def sweep_title(report: dict[str, Any]) -> str:
    """Title line of the sweep plot: model, photos, date."""
    model = report.get("model", {})
    return (f"Smoothing sweep {report.get('date', '')}: {model.get('description', '?')} "
            f"(input {model.get('input_size', '?')}), {len(report['photos'])} photo(s), "
            f"{report['frame_size']} @ {report['fps']:g} fps, sensor noise {report['noise_sigma']:g}")


def _fmt(v: float | None, nd: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def _score_row(label: str, sc: dict[str, Any], segments: Sequence[str]) -> str:
    lags = " | ".join(f"{_fmt(sc['lag_frames'].get(s), 1)} ({_fmt(sc['filter_lag_frames'].get(s), 1)})"
                      for s in segments)
    return (f"| {label} | {_fmt(sc['jitter_pct'], 3)} | {lags} | {_fmt(sc['motion_error_pct'])} | "
            f"{_fmt(sc['visible_frac'])} |")


def segment_table(sc: dict[str, Any]) -> list[str]:
    """Markdown lines: the per-segment metrics of a (mean) score (:func:`segment_metrics`)."""
    if "segments" not in sc:
        return []
    lines = ["Per segment (smoothed, mean over photos; re-acquire: worst photo): visible fraction, placement error "
             "(quad mapped back into the photo vs its upright placement in the static hold, % of the diagonal, "
             "median; in brackets vs the latest earlier upright hold at the same place, i.e. what the roll adds), "
             "roll error (degrees, median), accessory shown while the face is away, frames to re-acquire.", "",
             "| segment | visible | placement error (% diag) (same place) | roll error (deg) | accessory with no face | "
             "frames to re-acquire |", "|---|---|---|---|---|---|"]
    for row in sc["segments"]:
        reac = row.get("reacquire_frames")
        local = row.get("placement_error_local_pct")
        place = _fmt(row.get('placement_error_pct')) + ("" if local is None else f" ({_fmt(local)})")
        lines.append(f"| {row['name']} | {_fmt(row.get('visible_frac'))} | {place} | "
                     f"{_fmt(row.get('roll_error_deg'), 1)} | {_fmt(row.get('false_accessory_frac'))} | "
                     f"{'' if reac is None else reac} |")
    lines += ["", f"Accessory on frames with no face: {_fmt(sc.get('false_accessory_frac'), 3)}; visible on frames "
                  f"with a face: {_fmt(sc.get('visible_frac'), 3)}.", ""]
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    """The steadiness report (and the sweep's choice) as Markdown."""
    from realtime.bench.report import run_context_line

    segments = [s["name"] for s in report["script"] if s["kind"] in MOVING_KINDS]
    model = report.get("model", {})
    head = ("| | jitter (% diag) | " + " | ".join(f"lag {s} (filter)" for s in segments)
            + " | motion error (% diag) | visible |")
    sep = "|---" * (4 + len(segments)) + "|"
    lines = [f"# Steadiness — {report['date']}", "", run_context_line(report) + ".", "",
             f"Model: {model.get('description')} (backend {model.get('backend')} {model.get('precision')}, input "
             f"{model.get('input_size')}, width x{model.get('width_mult')}, config {model.get('config_hash')})"
             + (" — **UNTRAINED: these numbers are meaningless**" if model.get("untrained") else "")
             + f". Accessory {report.get('accessory')}.",
             f"Photos ({len(report['photos'])}; {report['skipped_photos']} skipped: no face / never visible): "
             f"{', '.join(report['photos'])}. Frames {report['frame_size']} at {report['fps']:g} fps, Gaussian "
             f"sensor noise sigma {report['noise_sigma']:g} grey levels. Estimator synchronous (every frame "
             "inferred). Ground truth: the mean static-hold prediction carried through the known camera motion "
             "(realtime/bench/stability.py). Lags in frames behind the ground truth, in brackets the lag the smoothing "
             "adds (behind the raw keypoints).", "",
             "Script: " + "; ".join(f"{s['name']} {s['seconds']:g} s" for s in report["script"]) + ".", "",
             "## Mean over photos", "", head, sep,
             _score_row("raw (smoothing off)", report["raw"], segments),
             _score_row("smoothed (" + ", ".join(f"{k}={report['smoothing'][k]}" for k in
                                                 ("min_cutoff", "beta", "shape_min_cutoff", "shape_beta")) + ")",
                        report["smoothed"], segments), "",
             f"Targets: jitter <= {report['targets']['jitter_pct']} % of the diagonal on the static hold, lag <= "
             f"{report['targets']['slow_pan_lag_frames']} frame on the slow pan.", "",
             *segment_table(report["smoothed"]),
             "## Per photo", "", head, sep]
    for p in report["per_photo"]:
        lines.append(_score_row(f"{p['photo']} raw", p["raw"], segments))
        lines.append(_score_row(f"{p['photo']} smoothed", p["smoothed"], segments))
    if "sweep" in report:
        sw = report["sweep"]
        lines += ["", "## Smoothing sweep", "",
                  f"Coordinate descent ({len(sw['history']) // max(1, len(sw['stages']))} rounds over "
                  f"{len(sw['stages'])} stages, {sw.get('evaluated', '?')} settings scored): each stage sweeps two "
                  "parameters with the others at the choice so far. Choice: among the settings meeting both targets "
                  "the one with the smallest motion error; else, the lag target being the constraint, the steadiest "
                  "setting within it (realtime.bench.stability.choose). Rows below: slices through the final choice. "
                  "Plot: " + str(report.get("sweep_png", "(not written)")), "",
                  head.replace("| |", "| setting |", 1), sep,
                  _score_row("no smoothing", sw["raw"], segments),
                  _score_row("previous default", sw["base"], segments)]
        cfg = sw["chosen_config"]
        keys = ("min_cutoff", "beta", "d_cutoff", "shape_min_cutoff", "shape_beta")
        steps = [f"round {h['round']} {h['stage']}: " + ", ".join(f"{k}={v}" for k, v in h["chosen"].items())
                 for h in sw["history"]]
        lines += [_score_row("chosen", sw["chosen"], segments), "",
                  "Chosen: " + ", ".join(f"{k}={cfg[k]}" for k in keys) + ". Descent: " + "; ".join(steps) + ".", ""]
        for st in sw["stages"]:
            spec, rows = st["stage"], st["rows"]
            jit = np.array([r["jitter_pct"] for r in rows])
            lag = np.array([r[spec["lag_field"]][spec["lag_key"]] for r in rows])
            a, b = spec["params"]
            lines += [f"Pareto front of the {spec['name']} (jitter vs {spec['lag_field']} on the {spec['lag_key']}):",
                      "", f"| {a} | {b} | jitter (% diag) | lag (frames) | motion error (% diag) |",
                      "|---|---|---|---|---|"]
            for i in pareto_front(np.stack([jit, lag], axis=1)):
                lines.append(f"| {rows[i][a]} | {rows[i][b]} | {_fmt(jit[i], 3)} | {_fmt(lag[i])} | "
                             f"{_fmt(rows[i]['motion_error_pct'])} |")
            lines.append("")
    return "\n".join(lines) + "\n"
