"""Keypoint propagation between inferences: frame-to-frame motion of the accessory's region.

In async mode (:class:`realtime.live.pipeline.FrameLoop`) the keypoints drawn on camera
frame n were inferred on an older frame k; unpropagated, the accessory trails a moving
face by one inference period. :class:`MotionPropagator` measures the image motion of the
region around the drawn accessory from each displayed frame to the next, on the main
thread, and carries an estimate of frame k to frame n with the accumulated motion
T(k->n), as AR trackers do between detector updates.

Per frame (:meth:`MotionPropagator.observe`): the region's box (the accessory quads'
bounding box grown by :attr:`PropagationConfig.margin`, never the full frame) is cut out
of the previous and the current frame, downscaled to at most ``max_side`` pixels and
converted to grey (that box only); the previous frame's corner features
(``cv2.goodFeaturesToTrack``) are followed by pyramidal Lucas-Kanade optical flow
(``cv2.calcOpticalFlowPyrLK``, forward and backward: a point must come back to where it
started), and a similarity (translation, rotation, uniform scale) is fitted to the
survivors with RANSAC (``cv2.estimateAffinePartial2D``). A fit with too few inliers or an
implausible step (zoom or rotation beyond ``max_step_*``) breaks the motion chain. Each
frame's cumulative transform since the start of its chain is kept in a ring buffer by
frame index (:attr:`PropagationConfig.history` frames), so :meth:`MotionPropagator.carry`
gives T(k->n) for any recent k on the same chain, and None otherwise (a broken chain,
a frame too old, or a total motion beyond ``max_total_*``): the caller then draws the
keypoints unpropagated, as before propagation existed. Features are re-seeded in the
current box when fewer than ``min_features`` survive.

The geometry (composing, inverting and applying the 3x3 transforms) is
:mod:`realtime.geometry`'s (``carry_matrix``, ``warp_points``, ``resize_matrix``).
Cost: benchmarks/propagation.py (720p, one core).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from realtime.geometry import (carry_matrix, conjugate_by_scaling, resize_matrix, similarity_scale_angle,
                               translation_matrix)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive end), frame pixels


@dataclass(frozen=True)
class PropagationConfig:
    """Options of :class:`MotionPropagator` (pixel values are in the downscaled region).

    Attributes:
        history: frames whose cumulative motion is kept (an estimate older than this is
            drawn unpropagated); 256 frames = 8.5 s at 30 fps.
        max_side: the region is downscaled so its longer side is at most this many pixels.
        margin: the region box grows by this fraction of the quads' longer side on each side.
        max_features: corner features seeded per region.
        min_features: re-seed when fewer survive.
        min_inliers: fewest RANSAC inliers for a frame-to-frame fit.
        ransac_px: RANSAC reprojection threshold.
        fb_px: forward-backward tolerance of one optical-flow point; 0 skips the backward
            pass (the default: RANSAC already rejects the stray points, and on the moving
            astronaut the backward pass cost a third of the step for no gain in accuracy).
        max_step_scale, max_step_deg: most zoom (|log scale|) and rotation of one frame step.
        max_total_scale, max_total_deg: most zoom and rotation of a carry T(k->n).
    """

    history: int = 256
    max_side: int = 160
    margin: float = 0.25
    max_features: int = 40
    min_features: int = 15
    min_inliers: int = 8
    ransac_px: float = 1.0
    fb_px: float = 0.0
    max_step_scale: float = 0.15
    max_step_deg: float = 10.0
    max_total_scale: float = 0.5
    max_total_deg: float = 35.0

    def __post_init__(self) -> None:
        if self.history < 1 or self.max_side < 16 or self.min_inliers < 3 or self.max_features < self.min_features:
            raise ValueError(f"bad propagation options: {self}")


#: Lucas-Kanade options: an 11 px window, 2 pyramid levels (steps up to about 20 px in the
#: downscaled region), 10 iterations.
_LK = dict(winSize=(11, 11), maxLevel=2, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 10, 0.03))


class MotionPropagator:
    """Frame-to-frame similarity motion of a region, and carries between recent frames.

    Call :meth:`observe` with every displayed frame in order, then :meth:`retarget` with
    the region to follow into the next frame; :meth:`carry` maps points of an earlier
    observed frame onto the current one. Single-threaded (the display loop's thread).

    Attributes:
        steps, failures: frame steps fitted / refused since the start (for logs and tests).
    """

    def __init__(self, cfg: PropagationConfig | None = None) -> None:
        self.cfg = cfg or PropagationConfig()
        self.steps = self.failures = 0
        self.reset()

    def reset(self) -> None:
        """Forget all motion (the next frame starts a new chain)."""
        # frame index -> (chain id, 3x3 cumulative transform: that frame from its chain's first frame)
        self._history: collections.OrderedDict[int, tuple[int, np.ndarray]] = collections.OrderedDict()
        self._chain = 0
        self._last: tuple[int, np.ndarray] | None = None  # (chain, cumulative) of the newest frame
        self._box: Box | None = None
        self._small_from_frame: np.ndarray | None = None
        self._grey: np.ndarray | None = None  # previous frame, cut in _box, downscaled
        self._pts: np.ndarray | None = None  # (N, 1, 2) float32 features in _grey's pixels
        self._current: tuple[Box, np.ndarray, np.ndarray] | None = None  # newest frame cut in _box

    # ------------------------------------------------------------------ crops
    def _cut(self, image: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """(grey crop of ``box`` downscaled by a whole factor to at most ``max_side`` px,
        small_from_frame 3x3). Grey first, then an integer-factor area resize: OpenCV's
        fast path (a fractional factor cost 10x more)."""
        x0, y0, x1, y1 = box
        f = max(1, math.ceil(max(x1 - x0, y1 - y0) / self.cfg.max_side))
        w, h = (x1 - x0) // f * f, (y1 - y0) // f * f  # whole multiples of the factor
        sub = image[y0:y0 + h, x0:x0 + w]
        grey = sub if sub.ndim == 2 else cv2.cvtColor(sub, cv2.COLOR_BGR2GRAY)
        if f > 1:
            grey = cv2.resize(grey, (w // f, h // f), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(grey), resize_matrix((w, h), (w // f, h // f)) @ translation_matrix(-x0, -y0)

    def box_for(self, region_xy: Iterable[np.ndarray], frame_wh: tuple[int, int]) -> Box | None:
        """The tracked box around some quads (frame px): their bounding box grown by
        ``margin`` of its longer side, clipped to the frame; None when nothing usable."""
        pts = [np.asarray(q, np.float64).reshape(-1, 2) for q in region_xy if q is not None]
        pts = [p for p in pts if p.size and np.all(np.isfinite(p))]
        if not pts:
            return None
        allp = np.concatenate(pts)
        lo, hi = allp.min(axis=0), allp.max(axis=0)
        grow = self.cfg.margin * float(max(hi - lo))
        x0, y0 = (int(math.floor(v - grow)) for v in lo)
        x1, y1 = (int(math.ceil(v + grow)) + 1 for v in hi)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, frame_wh[0]), min(y1, frame_wh[1])
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        return x0, y0, x1, y1

    # ------------------------------------------------------------------ per frame
    def observe(self, image: np.ndarray, index: int) -> bool:
        """Measure the motion from the previous observed frame to this one (frame ``index``,
        BGR or grey) and record its cumulative transform. Returns True when the step was
        fitted (the chain goes on), False when a new chain starts here."""
        step = None
        self._current = None
        if self._grey is not None and self._box is not None and self._pts is not None \
                and len(self._pts) >= self.cfg.min_inliers:
            grey, small_from_frame = self._cut(image, self._box)
            self._current = (self._box, grey, small_from_frame)
            step = self._fit(self._grey, grey, self._pts)
            if step is None:
                self.failures += 1
        if step is not None and self._last is not None:
            mat_small, self._pts = step
            frame_step = conjugate_by_scaling(mat_small, self._small_from_frame)
            chain, cumulative = self._last[0], frame_step @ self._last[1]
            self.steps += 1
        else:
            self._chain += 1
            chain, cumulative = self._chain, np.eye(3)
            self._pts = None
        self._last = (chain, cumulative)
        self._history[index] = self._last
        self._history.move_to_end(index)
        while len(self._history) > self.cfg.history:
            self._history.popitem(last=False)
        return step is not None

    def retarget(self, image: np.ndarray, region_xy: Iterable[np.ndarray]) -> None:
        """Follow the region around ``region_xy`` (quads on the frame just observed, frame px)
        into the next frame; an empty region stops tracking (the next frame starts a chain)."""
        h, w = image.shape[:2]
        box = self.box_for(region_xy, (w, h))
        if box is None:
            self._grey = self._pts = self._box = None
            return
        keep = self._box is not None and self._current is not None and self._keeps(self._box, box)
        if keep:
            _, grey, small_from_frame = self._current
        else:
            grey, small_from_frame = self._cut(image, box)
            if self._pts is not None and self._small_from_frame is not None:  # move the survivors to the new box
                mat = small_from_frame @ np.linalg.inv(self._small_from_frame)
                moved = cv2.perspectiveTransform(self._pts.astype(np.float64), mat).astype(np.float32)
                m, (gh, gw) = moved[:, 0], grey.shape[:2]
                self._pts = moved[(m[:, 0] >= 0) & (m[:, 1] >= 0) & (m[:, 0] <= gw - 1) & (m[:, 1] <= gh - 1)]
            self._box = box
        self._grey, self._small_from_frame = grey, small_from_frame
        if self._pts is None or len(self._pts) < self.cfg.min_features:
            self._pts = self._seed(grey)

    @staticmethod
    def _keeps(current: Box, wanted: Box) -> bool:
        """Keep the current box while it holds the wanted one's centre region and its size
        is within 25 % (so the crop is not re-cut, and features re-mapped, every frame)."""
        cw, ch = current[2] - current[0], current[3] - current[1]
        ww, wh = wanted[2] - wanted[0], wanted[3] - wanted[1]
        if not (0.8 <= ww / cw <= 1.25 and 0.8 <= wh / ch <= 1.25):
            return False
        dx = abs((current[0] + current[2]) - (wanted[0] + wanted[2])) / 2
        dy = abs((current[1] + current[3]) - (wanted[1] + wanted[3])) / 2
        return dx <= 0.1 * cw and dy <= 0.1 * ch

    def _seed(self, grey: np.ndarray) -> np.ndarray | None:
        side = max(grey.shape)
        pts = cv2.goodFeaturesToTrack(grey, self.cfg.max_features, 0.01, max(3.0, side / 25.0), blockSize=5)
        return None if pts is None else pts.astype(np.float32)

    def _fit(self, prev: np.ndarray, cur: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(2x3 similarity cur_from_prev in small pixels, inlier points in ``cur``) or None."""
        cfg = self.cfg
        nxt, ok, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, **_LK)
        if nxt is None:
            return None
        good = ok[:, 0] == 1
        if cfg.fb_px > 0:
            back, ok2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt, None, **_LK)
            good &= (ok2[:, 0] == 1) & (np.linalg.norm((back - pts)[:, 0], axis=1) <= cfg.fb_px)
        if int(good.sum()) < cfg.min_inliers:
            return None
        mat, inliers = cv2.estimateAffinePartial2D(pts[good], nxt[good], method=cv2.RANSAC,
                                                   ransacReprojThreshold=cfg.ransac_px, maxIters=200)
        if mat is None or inliers is None or int(inliers.sum()) < cfg.min_inliers:
            return None
        if not self._plausible(mat, cfg.max_step_scale, cfg.max_step_deg):
            return None
        return mat, nxt[good][inliers[:, 0] == 1]

    @staticmethod
    def _plausible(mat: np.ndarray, max_log_scale: float, max_deg: float) -> bool:
        if not np.all(np.isfinite(mat)):
            return False
        scale, angle = similarity_scale_angle(mat)
        return scale > 0 and abs(math.log(scale)) <= max_log_scale and abs(angle) <= max_deg

    # ------------------------------------------------------------------ carrying
    def carry(self, src_index: int, dst_index: int) -> np.ndarray | None:
        """3x3 T(src->dst) between two observed frames on one unbroken chain, or None
        (unknown frame, broken chain, or a total zoom / rotation beyond the limits)."""
        a, b = self._history.get(src_index), self._history.get(dst_index)
        if a is None or b is None or a[0] != b[0]:
            return None
        mat = carry_matrix(b[1], a[1])
        return mat if self._plausible(mat, self.cfg.max_total_scale, self.cfg.max_total_deg) else None
