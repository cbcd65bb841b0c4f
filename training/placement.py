"""Placement rules: where an accessory goes on a real photo, from the landmark teacher.

Pure functions of a :class:`training.teacher.cache.TeacherRecord` (MediaPipe face mesh, 478
points with a relative depth; pose, 33 points) and a :class:`realtime.accessories.Accessory`.
They return the accessory's ``final_vertex``: where the 4 corners of its tight alpha box
(``init_vertex``, TL TR BR BL) go in the photo. :mod:`training.pseudo_strat` turns these into
STRAT tuples; ``docs/pseudo_strat.md`` shows the rules in a figure.

Frames. The mesh gives x, y in photo pixels and z (depth, away from the camera) on the same
pixel scale, i.e. a weak-perspective 3-D face. The HEAD FRAME is the teacher's
(:func:`training.teacher.mediapipe_teacher.head_pose_from_landmarks`): x = subject's right eye
-> left eye (image right for a frontal face), y = forehead (10) -> chin (152) made orthogonal
to x, z = x cross y (into the head). A planar accessory is a rectangle in a frame attached to
the head, projected to the photo with a pinhole of focal distance
``CAMERA_DISTANCE_FACE_WIDTHS`` face widths about the accessory's anchor (so the anchor lands
exactly where the mesh puts it, and the far side of a turned head is shorter).

Rules (every constant below is named, with the reason for its value):

* **glasses**: a rectangle in the head's x-y plane, ``GLASSES_FORWARD_PER_EYE_SPAN`` eye spans
  (outer eye corners) in front of the iris midpoint; the accessory's two lens centres (:func:`lens_centres_xy`, measured from
  its alpha) are centred on the two iris centres' midpoint; its width is
  ``GLASSES_WIDTH_PER_TEMPLE_WIDTH`` x the 3-D distance between the mesh temples 127 and 356.
* **hats**: a rectangle standing on its bottom edge, the edge's midpoint ``bottom_up`` face
  heights above landmark 10 (forehead top = hairline proxy) along the head's up axis, moved
  ``HAT_DEPTH_PER_FACE_WIDTH`` face widths toward the skull centre (matters when the head is
  turned); width = a per-type factor x the face width (mesh 234-454), :data:`HAT_FITS`. It
  follows the head's roll fully but only ``HAT_YAW_GAIN`` of its yaw (a hat is round: turning
  the head narrows it much less than a flat plane) and none of its pitch (its silhouette stays
  upright).
* **neckties**: in the body frame of the pose shoulders (11, 12): the knot's top edge
  ``TIE_KNOT_FRAC`` of the way from the chin (152) down to the shoulder line, between the
  shoulders (``TIE_CHIN_X_WEIGHT`` pulls it toward the chin), the blade along the shoulder
  line's normal, ``NECKTIE_LENGTH_PER_SHOULDER_WIDTH`` x the shoulder width long.
* **bow ties**: centred ``BOWTIE_CENTRE_FRAC`` of the way from the chin to the shoulder line,
  ``BOWTIE_WIDTH_PER_FACE_WIDTH`` x the face width wide, rotated with the shoulder line.

Ties need both shoulders with visibility >= ``TIE_MIN_SHOULDER_VISIBILITY``, a plausible
shoulder width and the chin above the shoulders; otherwise :class:`PlacementRejected` with a
reason code (:data:`REJECT_REASONS`). Background crops (:func:`background_box`): the live
app's square network crop (``realtime.framing``: a head crop for glasses and hats, an upper-body
portrait for ties) around the face box estimated from the mesh, moved or grown so that it
holds the accessory; where it leaves the photo the caller pads (and rejects when more than
``MAX_PAD_FRACTION`` of the crop would be padding).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime.accessories import ALPHA_BBOX_THRESHOLD, Accessory
from realtime.framing import FaceBox, roi_config, roi_from_face
from realtime.procedural import HAT_STYLES
from training.teacher.cache import (FACE_BROW_L_TOP, FACE_BROW_R_TOP, FACE_CHEEK_L, FACE_CHEEK_R, FACE_CHIN,
                                    FACE_EYE_L_OUTER, FACE_EYE_R_OUTER, FACE_FOREHEAD_TOP, FACE_IRIS_L_CENTER,
                                    FACE_IRIS_R_CENTER, FACE_TEMPLE_L, FACE_TEMPLE_R, POSE_SHOULDER_L, POSE_SHOULDER_R,
                                    TeacherRecord)
from training.teacher.mediapipe_teacher import head_pose_from_landmarks, rotation_from_euler

PLACEMENT_RULES_VERSION = "v1"

#: Reject reasons raised by the rules (the teacher's own reasons are in
#: ``training.teacher.cache.REJECT_REASONS``).
#: Reasons that hold for every accessory of the photo (the builder does not retry another one).
PHOTO_LEVEL_REASONS = frozenset({"no_face", "tie_shoulders_missing", "tie_shoulders_implausible",
                                 "tie_chin_below_shoulders"})
REJECT_REASONS = (
    "no_face",  # the record has no face mesh
    "tie_shoulders_missing",  # no pose, or a shoulder's visibility below TIE_MIN_SHOULDER_VISIBILITY
    "tie_shoulders_implausible",  # shoulder width / face width outside TIE_SHOULDER_RATIO_RANGE
    "tie_chin_below_shoulders",  # head bent down onto the chest: no neck to put a knot on
    "tie_chest_outside",  # more than TIE_MAX_OUTSIDE_FRACTION of the tie lies outside the photo
    "extreme_padding",  # the background crop would be more than MAX_PAD_FRACTION padding
    "degenerate_quad",  # the projected quad is flipped or too small
)

# ---------------------------------------------------------------------------------------
# Projection
# ---------------------------------------------------------------------------------------
#: Pinhole distance in face widths. A portrait at ~0.7 m of a ~14 cm wide face (bizygomatic
#: breadth, anthropometric mean ~13-14 cm) is ~5 face widths away; only the amount of
#: foreshortening of turned accessories depends on it (the anchor is placed by the mesh).
CAMERA_DISTANCE_FACE_WIDTHS = 5.0

# ---------------------------------------------------------------------------------------
# Glasses
# ---------------------------------------------------------------------------------------
#: Frame width / 3-D temple width (mesh 127-356, the face oval at eye height). Frames are sized
#: to the face: the front is about as wide as the temples, a little wider so the hinges clear
#: the head (a 135-140 mm frame on a ~130 mm temple width). Checked on the contact sheets.
GLASSES_WIDTH_PER_TEMPLE_WIDTH = 1.05
#: Distance of the lens plane in front of the irises, in eye spans (outer corners 33-263,
#: ~9 cm): the vertex distance of spectacles is ~12 mm (ophthalmic convention), 12/90 = 0.13.
GLASSES_FORWARD_PER_EYE_SPAN = 0.13
#: Default lens centres as fractions of the accessory box (x of each lens, y), used when they
#: cannot be measured from the alpha: procedural and emoji glasses have them at ~25 % / 75 %
#: of the width and ~45-50 % of the height.
LENS_CENTRE_FRAC_X = (0.25, 0.75)
LENS_CENTRE_FRAC_Y = 0.47
#: A column belongs to a lens when its alpha spans at least this share of the box height
#: (temple stubs and the bridge are thin, lenses and rims are tall).
LENS_COLUMN_MIN_SPAN = 0.5

# ---------------------------------------------------------------------------------------
# Hats
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HatFit:
    """Per hat type: box width in face widths (mesh 234-454, 3-D) and the box bottom's height
    above landmark 10 in face heights (10-152, 3-D; negative = below, on the forehead)."""

    width: float
    bottom_up: float


#: Per-type fit, chosen on the contact sheets so that the band / brim sits on the upper
#: forehead and the crown covers the skull (head breadth ~1.1 face widths, plus the hat's own
#: brim: wide for sun hats, none for beanies).
HAT_FITS: dict[str, HatFit] = {
    "cap": HatFit(width=1.25, bottom_up=-0.20),
    "fedora": HatFit(width=1.70, bottom_up=-0.08),
    "beanie": HatFit(width=1.20, bottom_up=-0.18),
    "top_hat": HatFit(width=1.45, bottom_up=-0.06),
    "sun_hat": HatFit(width=2.00, bottom_up=-0.18),
    "bucket": HatFit(width=1.50, bottom_up=-0.16),
}
#: Fits of particular images (by file stem), where the drawing's framing differs from the
#: procedural style of its type: the shared emoji hats are seen from slightly above, so the
#: brim's front edge (the box bottom) hangs far below the crown's base, and their crowns are
#: wider relative to the brim. Chosen on the contact sheets.
HAT_FIT_OVERRIDES: dict[str, HatFit] = {
    "hat_cap_emoji": HatFit(width=1.15, bottom_up=-0.24),
    "hat_sunhat_emoji": HatFit(width=1.60, bottom_up=-0.22),
    "hat_tophat_emoji": HatFit(width=1.35, bottom_up=-0.12),
}
#: Fit for a hat whose type cannot be told from its name.
DEFAULT_HAT_TYPE = "fedora"
#: Name keywords -> hat type, tried in order (for user / emoji hats, e.g. ``hat_tophat_emoji``).
HAT_NAME_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("sunhat", "sun_hat"), ("sun_hat", "sun_hat"), ("tophat", "top_hat"), ("top_hat", "top_hat"),
    ("beanie", "beanie"), ("bucket", "bucket"), ("fedora", "fedora"), ("cap", "cap"),
)
#: Skull centre behind landmark 10, in face widths (head depth ~1.3 face widths; the forehead
#: point is ~0.45 of a face width in front of the vertical axis through the skull's centre).
HAT_DEPTH_PER_FACE_WIDTH = 0.45
#: Share of the head's yaw the hat plane turns with (a round hat barely narrows).
HAT_YAW_GAIN = 0.5

# ---------------------------------------------------------------------------------------
# Ties
# ---------------------------------------------------------------------------------------
#: Minimum MediaPipe pose visibility of both shoulders (FMD crops often hallucinate them).
TIE_MIN_SHOULDER_VISIBILITY = 0.5
#: Accepted shoulder width (pose 11-12, image) / face width (234-454, image) range. Helen's
#: median is 1.66 (p10-p90 ~1.3-2.1); below 1.1 the shoulders are guesses inside a tight crop.
TIE_SHOULDER_RATIO_RANGE = (1.1, 4.0)
#: Knot top: this share of the way from the chin down to the shoulder line (the collar closes
#: at the base of the neck, about level with the shoulder joints' top).
TIE_KNOT_FRAC = 0.55
#: Horizontal position of the knot: shoulder midpoint moved this share toward the chin.
TIE_CHIN_X_WEIGHT = 0.3
#: Visible necktie (knot top to tip) / shoulder width. A real tie ends at the belt, ~1.3-1.5
#: shoulder widths below the collar (biacromial ~40 cm, collar to belt ~55 cm), but it is
#: ~0.16 as wide as long while the procedural ties are ~0.3: scaled by their length they look
#: twice too wide. 1.15 is the compromise chosen on the contact sheets (blade ~0.35 shoulder
#: widths, tip at the lower chest to belt).
NECKTIE_LENGTH_PER_SHOULDER_WIDTH = 1.15
#: Bow tie centre: this share of the way from the chin to the shoulder line (at the collar).
BOWTIE_CENTRE_FRAC = 0.7
#: Bow tie width / face width (a bow tie is ~11-12 cm, a face ~14 cm).
BOWTIE_WIDTH_PER_FACE_WIDTH = 0.8
#: Largest share of the necktie's height allowed outside the photo (it is padded below). Helen
#: and FMD photos are head-and-shoulders: a necktie's median 73 % (Helen) / 95 % (FMD) lies
#: below the photo, so only the knot and the top of the blade are required on the person.
TIE_MAX_OUTSIDE_FRACTION = 0.8
#: Name keywords marking a bow tie (procedural ``bow_tie``, emoji ``bowtie_ribbon``).
BOWTIE_NAME_RE = re.compile(r"bow")

# ---------------------------------------------------------------------------------------
# Background crops
# ---------------------------------------------------------------------------------------
#: The background is framed like the live app's network crop (``realtime.framing.ROI_CONFIGS``:
#: side and centre offset in units of the face-detector box f). That box spans "about eyebrows
#: to chin and cheek to cheek" with the face 0.9 f wide (``realtime.framing.RoiConfig``), so from
#: the mesh: f = face width (234-454, image) / 0.9, centred between the brows and the chin.
FACE_BOX_PER_FACE_WIDTH = 1.0 / 0.9
#: Margin kept around the accessory quad inside the crop, as a share of the crop side (the
#: crop is moved, then grown, until the accessory fits: keypoints must lie in the image).
ACCESSORY_MARGIN_FRACTION = 0.03
#: Largest share of the crop area allowed outside the photo (padded); beyond: rejected. FMD
#: photos are tight face crops (the face fills ~92 % of the width), so a head-and-shoulders
#: framing of them is mostly padding; 0.8 keeps those whose face is fully inside.
MAX_PAD_FRACTION = 0.8


class PlacementRejected(ValueError):
    """A photo cannot be labelled for an accessory; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class FaceGeometry:
    """The head frame and face sizes of one face mesh (3-D, photo pixels).

    Attributes:
        pts: (478, 3) float64 mesh.
        R: (3, 3) head axes as columns (x: subject's right -> left eye, y: down the face,
            z: into the head), camera coordinates.
        yaw_deg, pitch_deg, roll_deg: The teacher's angles for ``R``.
        face_width: 3-D distance of mesh 234-454.
        face_height: 3-D distance of mesh 10-152.
        temple_width: 3-D distance of mesh 127-356.
        eye_span: 3-D distance of the outer eye corners 33-263.
    """

    pts: np.ndarray
    R: np.ndarray
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    face_width: float
    face_height: float
    temple_width: float
    eye_span: float

    @property
    def iris_mid(self) -> np.ndarray:
        """(3,) midpoint of the two iris centres."""
        return 0.5 * (self.pts[FACE_IRIS_R_CENTER] + self.pts[FACE_IRIS_L_CENTER])

    @property
    def camera_distance(self) -> float:
        """Pinhole distance in pixels (:data:`CAMERA_DISTANCE_FACE_WIDTHS` face widths)."""
        return CAMERA_DISTANCE_FACE_WIDTHS * self.face_width


def face_geometry(landmarks_xyz: np.ndarray) -> FaceGeometry:
    """Head frame and sizes from one face mesh.

    Args:
        landmarks_xyz: (478, 3) mesh in photo pixels (z on the x pixel scale).

    Raises:
        PlacementRejected: ``degenerate_quad`` for a collapsed mesh.
    """
    pts = np.asarray(landmarks_xyz, np.float64)
    if pts.shape != (478, 3):
        raise ValueError(f"face landmarks must be (478, 3), got {pts.shape}")
    dist = lambda a, b: float(np.linalg.norm(pts[a] - pts[b]))  # noqa: E731
    fw, fh = dist(FACE_CHEEK_R, FACE_CHEEK_L), dist(FACE_FOREHEAD_TOP, FACE_CHIN)
    if min(fw, fh) < 1.0:
        raise PlacementRejected("degenerate_quad", f"face mesh collapsed (width {fw:.2f}, height {fh:.2f} px)")
    pose = head_pose_from_landmarks(pts)
    return FaceGeometry(pts=pts, R=np.asarray(pose["R"], np.float64), yaw_deg=float(pose["yaw_deg"]),
                        pitch_deg=float(pose["pitch_deg"]), roll_deg=float(pose["roll_deg"]),
                        face_width=fw, face_height=fh, temple_width=dist(FACE_TEMPLE_R, FACE_TEMPLE_L),
                        eye_span=dist(FACE_EYE_R_OUTER, FACE_EYE_L_OUTER))


def record_face(rec: TeacherRecord) -> FaceGeometry:
    """:func:`face_geometry` of a record's largest face; ``no_face`` when there is none."""
    if rec.landmarks is None:
        raise PlacementRejected("no_face", str(rec.json_path))
    return face_geometry(rec.landmarks)


def project_points(pts_xyz: np.ndarray, anchor_xyz: np.ndarray, camera_distance: float) -> np.ndarray:
    """Pinhole projection about an anchor: the anchor stays put, points farther away shrink.

    ``p' = a + (p - a) * D / (D + p_z - a_z)`` on x, y (z away from the camera).

    Args:
        pts_xyz: (N, 3) points.
        anchor_xyz: (3,) the anchor (its x, y are kept).
        camera_distance: D in pixels (> 0).

    Returns:
        (N, 2) float64 image points.
    """
    p = np.asarray(pts_xyz, np.float64).reshape(-1, 3)
    a = np.asarray(anchor_xyz, np.float64)
    depth = camera_distance + (p[:, 2] - a[2])
    scale = camera_distance / np.maximum(depth, 0.05 * camera_distance)
    return a[:2] + (p[:, :2] - a[:2]) * scale[:, None]


@dataclass
class Placement:
    """Where an accessory goes on a photo.

    Attributes:
        category: ``glasses``, ``hat`` or ``tie``.
        kind: ``glasses``, ``hat:<type>``, ``necktie`` or ``bow_tie``.
        init_vertex: (4, 2) accessory box corners in the foreground image, TL TR BR BL.
        final_vertex: (4, 2) their targets in photo pixels (same order).
        anchors_xy: Named reference points in photo pixels (e.g. ``lens_left``), for checks
            and figures.
        info: The numbers the rule used (angles, sizes), JSON-able.
    """

    category: str
    kind: str
    init_vertex: np.ndarray
    final_vertex: np.ndarray
    anchors_xy: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _box_quad(init_vertex: np.ndarray) -> tuple[float, float, float, float]:
    q = np.asarray(init_vertex, np.float64)
    return float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())


def _check_quad(quad: np.ndarray, min_side_px: float = 2.0) -> np.ndarray:
    """Same orientation as the init box (clockwise on screen) and sides of >= ``min_side_px``."""
    q = np.asarray(quad, np.float64)
    x, y = q[:, 0], q[:, 1]
    area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    sides = np.linalg.norm(q - np.roll(q, -1, axis=0), axis=1)
    if not np.all(np.isfinite(q)) or area <= 0 or sides.min() < min_side_px:
        raise PlacementRejected("degenerate_quad", f"quad {np.round(q, 1).tolist()}")
    return q


# ---------------------------------------------------------------------------------------
# Glasses
# ---------------------------------------------------------------------------------------

def lens_centres_xy(rgba: np.ndarray, init_vertex: np.ndarray | None = None) -> np.ndarray:
    """The two lens centres of a glasses image, measured from its alpha.

    In each half of the box (split at its centre), the lens columns are those whose alpha
    spans >= :data:`LENS_COLUMN_MIN_SPAN` of the box height; the lens centre is the middle of
    their range and of the rows they cover. Falls back to :data:`LENS_CENTRE_FRAC_X` /
    :data:`LENS_CENTRE_FRAC_Y` for a half without such columns.

    Args:
        rgba: (H, W, 4) uint8 glasses image.
        init_vertex: (4, 2) its box (default: the tight alpha box).

    Returns:
        (2, 2) float64: image-left lens, image-right lens (x, y) in image pixels.
    """
    alpha = np.asarray(rgba)[..., 3] > ALPHA_BBOX_THRESHOLD
    if init_vertex is None:
        cols, rows = np.flatnonzero(alpha.any(0)), np.flatnonzero(alpha.any(1))
        if cols.size == 0:
            raise ValueError("glasses image has an empty alpha channel")
        x0, y0, x1, y1 = float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])
    else:
        x0, y0, x1, y1 = _box_quad(init_vertex)
    ix0, iy0, ix1, iy1 = (int(round(v)) for v in (x0, y0, x1, y1))
    box = alpha[iy0:iy1 + 1, ix0:ix1 + 1]
    h, w = box.shape
    ys = np.arange(h)[:, None]
    top = np.where(box, ys, h).min(0)
    bottom = np.where(box, ys, -1).max(0)
    span = np.where(bottom >= top, bottom - top + 1, 0)
    out = []
    mid = w // 2
    for side, (c0, c1) in enumerate(((0, mid), (mid, w))):
        lens_cols = np.flatnonzero(span[c0:c1] >= LENS_COLUMN_MIN_SPAN * h) + c0
        if lens_cols.size == 0:
            out.append((x0 + LENS_CENTRE_FRAC_X[side] * (x1 - x0), y0 + LENS_CENTRE_FRAC_Y * (y1 - y0)))
            continue
        cx = 0.5 * (lens_cols[0] + lens_cols[-1])
        cy = 0.5 * (top[lens_cols].min() + bottom[lens_cols].max())
        out.append((x0 + cx, y0 + cy))
    return np.array(out, np.float64)


def place_glasses(face: FaceGeometry, acc: Accessory) -> Placement:
    """Glasses rule (module docstring): lens centres on the irises, width from the temples."""
    init = acc.init_vertex_xy.astype(np.float64)
    x0, y0, x1, y1 = _box_quad(init)
    lenses_fg = lens_centres_xy(acc.rgba, init)
    lens_mid_fg = lenses_fg.mean(axis=0)
    width = GLASSES_WIDTH_PER_TEMPLE_WIDTH * face.temple_width
    k = width / max(x1 - x0, 1.0)  # 3-D pixels per foreground pixel
    ax, ay, az = face.R[:, 0], face.R[:, 1], face.R[:, 2]
    anchor = face.iris_mid - GLASSES_FORWARD_PER_EYE_SPAN * face.eye_span * az

    def to_3d(pts_fg: np.ndarray) -> np.ndarray:
        uv = (np.asarray(pts_fg, np.float64) - lens_mid_fg) * k
        return anchor + uv[:, :1] * ax + uv[:, 1:2] * ay

    final = project_points(to_3d(init), anchor, face.camera_distance)
    lenses = project_points(to_3d(lenses_fg), anchor, face.camera_distance)
    return Placement("glasses", "glasses", init, _check_quad(final),
                     anchors_xy={"lens_left": lenses[0], "lens_right": lenses[1], "anchor": anchor[:2].copy()},
                     info={"width_px": round(width, 2), "yaw_deg": face.yaw_deg, "roll_deg": face.roll_deg,
                           "lens_centres_fg": np.round(lenses_fg, 2).tolist()})


# ---------------------------------------------------------------------------------------
# Hats
# ---------------------------------------------------------------------------------------

def _stem(acc: Accessory) -> str:
    """File stem of a loaded accessory ('' for procedural ones)."""
    src = acc.source or ""
    return "" if src.startswith("procedural:") else src.replace("\\", "/").split("/")[-1].rsplit(".", 1)[0]


def hat_type(acc: Accessory) -> str:
    """The hat's type: the procedural style, else a keyword in its name, else the default."""
    src = acc.source or ""
    if src.startswith("procedural:"):
        style = src.split(":")[1]
        if style in HAT_STYLES:
            return style
    name = (acc.name.split("/")[-1] + " " + src.replace("\\", "/").split("/")[-1]).lower()
    for keyword, kind in HAT_NAME_KEYWORDS:
        if keyword in name:
            return kind
    return DEFAULT_HAT_TYPE


def place_hat(face: FaceGeometry, acc: Accessory) -> Placement:
    """Hat rule (module docstring): bottom edge on the upper forehead, per-type width."""
    init = acc.init_vertex_xy.astype(np.float64)
    x0, y0, x1, y1 = _box_quad(init)
    kind = hat_type(acc)
    fit = HAT_FIT_OVERRIDES.get(_stem(acc), HAT_FITS[kind])
    width = fit.width * face.face_width
    height = width * (y1 - y0) / max(x1 - x0, 1.0)
    r_hat = rotation_from_euler(HAT_YAW_GAIN * face.yaw_deg, 0.0, face.roll_deg)
    hx, hy = r_hat[:, 0], r_hat[:, 1]
    head_y, head_z = face.R[:, 1], face.R[:, 2]
    brim = face.pts[FACE_FOREHEAD_TOP] - fit.bottom_up * face.face_height * head_y
    # Toward the skull centre, but only sideways (along the hat's x): the bottom edge stays at
    # the forehead's height whatever the pitch.
    anchor = brim + HAT_DEPTH_PER_FACE_WIDTH * face.face_width * float(head_z @ hx) * hx
    corners = np.array([anchor - 0.5 * width * hx - height * hy, anchor + 0.5 * width * hx - height * hy,
                        anchor + 0.5 * width * hx, anchor - 0.5 * width * hx])
    final = project_points(corners, anchor, face.camera_distance)
    return Placement("hat", f"hat:{kind}", init, _check_quad(final),
                     anchors_xy={"brim_centre": anchor[:2].copy(), "forehead": face.pts[FACE_FOREHEAD_TOP, :2].copy()},
                     info={"hat_type": kind, "width_px": round(width, 2), "yaw_deg": face.yaw_deg,
                           "roll_deg": face.roll_deg})


# ---------------------------------------------------------------------------------------
# Ties
# ---------------------------------------------------------------------------------------

def is_bow_tie(acc: Accessory) -> bool:
    """True for bow ties (procedural ``bow_tie`` or a name containing "bow")."""
    return bool(BOWTIE_NAME_RE.search((acc.name + " " + (acc.source or "")).lower()))


@dataclass(frozen=True)
class BodyFrame:
    """Shoulder frame in the photo: origin at the shoulders' midpoint, x along the shoulder
    line toward the image right, y its normal pointing down.

    Attributes:
        origin: (2,) shoulder midpoint.
        x_axis, y_axis: (2,) unit vectors.
        shoulder_width: Image distance of pose 11-12.
    """

    origin: np.ndarray
    x_axis: np.ndarray
    y_axis: np.ndarray
    shoulder_width: float

    def to_image(self, xy_body: np.ndarray) -> np.ndarray:
        """(N, 2) body-frame points -> photo pixels."""
        b = np.asarray(xy_body, np.float64).reshape(-1, 2)
        return self.origin + b[:, :1] * self.x_axis + b[:, 1:2] * self.y_axis

    def to_body(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) photo pixels -> body frame."""
        d = np.asarray(xy, np.float64).reshape(-1, 2) - self.origin
        return np.stack([d @ self.x_axis, d @ self.y_axis], axis=1)

    @property
    def roll_deg(self) -> float:
        """Shoulder line angle, > 0 clockwise on screen (the image-right shoulder lower)."""
        return math.degrees(math.atan2(self.x_axis[1], self.x_axis[0]))


def body_frame(rec: TeacherRecord) -> BodyFrame:
    """The shoulder frame of a record.

    Raises:
        PlacementRejected: ``tie_shoulders_missing`` without a pose or with a shoulder of
            visibility < :data:`TIE_MIN_SHOULDER_VISIBILITY`.
    """
    pose = rec.pose_landmarks
    if pose is None:
        raise PlacementRejected("tie_shoulders_missing", "no pose")
    vis = float(min(pose[POSE_SHOULDER_L, 3], pose[POSE_SHOULDER_R, 3]))
    if vis < TIE_MIN_SHOULDER_VISIBILITY:
        raise PlacementRejected("tie_shoulders_missing", f"shoulder visibility {vis:.2f}")
    right_img, left_img = pose[POSE_SHOULDER_R, :2].astype(np.float64), pose[POSE_SHOULDER_L, :2].astype(np.float64)
    d = left_img - right_img  # subject's right (image left) -> subject's left (image right)
    width = float(np.linalg.norm(d))
    if width < 1.0:
        raise PlacementRejected("tie_shoulders_implausible", "shoulders coincide")
    x = d / width
    return BodyFrame(origin=0.5 * (left_img + right_img), x_axis=x, y_axis=np.array([-x[1], x[0]]),
                     shoulder_width=width)


def place_tie(rec: TeacherRecord, acc: Accessory, face: FaceGeometry | None = None) -> Placement:
    """Necktie / bow tie rule (module docstring)."""
    face = face or record_face(rec)
    body = body_frame(rec)
    face_w_img = float(np.linalg.norm(face.pts[FACE_CHEEK_L, :2] - face.pts[FACE_CHEEK_R, :2]))
    ratio = body.shoulder_width / max(face_w_img, 1e-6)
    lo, hi = TIE_SHOULDER_RATIO_RANGE
    if not lo <= ratio <= hi:
        raise PlacementRejected("tie_shoulders_implausible", f"shoulder/face width {ratio:.2f} not in [{lo}, {hi}]")
    chin = body.to_body(face.pts[FACE_CHIN, :2])[0]
    if chin[1] >= 0:
        raise PlacementRejected("tie_chin_below_shoulders", f"chin {chin[1]:.1f} px below the shoulder line")
    init = acc.init_vertex_xy.astype(np.float64)
    x0, y0, x1, y1 = _box_quad(init)
    aspect = (y1 - y0) / max(x1 - x0, 1.0)
    xc = TIE_CHIN_X_WEIGHT * chin[0]
    bow = is_bow_tie(acc)
    if bow:
        width = BOWTIE_WIDTH_PER_FACE_WIDTH * face_w_img
        height = width * aspect
        yc = chin[1] * (1.0 - BOWTIE_CENTRE_FRAC)
        top, kind = yc - 0.5 * height, "bow_tie"
    else:
        height = NECKTIE_LENGTH_PER_SHOULDER_WIDTH * body.shoulder_width
        width = height / aspect
        top, kind = chin[1] * (1.0 - TIE_KNOT_FRAC), "necktie"
    quad_body = np.array([[xc - width / 2, top], [xc + width / 2, top], [xc + width / 2, top + height],
                          [xc - width / 2, top + height]])
    final = _check_quad(body.to_image(quad_body))
    if not bow:
        h_img = rec.size_wh[1]
        ys = np.linspace(0.0, 1.0, 21)
        axis = body.to_image(np.stack([np.full_like(ys, xc), top + ys * height], axis=1))
        outside = float(np.mean((axis[:, 1] > h_img - 1) | (axis[:, 1] < 0) | (axis[:, 0] < 0)
                                | (axis[:, 0] > rec.size_wh[0] - 1)))
        if outside > TIE_MAX_OUTSIDE_FRACTION:
            raise PlacementRejected("tie_chest_outside", f"{outside:.0%} of the tie outside the photo")
    knot = body.to_image([[xc, top]])[0]
    return Placement("tie", kind, init, final,
                     anchors_xy={"knot_top": knot, "chin": face.pts[FACE_CHIN, :2].copy(),
                                 "shoulder_mid": body.origin.copy()},
                     info={"shoulder_width_px": round(body.shoulder_width, 2), "body_roll_deg": round(body.roll_deg, 2),
                           "shoulder_face_ratio": round(ratio, 3)})


def place_accessory(rec: TeacherRecord, acc: Accessory) -> Placement:
    """Apply the rule of ``acc.category`` to a record.

    Raises:
        PlacementRejected: the record cannot be labelled (``.reason`` says why).
    """
    face = record_face(rec)
    if acc.category == "glasses":
        return place_glasses(face, acc)
    if acc.category == "hat":
        return place_hat(face, acc)
    return place_tie(rec, acc, face)


# ---------------------------------------------------------------------------------------
# Background crop
# ---------------------------------------------------------------------------------------

def face_box(face: FaceGeometry) -> FaceBox:
    """The live app's face-detector box (:class:`realtime.framing.FaceBox`) estimated from the mesh."""
    p = face.pts[:, :2]
    brows = 0.5 * (p[FACE_BROW_R_TOP] + p[FACE_BROW_L_TOP])
    centre = 0.5 * (brows + p[FACE_CHIN])
    fw = float(np.linalg.norm(p[FACE_CHEEK_L] - p[FACE_CHEEK_R]))
    return FaceBox(float(centre[0]), float(centre[1]), FACE_BOX_PER_FACE_WIDTH * fw)


def fit_box(centre_xy: np.ndarray, side: float, quad_xy: np.ndarray,
            margin: float = ACCESSORY_MARGIN_FRACTION) -> tuple[np.ndarray, float]:
    """Move, then grow, a square box until ``quad_xy`` lies inside with ``margin`` x side.

    Returns:
        ``(centre, side)``; unchanged when the quad already fits.
    """
    centre = np.asarray(centre_xy, np.float64).copy()
    q = np.asarray(quad_xy, np.float64)
    extent = float(np.max(q.max(0) - q.min(0)))
    side = max(float(side), extent / (1.0 - 2.0 * margin))
    half_free = side * (0.5 - margin)
    # Keep the quad within [centre - half_free, centre + half_free] on both axes.
    centre = np.clip(centre, q.max(0) - half_free, q.min(0) + half_free)
    return centre, side


def background_box(placement: Placement, face: FaceGeometry, scale: float = 1.0,
                   shift_xy: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, float]:
    """The square background crop (centre, side) in photo pixels.

    The live app's crop of ``placement.category`` around :func:`face_box`
    (:func:`realtime.framing.roi_from_face`), optionally scaled and shifted (``shift_xy`` in crop
    sides; the builder's framing jitter), then :func:`fit_box` to hold the accessory.
    """
    roi = roi_from_face(face_box(face), roi_config(placement.category), 1)
    side = roi.side * float(scale)
    centre = np.asarray(roi.center_xy, np.float64) + np.asarray(shift_xy, np.float64) * side
    return fit_box(centre, side, placement.final_vertex)


def pad_fraction(centre: np.ndarray, side: float, size_wh: tuple[int, int]) -> float:
    """Share of a square crop's area that lies outside the photo."""
    x0, y0 = centre - side / 2
    x1, y1 = centre + side / 2
    w, h = size_wh
    inside = max(0.0, min(x1, w) - max(x0, 0.0)) * max(0.0, min(y1, h) - max(y0, 0.0))
    return 1.0 - inside / (side * side)


def rules_info() -> dict[str, Any]:
    """Every rule constant, JSON-able (stored in dataset.json and the report)."""
    return {
        "version": PLACEMENT_RULES_VERSION,
        "camera_distance_face_widths": CAMERA_DISTANCE_FACE_WIDTHS,
        "glasses": {"width_per_temple_width": GLASSES_WIDTH_PER_TEMPLE_WIDTH,
                    "forward_per_eye_span": GLASSES_FORWARD_PER_EYE_SPAN,
                    "lens_centre_frac_default": [*LENS_CENTRE_FRAC_X, LENS_CENTRE_FRAC_Y],
                    "lens_column_min_span": LENS_COLUMN_MIN_SPAN},
        "hat": {"fits": {k: [v.width, v.bottom_up] for k, v in HAT_FITS.items()}, "default_type": DEFAULT_HAT_TYPE,
                "fit_overrides": {k: [v.width, v.bottom_up] for k, v in HAT_FIT_OVERRIDES.items()},
                "depth_per_face_width": HAT_DEPTH_PER_FACE_WIDTH, "yaw_gain": HAT_YAW_GAIN},
        "tie": {"min_shoulder_visibility": TIE_MIN_SHOULDER_VISIBILITY,
                "shoulder_ratio_range": list(TIE_SHOULDER_RATIO_RANGE), "knot_frac": TIE_KNOT_FRAC,
                "chin_x_weight": TIE_CHIN_X_WEIGHT, "necktie_length_per_shoulder_width":
                    NECKTIE_LENGTH_PER_SHOULDER_WIDTH, "bowtie_centre_frac": BOWTIE_CENTRE_FRAC,
                "bowtie_width_per_face_width": BOWTIE_WIDTH_PER_FACE_WIDTH,
                "max_outside_fraction": TIE_MAX_OUTSIDE_FRACTION},
        "crop": {"framing": "realtime.framing.ROI_CONFIGS", "face_box_per_face_width": FACE_BOX_PER_FACE_WIDTH,
                 "accessory_margin_fraction": ACCESSORY_MARGIN_FRACTION, "max_pad_fraction": MAX_PAD_FRACTION},
    }
