"""Crop framing: where the square network crop sits relative to the face.

The network sees a square crop at its input size (224 for glasses and hats, 448 for ties),
framed like its training images; its keypoints are mapped back to full-resolution frame
pixels with the inverse of the crop transform (:class:`Roi`). The live tracker
(:mod:`realtime.live.tracking`) and training's real-photo pipeline use the same framing,
so it lives in the core.

The crop is the square box = face box shifted by (center_dx, center_dy) face sizes (in the
face's own axes) and scaled to ``side`` face sizes (:class:`RoiConfig`), rotated with the
followed face's roll so the face is upright in it, through
:func:`realtime.geometry.rotated_crop_from_box` / :func:`~realtime.geometry.warp_crop`;
pixels outside the frame are black, as in training's augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from realtime.config import check_category
from realtime.geometry import rolled_offset, rotated_crop_from_box, warp_crop, warp_points


@dataclass(frozen=True)
class RoiConfig:
    """Crop framing (relative to the detected face box) and tracking constants.

    The face box is the LBP cascade's square, side f, about eyebrows to chin and cheek to
    cheek. The crop is the square of side ``side * f`` centred at ``face centre +
    (center_dx, center_dy) * f`` (y down), chosen so the live crops are framed like the
    training images of ``training/synthetic.py`` (which imitates STRAT: head crops for
    glasses and hats, upper-body portraits for ties). That generator draws the face as an
    ellipse of half-width a and half-height b = 1.25..1.4 a; measured on the astronaut
    portrait, the cascade's box relates to it as 2a ~ 0.9 f (face 94 px wide, box 104 px)
    with the ellipse centre 0.08 f above the box centre. Hence, with S the crop side:

    * glasses: 2a = 0.4..0.6 S, head centre at the image centre (+-0.1 S)
      -> side = 0.9 f / 0.49 = 1.85 f (1.5..2.25 f), centre 0.08 f above the box centre;
    * hat: 2a = 0.3..0.46 S, head centre at 0.52..0.68 S from the top (room for the crown)
      -> side = 0.9 f / 0.375 = 2.4 f, crop centre 0.1 S = 0.24 f above the head centre,
      i.e. 0.32 f above the box centre;
    * tie: head half-width a = 0.36..0.44 of the shoulder half-width 0.2..0.34 S (2a ~ 0.22
      S), head centre ~0.2 S from the top (shoulders at 0.3..0.45 S, neck and chin above)
      -> side = 0.9 f / 0.215 = 4.2 f, crop centre 0.3 S = 1.26 f below the head centre,
      i.e. 1.2 f below the box centre: head at the top, torso down to the waist.

    Keep these in step with ``training/synthetic.py`` (and with the framing of any real
    training data) when either changes.

    Attributes:
        side: crop side in face sizes.
        center_dx: horizontal crop-centre offset in face sizes.
        center_dy: vertical crop-centre offset in face sizes (positive = down).
        detect_every: frames between re-detections while tracking (a window search around
            the face, about 5-12 ms on one CPU core whatever the resolution, so ~2 ms a frame).
        confirmed_detect_every: frames between re-detections while the network confirms the
            followed face (verified, and its keypoints followed it since the last detection):
            then a detection only guards against drift (most land in the dead-band), and it is
            the tracker's main cost (the cascade's window search: 5-40 ms unloaded, up to 200 ms
            on the loaded 2-core machine of benchmarks/results). A missed one then
            stays a window search at this rate (the face may be rolled beyond what the
            detector sees; the presence check decides whether it left).
        lost_detect_every: frames between (full-frame, about 40 ms) detection attempts after
            a miss or while nobody is found.
        max_missed: failed detections in a row, with no confident keypoint follow in
            between, before the face counts as lost.
        max_missed_following: failed detections in a row before "lost" even while the
            keypoints still follow; 0 = never (the network's presence check decides, so a
            rolled face the detector cannot see keeps its crop).
        verify_frames: frames in a row without a confident network output that reject a
            new detection (the network's presence check; nothing is drawn before it passes).
        verify_confidence: the network confidence that verifies a new detection (higher than
            the gate's show level: the shipped glasses model gives 0.72-0.92 on real faces and
            0.31-0.40, now and then more, on the space shuttle picture of the steadiness script).
        absent_frames: frames in a row without a confident network output that drop a
            confirmed face (the person left): the accessory is gone from the first of them, the
            face by the last; after the first, a frame counts as present again only at
            ``verify_confidence``.
        acquire_views: while nobody is followed, search one extra rotated / padded view
            per detection attempt (:data:`realtime.live.detectors.ACQUIRE_VIEWS`).
        roll_aware: turn the crop with the followed face's roll.
        roll_deadband_deg: the crop's roll moves only when the followed roll is more than
            this many degrees away from it, and then by the excess (a backlash): the network's
            roll wobbles by about a degree while the face moves (1.2 degrees median on the
            steadiness script's slow pan, benchmarks/results/stability_*), and the dead-band
            keeps that wobble out of the crop. 0 turns the crop with every change.
        redetect_deadband: while the keypoints follow the face, a re-detection closer than
            this (face sizes for the centre, natural log for the size) to the followed face
            confirms it and changes nothing; a larger difference is applied (drift
            correction). 0 applies every re-detection.
        settle_tol: the quad/face relation is learned once the smoothed face is within this
            many face sizes (and log-size) of the detection.
        max_follow_step: largest face move per keypoint update, in face sizes.
        max_follow_scale: largest face scale change per keypoint update (ratio).
        min_cutoff: One Euro cutoff (Hz) of the face box at rest.
        beta: One Euro speed coefficient of the face box (speed in face sizes / s).
        crop_lead: the crop is placed where the face box's velocity (the One Euro filter's
            speed estimate) puts the face this many frame intervals ahead of the smoothed box:
            the box comes from the previous frame's keypoints and the filter trails it, and a
            network partly anchored to its crop turns that trailing crop into keypoint lag
            (benchmarks/results/stability_*: on the slow pan of held-out Helen 1010057391_1 the raw
            keypoints trailed by 0.76 frames with the crop on the smoothed box, 0.20 with a lead of
            1, 0.26 with the box unsmoothed). 1 = one frame: the feedback delay. 0 = the smoothed
            box itself.
        crop_lead_speed: the lead fades in around this speed (face sizes / s for the centre,
            log-size / s for the size; half of it at this speed, 90 % at 3x): a still face's
            speed estimate is noise, and extrapolating it gave a network anchored to its crop
            a wandering crop. The steadiness script's slow pan is ~0.7 face sizes / s.
        detect_width: full-frame detection runs on the frame resized to this width (px).
        window_face_px: in the search window, the expected face is resized to this size.
        min_neighbors: detections a face needs among overlapping windows (cascade vote;
            scikit-image's default 4; 3 let false positives through on the demo).
    """

    side: float
    center_dx: float = 0.0
    center_dy: float = 0.0
    detect_every: int = 5
    confirmed_detect_every: int = 30
    lost_detect_every: int = 5
    max_missed: int = 3
    max_missed_following: int = 0
    verify_frames: int = 3
    verify_confidence: float = 0.6
    absent_frames: int = 3
    acquire_views: bool = True
    roll_aware: bool = True
    roll_deadband_deg: float = 1.5
    redetect_deadband: float = 0.3
    settle_tol: float = 0.05
    max_follow_step: float = 0.25
    max_follow_scale: float = 1.25
    min_cutoff: float = 0.7
    beta: float = 3.0
    crop_lead: float = 1.0
    crop_lead_speed: float = 0.2
    detect_width: int = 320
    window_face_px: int = 48
    min_neighbors: int = 4

    def __post_init__(self) -> None:
        if self.side <= 0:
            raise ValueError(f"roi.side must be > 0, got {self.side}")
        if min(self.detect_every, self.confirmed_detect_every, self.lost_detect_every, self.max_missed) < 1:
            raise ValueError("roi.detect_every, roi.confirmed_detect_every, roi.lost_detect_every and "
                             "roi.max_missed must be >= 1")
        if self.verify_frames < 1 or self.absent_frames < 1 or self.max_missed_following < 0:
            raise ValueError("roi.verify_frames and roi.absent_frames must be >= 1, "
                             "roi.max_missed_following >= 0")
        if self.roll_deadband_deg < 0:
            raise ValueError(f"roi.roll_deadband_deg must be >= 0, got {self.roll_deadband_deg}")
        if self.crop_lead < 0 or self.crop_lead_speed < 0:
            raise ValueError(f"roi.crop_lead and roi.crop_lead_speed must be >= 0, got {self.crop_lead}, "
                             f"{self.crop_lead_speed}")
        if self.redetect_deadband < 0:
            raise ValueError(f"roi.redetect_deadband must be >= 0, got {self.redetect_deadband}")


#: One RoiConfig per category (see :class:`RoiConfig` for the reasoning behind the numbers).
ROI_CONFIGS: dict[str, RoiConfig] = {
    "glasses": RoiConfig(side=1.85, center_dy=-0.08),
    "hat": RoiConfig(side=2.4, center_dy=-0.32),
    # The tie model's confidence (the weakest corner it placed) is no presence signal of its own:
    # at the live crop on cascade detections of 55 held-out TEST photos it is a median 0.42 (tight
    # photos leave the blade in black padding), and only 2 % reach 0.6, so the glasses' verify
    # level never let a tie be drawn (tryon demo --category tie: 0.51-0.55 on the astronaut). At
    # 0.4, its gate's show level, 53 % of those photos pass against 5.6 % of 126 random crops of
    # no-face pictures (glasses at 0.6: 98 % / 3.2 %; hat at 0.6: 95 % / 0 %): for ties the
    # detector carries the presence check (the cascade: 0 false detections per 100 no-face images).
    "tie": RoiConfig(side=4.2, center_dy=1.2, verify_confidence=0.4),
}


def roi_config(category: str, **overrides: float) -> RoiConfig:
    """The crop/tracking constants of ``category``, optionally with fields replaced."""
    return replace(ROI_CONFIGS[check_category(category)], **overrides)


@dataclass(frozen=True)
class FaceBox:
    """A square face box in frame pixels: centre, side, the detector's score and the roll.

    ``score`` is the detector's own confidence (its scale is the detector's: the cascade
    has none and says 1.0; dlib's HOG gives an SVM margin). ``roll_deg`` is the face's
    in-plane rotation when it was found in a rotated view (degrees, positive = eye line
    clockwise on screen, as the teacher's ``roll_deg``); the box is square in that view.
    """

    cx: float
    cy: float
    side: float
    score: float = 1.0
    roll_deg: float = 0.0

    def as_array(self) -> np.ndarray:
        return np.array([self.cx, self.cy, self.side], dtype=np.float64)


@dataclass(frozen=True)
class Roi:
    """The square network crop of one frame.

    Attributes:
        face: the (smoothed) face box it was built from.
        center_xy: crop centre in frame pixels.
        side: crop side in frame pixels.
        size: network input size (crop side in network pixels).
        crop_from_frame: 3x3 affine, frame pixels -> crop pixels.
        roll_deg: the crop's rotation (the followed face's roll, positive = clockwise on
            screen): the face is upright in the crop.
    """

    face: FaceBox
    center_xy: tuple[float, float]
    side: float
    size: int
    crop_from_frame: np.ndarray = field(repr=False)
    roll_deg: float = 0.0

    @property
    def frame_from_crop(self) -> np.ndarray:
        """3x3 affine, crop pixels -> frame pixels."""
        return np.linalg.inv(self.crop_from_frame)

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """Cut the (size, size) crop out of ``frame`` (bilinear, black outside)."""
        return warp_crop(frame, self.crop_from_frame, self.size)

    def to_frame(self, pts_crop_xy: np.ndarray) -> np.ndarray:
        """Crop (network) pixels -> full-resolution frame pixels."""
        return warp_points(self.frame_from_crop, pts_crop_xy)

    def to_crop(self, pts_frame_xy: np.ndarray) -> np.ndarray:
        """Frame pixels -> crop (network) pixels."""
        return warp_points(self.crop_from_frame, pts_frame_xy)


def roi_from_face(face: FaceBox, cfg: RoiConfig, size: int, roll_deg: float = 0.0) -> Roi:
    """Build the crop of ``cfg`` around a face box, for a network of input ``size``.

    With ``roll_deg`` the crop is rotated with the face (positive = clockwise on screen):
    the framing offset turns with it and the face is upright in the crop
    (:func:`realtime.geometry.rotated_crop_from_box`).
    """
    (cx, cy), side = rolled_offset((face.cx, face.cy), face.side, (cfg.center_dx, cfg.center_dy), roll_deg), \
        cfg.side * face.side
    return Roi(face, (cx, cy), side, size, rotated_crop_from_box((cx, cy), side, size, roll_deg), float(roll_deg))
