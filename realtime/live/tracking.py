"""Tracking: find the person, follow them, and cut the square network crop each frame.

The crop framing itself (:class:`~realtime.framing.RoiConfig`, :class:`~realtime.framing.Roi`)
lives in :mod:`realtime.framing`, shared with training.

Pipeline of this stage (:class:`RoiTracker`):

1. **Detect** the face with a :class:`~realtime.live.detectors.FaceDetector` chosen by name
   (:mod:`realtime.live.detectors`: MediaPipe's BlazeFace, the default; the project's own
   ``tryon-face``; the LBP cascade bundled with scikit-image; dlib's HOG).
   While nobody is followed, each detection attempt that finds nobody upright also searches
   one extra view (rotated by +-30 / +-60 degrees, or padded), in turn
   (:data:`~realtime.live.detectors.ACQUIRE_VIEWS`). Detection runs at start, every
   ``detect_every`` frames to correct drift, and every ``lost_detect_every`` frames while
   nobody is found; a tracked face is searched in a window around it, then in the whole
   frame after a miss (a window again, every ``confirmed_detect_every`` frames, while the
   network confirms the followed face, in a smaller view of :data:`GUARD_SPAN` face sizes for
   the pyramid detectors, whose cost grows with the area searched);
   both de-rotated by the followed roll when it exceeds :data:`ROLL_VIEW_DEG`. While the keypoints follow the face, a re-detection that lands
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
   jitter (:mod:`realtime.live.smoothing`), and lead it by the filter's velocity estimate
   (``crop_lead`` frame intervals): the box comes from the previous frame's keypoints and the
   filter trails it, and a network partly anchored to its crop turned that trailing crop into
   keypoint lag on a pan.
4. **Crop**: square box = face box shifted by (center_dx, center_dy) face sizes (in the
   face's axes) and scaled to ``side`` face sizes (:class:`RoiConfig`), rotated by the
   followed face's roll (the previous frame's quad roll through a dead-band of
   ``roll_deadband_deg``, fed back by :meth:`RoiTracker.observe`, as face-landmark trackers
   do with the previous frame's landmarks) so that the face is
   upright in it, through :func:`realtime.geometry.rotated_crop_from_box`; keypoints go back
   through the inverse (:meth:`realtime.framing.Roi.to_frame`). Pixels outside the frame
   are black, as in training's augmentation.
5. **Presence check** from the network itself: a new detection is only a face once the
   network is confident on its crop (``verify_frames`` unconfident frames reject it); a
   verified face is dropped after ``absent_frames`` frames the network calls absent.
   :attr:`RoiTracker.reason` says why there is nothing to draw.

The face is also lost after ``max_missed`` failed detections in a row without any
confident keypoint follow in between (or ``max_missed_following`` with, 0 = never: the
network's presence check decides); :meth:`RoiTracker.update` then returns None and the
pipeline hides the accessory. While tracking, a full-frame detection is accepted only at
0.5x to 2x the tracked face's size.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from realtime.framing import FaceBox, Roi, RoiConfig, roi_from_face
from realtime.geometry import view_from_frame
from realtime.live.detectors import (ACQUIRE_VIEWS, FaceDetector, PyramidDetector, detect_acquire_view,
                                     detect_in_view, detect_rolled_near, make_detector)
from realtime.live.smoothing import OneEuroFilter, quad_size

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Tracker
# --------------------------------------------------------------------------------------

#: Below this |roll| (degrees) the window re-detection runs on the frame itself; above it on
#: a window de-rotated by the followed roll.
ROLL_VIEW_DEG = 5.0
#: Frames a detection the network refused stays refused (a full-frame detection overlapping
#: it is ignored meanwhile, so the search moves on to other candidates and views).
REJECT_FRAMES = 60
#: Side (face sizes) of the view the drift guard searches while the network confirms the face
#: (the detector's own window is 3 face sizes): a confirmed face has drifted by less than the
#: re-detection dead-band, and the cascade's cost grows with the area searched.
GUARD_SPAN = 2.0
#: Longest frame interval (s) the crop lead extrapolates over (a stall is not predicted across).
MAX_LEAD_DT_S = 0.2

#: Why the tracker has no (drawable) face, for the HUD and the keypoint log.
REASON_SEARCHING = "no face"
REASON_CHECKING = "face found, waiting for the network to confirm it"
REASON_REJECTED = "detection rejected: the network sees no face there"
REASON_LEFT = "face left: the network no longer sees it"


def _wrap_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def _lead_gate(speed: float, knee: float) -> float:
    """Share of the crop lead applied at ``speed`` (face sizes or log-size per second): ~1 well
    above ``knee``, ~0 well below it, so the noise in the speed estimate of a still face is not
    extrapolated (with a network anchored to its crop, that noise would gain momentum in the
    crop-keypoint loop)."""
    return 1.0 if knee <= 0 else speed * speed / (speed * speed + knee * knee)


def _rot(deg: float) -> np.ndarray:
    th = math.radians(deg)
    c, s = math.cos(th), math.sin(th)
    return np.array([[c, -s], [s, c]])


class RoiTracker:
    """Detect, follow and smooth the face; build the (roll-aware) network crop each frame.

    Args:
        cfg: the category's :class:`RoiConfig`.
        input_size: network input size.
        detector: a :class:`~realtime.live.detectors.FaceDetector`; default: the registry's
            default detector built from ``cfg``.
    """

    def __init__(self, cfg: RoiConfig, input_size: int, detector: FaceDetector | None = None) -> None:
        self.cfg, self.input_size = cfg, input_size
        self.detector = detector or make_detector(None, cfg)
        self._centre = OneEuroFilter(cfg.min_cutoff, cfg.beta)
        self._log_side = OneEuroFilter(cfg.min_cutoff, cfg.beta)
        self.reset()

    def reset(self) -> None:
        """Forget the person (and the refused detections): the next :meth:`update` detects
        from scratch."""
        self._rejected: list[list] = []  # [FaceBox, frames left]
        self._view = 0  # next of ACQUIRE_VIEWS
        self._drop(REASON_SEARCHING)

    def _drop(self, reason: str) -> None:
        """Forget the followed face; ``reason`` says why (:attr:`reason`)."""
        self._face: np.ndarray | None = None  # raw (cx, cy, side): the last detection, moved by follows
        self._roll = 0.0  # degrees, + = clockwise on screen: the crop turns with the face
        self._anchor: tuple[np.ndarray, float] | None = None  # quad offset (face axes) / face, quad size / face
        self._since_detect = 0
        self._missed = 0
        self._followed = False
        self._verified = False  # the network has confirmed this face at least once
        self._unconfirmed = 0  # frames since the detection without a confident network output
        self._absent = 0  # consecutive frames the network said "no face here"
        self._centre.reset()
        self._log_side.reset()
        self._t_prev: float | None = None  # the previous update's timestamp (crop lead)
        self.last: Roi | None = None
        self.detections = 0
        self.reason = reason

    def set_config(self, cfg: RoiConfig, input_size: int) -> None:
        """Switch category framing, keeping the face (the quad relation is re-learned)."""
        self.cfg, self.input_size = cfg, input_size
        self._anchor = None

    @property
    def lost(self) -> bool:
        """No face is being tracked."""
        return self._face is None

    @property
    def verified(self) -> bool:
        """The network has confirmed the followed face (drawing is allowed)."""
        return self._verified

    @property
    def showing(self) -> bool:
        """Drawing is allowed on this frame: the face is verified and the network did not call
        the last frame absent (the accessory goes on the first such frame; the face itself is
        only dropped after ``absent_frames`` of them)."""
        return self._verified and self._absent == 0

    @property
    def roll_deg(self) -> float:
        """The followed face's roll (degrees, + = clockwise on screen) the crop turns by."""
        return self._roll

    @property
    def _confirmed(self) -> bool:
        """The network has verified the face, was confident on the last frame, and its keypoints
        followed the face since the last detection."""
        return self._verified and self._followed and self._unconfirmed == 0

    def _plausible(self, face: FaceBox) -> bool:
        """A full-frame detection while tracking must be about the tracked face's size, and
        none may repeat a detection the network refused."""
        if any(math.hypot(face.cx - r.cx, face.cy - r.cy) < 0.5 * r.side and 0.5 <= face.side / r.side <= 2.0
               for r, _ in self._rejected):
            return False
        return self._face is None or 0.5 <= face.side / self._face[2] <= 2.0

    def _search(self, frame_bgr: np.ndarray) -> tuple[list[FaceBox], bool]:
        """One detection attempt: (faces, whether it was a window search)."""
        det = self.detector
        if self._face is not None and self._confirmed and isinstance(det, PyramidDetector):
            # drift guard: a small view around the followed face (a pyramid search costs by area)
            near = FaceBox(*self._face)
            scale = min(1.0, det.window_face_px / (near.side / det.BOX_SCALE))
            side = max(8, int(round(GUARD_SPAN * near.side * scale)))
            mat = view_from_frame((near.cx, near.cy), scale, (side, side), self._roll)
            return detect_in_view(det, frame_bgr, mat, (side, side), self._roll, near=near), True
        if self._face is not None and self._missed == 0:
            near = FaceBox(*self._face)
            if abs(self._roll) > ROLL_VIEW_DEG:
                return detect_rolled_near(det, frame_bgr, near, self._roll), True
            return det.detect(frame_bgr, near=near), True
        if self._face is not None:  # tracking after a miss: whole frame, de-rotated by the followed roll
            if abs(self._roll) > ROLL_VIEW_DEG:
                return detect_acquire_view(det, frame_bgr, self._roll, 0.0), False
            return det.detect(frame_bgr), False
        faces = [f for f in det.detect(frame_bgr) if self._plausible(f)]
        if not faces and self.cfg.acquire_views:  # nobody found upright: one extra view, in turn
            roll, pad = ACQUIRE_VIEWS[self._view % len(ACQUIRE_VIEWS)]
            self._view += 1
            faces = detect_acquire_view(det, frame_bgr, roll, pad)
        return faces, False

    def _detect(self, frame_bgr: np.ndarray) -> None:
        faces, windowed = self._search(frame_bgr)
        faces = [f for f in faces if self._plausible(f)]
        self._since_detect = 0
        self.detections += 1
        if not faces:
            self._missed += 1
            limit = self.cfg.max_missed_following if self._followed else self.cfg.max_missed
            if self._face is not None and limit and self._missed >= limit:
                log.info("face lost (%d detections missed)", self._missed)
                self._drop(REASON_SEARCHING)
            self._followed = False
            return
        best = faces[0]
        if self._face is not None and not windowed:  # full-frame search: prefer the one we had
            best = min(faces, key=lambda f: math.hypot(f.cx - self._face[0], f.cy - self._face[1]))
        new = best.as_array()
        if self._confirms(new):
            self._missed, self._followed = 0, False
            return
        if self._face is None or math.hypot(*(new[:2] - self._face[:2])) > self._face[2]:
            self._centre.reset()  # a new person or a big jump: do not glide there
            self._log_side.reset()
            if self._face is None:
                log.info("face found at (%.0f, %.0f), size %.0f px, roll %.0f deg", new[0], new[1], new[2],
                         best.roll_deg)
                self._roll = best.roll_deg
                self._verified, self._unconfirmed, self._absent = False, 0, 0
                self.reason = REASON_CHECKING
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
        for r in self._rejected:
            r[1] -= 1
        self._rejected = [r for r in self._rejected if r[1] > 0]
        if self._face is None:
            every = self.cfg.lost_detect_every
        elif self._confirmed:  # the network follows the face: detection only guards against drift
            every = self.cfg.confirmed_detect_every
        else:
            every = self.cfg.lost_detect_every if self._missed else self.cfg.detect_every
        if self._face is None or self._since_detect >= every:
            self._detect(frame_bgr)
        if self._face is None:
            self.last = None
            return None
        log_side = float(self._log_side(math.log(self._face[2]), t))
        centre = self._centre(self._face[:2], t, scale=math.exp(log_side))
        dt, self._t_prev = (t - self._t_prev if self._t_prev is not None else 0.0), t
        if self.cfg.crop_lead > 0 and 0.0 < dt <= MAX_LEAD_DT_S:  # where the face will be (crop_lead)
            lead = self.cfg.crop_lead * dt
            v_log, v_xy = float(self._log_side.speed), self._centre.speed
            log_side += lead * _lead_gate(v_log, self.cfg.crop_lead_speed) * v_log
            centre = centre + lead * _lead_gate(math.hypot(*v_xy) / math.exp(log_side), self.cfg.crop_lead_speed) * v_xy
        side = math.exp(log_side)
        cx, cy = centre
        self.last = roi_from_face(FaceBox(float(cx), float(cy), side), self.cfg, self.input_size, self._roll)
        return self.last

    def observe(self, pts_xy: np.ndarray | None, confident: bool, roll_deg: float | None = None,
                absent: bool | None = None, confidence: float | None = None) -> bool:
        """Feed back the keypoints (frame pixels) predicted on the crop :meth:`update` returned.

        Presence check: a new detection counts as a face only once the network is confident
        on it (:attr:`verified`; with ``confidence`` given, at ``verify_confidence`` or more);
        ``verify_frames`` frames in a row without that reject it
        (remembered for :data:`REJECT_FRAMES` frames). A verified face is dropped after
        ``absent_frames`` frames in a row that the network calls ``absent`` (default: not confident
        at ``verify_confidence``, the level that verified it): the person left.

        Roll: a confident frame's ``roll_deg`` (the quad's roll relative to the accessory's
        upright quad; while a new detection is checked, any frame's) turns the next crops, so the face stays upright in them; the crop
        turns only by what exceeds ``roll_deadband_deg`` (a backlash, so the wobble of the
        prediction is not fed back).

        The quad's offset and size relative to the face are learned on the first confident
        quad after a detection, but only once the smoothed crop has settled on that
        detection: a network that is partly anchored to its crop (untrained, or unsure)
        would otherwise feed the smoothing lag back into the face position and make the
        crop drift. The offset is kept in the face's own (rolled) axes.

        Returns:
            False when this observation dropped the face (rejected or left), else True.
        """
        roi = self.last
        if self._face is None or roi is None:
            return True
        # Present = as sure as the verification: the level that verifies a new detection also keeps a
        # verified face. At the show level alone (0.4) the picture left where FMD 326's face was (the
        # steadiness script's space shuttle) scored 0.42-0.49 on the first 4 frames after the face
        # left, and the accessory was drawn on them (6.7 % of the away frames); on the same run the
        # face itself never scored under 0.91, and 98 % of 55 held-out faces reach 0.6 at the live
        # crop against 3 % of random no-face crops (benchmarks/results/presence_*).
        verifies = confident and (confidence is None or confidence >= self.cfg.verify_confidence)
        absent = (not verifies) if absent is None else absent
        if verifies and not absent:
            self._verified, self._unconfirmed, self._absent = True, 0, 0
            self.reason = ""
        else:
            self._unconfirmed += 1
            self._absent = self._absent + 1 if absent else 0
            if not self._verified and self._unconfirmed >= self.cfg.verify_frames:
                log.info("detection at (%.0f, %.0f) rejected: the network is not confident there",
                         self._face[0], self._face[1])
                self._rejected.append([FaceBox(*self._face), REJECT_FRAMES])
                self._drop(REASON_REJECTED)
                return False
            if self._verified and self._absent >= self.cfg.absent_frames:
                log.info("face left: the network no longer sees it")
                self._drop(REASON_LEFT)
                return False
        # Roll: from a confident frame, or from any frame while a new detection is checked: a face found
        # in a rotated detector view carries that view's roll (15-degree steps), and on FMD 326's cut to
        # a 30-degree tilt the 15-degree view's crop kept the network at 0.37-0.40, under the verify
        # level, until the detection was refused; turned by the network's own roll, the next crop is
        # upright.
        if (confident and not self._absent or not self._verified) and roll_deg is not None \
                and np.isfinite(roll_deg) and self.cfg.roll_aware:
            diff = _wrap_deg(float(roll_deg) - self._roll)  # backlash: wobbles inside the dead-band stay out
            band = self.cfg.roll_deadband_deg
            if abs(diff) > band:
                self._roll = _wrap_deg(self._roll + diff - math.copysign(band, diff))
        if pts_xy is None or not confident or self._absent:  # no follow onto whatever is left in view
            return True
        pts = np.asarray(pts_xy, dtype=np.float64)
        if not np.all(np.isfinite(pts)):
            return True
        qc, qs = pts.mean(axis=0), quad_size(pts)
        if qs < 1.0:
            return True
        face = self._face
        rot = _rot(roi.roll_deg)
        if self._anchor is None:
            settled = math.hypot(roi.face.cx - face[0], roi.face.cy - face[1]) <= self.cfg.settle_tol * face[2] \
                and abs(math.log(roi.face.side / face[2])) <= self.cfg.settle_tol
            if settled:
                self._anchor = (rot.T @ (qc - face[:2]) / face[2], qs / face[2])
            return True
        offset, ratio = self._anchor
        side = qs / ratio
        centre = qc - rot @ offset * side
        if math.hypot(*(centre - face[:2])) <= self.cfg.max_follow_step * face[2] \
                and abs(math.log(side / face[2])) <= math.log(self.cfg.max_follow_scale):
            self._face = np.array([centre[0], centre[1], side])
            self._followed = True
        return True
