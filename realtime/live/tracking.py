"""Tracking: find the person, follow them, and cut the square network crop each frame.

The crop framing itself (:class:`~realtime.framing.RoiConfig`, :class:`~realtime.framing.Roi`)
lives in :mod:`realtime.framing`, shared with training.

Pipeline of this stage (:class:`RoiTracker`):

1. **Detect** the face with the LBP frontal-face cascade that ships inside scikit-image
   (``skimage.data.lbp_frontal_face_cascade_filename()``, OpenCV's own
   ``lbpcascade_frontalface.xml``). OpenCV's Haar cascades cannot be used: opencv-python 5
   no longer ships ``cv2.data.haarcascades`` files nor ``cv2.CascadeClassifier`` (the
   cascade classifier moved out of the main modules). Detection runs at start, every
   ``detect_every`` frames to correct drift, and every ``lost_detect_every`` frames while
   nobody is found; a tracked face is searched in a window around it, then in the whole
   frame after a miss. While the keypoints follow the face, a re-detection that lands
   within ``redetect_deadband`` face sizes (and log-size) of the followed face only
   confirms it: the cascade's box wobbles by a few percent between frames, and applying
   each such correction moved the crop, hence the keypoints, every ``detect_every``
   frames (the largest jitter source measured, benchmarks/results/steadiness_*).
2. **Follow the keypoints** between detections: the accessory's quad says where the face
   is. After each detection, once the smoothed crop has settled on it, a confident quad
   fixes the quad's offset and size relative to the face box; later confident quads move
   and scale the face box by the same relation. A quad that would move the face by more than ``max_follow_step`` face
   sizes or scale it by more than ``max_follow_scale`` in one step is ignored (a bad
   prediction must not drag the crop away).
3. **Smooth** the face box (centre, log size) with a One Euro filter so the crop does not
   jitter (:mod:`realtime.live.smoothing`).
4. **Crop**: square box = face box shifted by (center_dx, center_dy) face sizes and scaled
   to ``side`` face sizes (:class:`RoiConfig`), upright, through
   :func:`realtime.geometry.crop_from_box` / :func:`~realtime.geometry.warp_crop`; pixels
   outside the frame are black, as in training's augmentation.

The face is lost after ``max_missed`` failed detections in a row without any confident
keypoint follow in between (or ``max_missed_following`` with); :meth:`RoiTracker.update`
then returns None and the pipeline hides the accessory. While tracking, a full-frame
detection is accepted only at 0.5x to 2x the tracked face's size.
"""

from __future__ import annotations

import functools
import logging
import math

import cv2
import numpy as np

from realtime.framing import FaceBox, Roi, RoiConfig, roi_from_face
from realtime.live.smoothing import OneEuroFilter, quad_size

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Face detection
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _cascade():
    """The LBP frontal-face cascade bundled with scikit-image (loaded once)."""
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())


class FaceDetector:
    """Frontal faces with scikit-image's bundled LBP cascade, on a downscaled grey image.

    Args:
        detect_width: full-frame searches run at this width (a face must be at least 20 px
            there: 80 px in a 1280-wide frame).
        window_face_px: window searches resize the expected face to this size.
        min_neighbors: cascade vote threshold (higher = fewer false positives).
    """

    #: Smallest face the cascade window sees, px (the cascade's window is 24x24).
    MIN_FACE_PX = 20
    #: scikit-image's recommended pyramid step for speed (1.2).
    SCALE_FACTOR = 1.2

    def __init__(self, detect_width: int = 320, window_face_px: int = 48, min_neighbors: int = 3) -> None:
        self.detect_width, self.window_face_px, self.min_neighbors = detect_width, window_face_px, min_neighbors

    def _run(self, grey: np.ndarray, scale: float, origin: tuple[float, float], min_px: float,
             max_px: float) -> list[FaceBox]:
        h, w = grey.shape
        small = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        max_px = min(max_px, min(small.shape))
        min_px = max(self.MIN_FACE_PX, min_px)
        if max_px < min_px:
            return []
        dets = _cascade().detect_multi_scale(small, scale_factor=self.SCALE_FACTOR, step_ratio=1,
                                             min_size=(int(min_px), int(min_px)),
                                             max_size=(int(max_px), int(max_px)),
                                             min_neighbor_number=self.min_neighbors)
        out = []
        for d in dets:
            side = d["width"] / scale
            out.append(FaceBox(origin[0] + (d["c"] + 0.5 * d["width"]) / scale - 0.5,
                               origin[1] + (d["r"] + 0.5 * d["height"]) / scale - 0.5, side))
        return out

    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        """Faces in ``frame_bgr``, largest first; with ``near``, only in a window of 3 face
        sizes around it, nearest first (only that window is converted to grey)."""
        h, w = frame_bgr.shape[:2]
        if near is None:
            grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
            scale = min(1.0, self.detect_width / w)
            faces = self._run(grey, scale, (0.0, 0.0), self.MIN_FACE_PX, min(h, w) * scale)
            return sorted(faces, key=lambda f: -f.side)
        half = 1.5 * near.side
        x0, y0 = max(0, int(near.cx - half)), max(0, int(near.cy - half))
        x1, y1 = min(w, int(near.cx + half) + 1), min(h, int(near.cy + half) + 1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        scale = min(1.0, self.window_face_px / near.side)
        grey = cv2.cvtColor(frame_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        faces = self._run(grey, scale, (x0, y0), 0.6 * near.side * scale, 1.6 * near.side * scale)
        return sorted(faces, key=lambda f: math.hypot(f.cx - near.cx, f.cy - near.cy))


# --------------------------------------------------------------------------------------
# Tracker
# --------------------------------------------------------------------------------------

class RoiTracker:
    """Detect, follow and smooth the face; build the network crop each frame.

    Args:
        cfg: the category's :class:`RoiConfig`.
        input_size: network input size.
        detector: a :class:`FaceDetector` (or anything with its ``detect``); default one
            built from ``cfg``.
    """

    def __init__(self, cfg: RoiConfig, input_size: int, detector: FaceDetector | None = None) -> None:
        self.cfg, self.input_size = cfg, input_size
        self.detector = detector or FaceDetector(cfg.detect_width, cfg.window_face_px, cfg.min_neighbors)
        self._centre = OneEuroFilter(cfg.min_cutoff, cfg.beta)
        self._log_side = OneEuroFilter(cfg.min_cutoff, cfg.beta)
        self.reset()

    def reset(self) -> None:
        """Forget the person: the next :meth:`update` detects from scratch."""
        self._face: np.ndarray | None = None  # raw (cx, cy, side): the last detection, moved by follows
        self._anchor: tuple[np.ndarray, float] | None = None
        self._since_detect = 0
        self._missed = 0
        self._followed = False
        self._centre.reset()
        self._log_side.reset()
        self.last: Roi | None = None
        self.detections = 0

    def set_config(self, cfg: RoiConfig, input_size: int) -> None:
        """Switch category framing, keeping the face (the quad relation is re-learned)."""
        self.cfg, self.input_size = cfg, input_size
        self._anchor = None

    @property
    def lost(self) -> bool:
        """No face is being tracked."""
        return self._face is None

    def _plausible(self, face: FaceBox) -> bool:
        """A full-frame detection while tracking must be about the tracked face's size."""
        return self._face is None or 0.5 <= face.side / self._face[2] <= 2.0

    def _detect(self, frame_bgr: np.ndarray) -> None:
        near = None
        if self._face is not None and self._missed == 0:
            near = FaceBox(*self._face)
        faces = [f for f in self.detector.detect(frame_bgr, near=near) if self._plausible(f)]
        self._since_detect = 0
        self.detections += 1
        if not faces:
            self._missed += 1
            if self._face is not None and (self._missed >= self.cfg.max_missed_following or
                                           (self._missed >= self.cfg.max_missed and not self._followed)):
                log.info("face lost")
                self.reset()
            self._followed = False
            return
        best = faces[0]
        if self._face is not None and near is None:  # full-frame search: prefer the one we had
            best = min(faces, key=lambda f: math.hypot(f.cx - self._face[0], f.cy - self._face[1]))
        new = best.as_array()
        if self._confirms(new):
            self._missed, self._followed = 0, False
            return
        if self._face is None or math.hypot(*(new[:2] - self._face[:2])) > self._face[2]:
            self._centre.reset()  # a new person or a big jump: do not glide there
            self._log_side.reset()
            if self._face is None:
                log.info("face found at (%.0f, %.0f), size %.0f px", new[0], new[1], new[2])
        self._face, self._anchor, self._missed, self._followed = new, None, 0, False

    def _confirms(self, new: np.ndarray) -> bool:
        """A re-detection within the dead-band of a face the keypoints are following."""
        face, band = self._face, self.cfg.redetect_deadband
        if face is None or self._anchor is None or not self._followed or band <= 0:
            return False
        return math.hypot(*(new[:2] - face[:2])) <= band * face[2] and abs(math.log(new[2] / face[2])) <= band

    def update(self, frame_bgr: np.ndarray, t: float) -> Roi | None:
        """Run detection when due and return this frame's crop (None: nobody found)."""
        self._since_detect += 1
        every = self.cfg.lost_detect_every if self._face is None or self._missed else self.cfg.detect_every
        if self._face is None or self._since_detect >= every:
            self._detect(frame_bgr)
        if self._face is None:
            self.last = None
            return None
        log_side = float(self._log_side(math.log(self._face[2]), t))
        side = math.exp(log_side)
        cx, cy = self._centre(self._face[:2], t, scale=side)
        self.last = roi_from_face(FaceBox(float(cx), float(cy), side), self.cfg, self.input_size)
        return self.last

    def observe(self, pts_xy: np.ndarray | None, confident: bool) -> None:
        """Feed back the keypoints (frame pixels) predicted on the crop :meth:`update` returned.

        The quad's offset and size relative to the face are learned on the first confident
        quad after a detection, but only once the smoothed crop has settled on that
        detection: a network that is partly anchored to its crop (untrained, or unsure)
        would otherwise feed the smoothing lag back into the face position and make the
        crop drift.
        """
        roi = self.last
        if pts_xy is None or not confident or self._face is None or roi is None:
            return
        pts = np.asarray(pts_xy, dtype=np.float64)
        if not np.all(np.isfinite(pts)):
            return
        qc, qs = pts.mean(axis=0), quad_size(pts)
        if qs < 1.0:
            return
        face = self._face
        if self._anchor is None:
            settled = math.hypot(roi.face.cx - face[0], roi.face.cy - face[1]) <= self.cfg.settle_tol * face[2] \
                and abs(math.log(roi.face.side / face[2])) <= self.cfg.settle_tol
            if settled:
                self._anchor = ((qc - face[:2]) / face[2], qs / face[2])
            return
        offset, ratio = self._anchor
        side = qs / ratio
        centre = qc - offset * side
        if math.hypot(*(centre - face[:2])) <= self.cfg.max_follow_step * face[2] \
                and abs(math.log(side / face[2])) <= math.log(self.cfg.max_follow_scale):
            self._face = np.array([centre[0], centre[1], side])
            self._followed = True
