"""Pseudo-parsing masks for real photos, from the landmark teacher (no face-parsing model).

The paper supervises an auxiliary semantic decoder with face parsing (12 classes, glasses and
hats) or body parsing (8 classes, ties) of the background (Sec. 4.2). No parsing model can be
had here (SPEC section 6), so :mod:`training.pseudo_strat` derives what it can from the
MediaPipe teacher and marks everything else ``IGNORE_INDEX`` (not supervised):

* **face mesh polygons** (contours from MediaPipe's ``face_mesh_connections.py``): face oval
  -> ``skin``, eyes, eyebrows, outer lips -> ``mouth``, the nose's convex hull -> ``nose``;
* **selfie segmentation** (person probability): <= ``SEG_BACKGROUND_MAX`` -> ``background``;
  person pixels outside the face: above the eye line and within ``HAIR_HALF_WIDTH`` face widths
  of the face axis -> ``hair``; a band under the chin -> ``neck``; further down -> ``clothing``;
* **pose** (ties): shoulders -> the torso (``upper``), hips when visible -> ``lower``; the
  whole head region -> ``head``.

Uncertain -> ignore: person pixels beside the face below the eye line (hair, ears or
background), a band around the face oval (the mesh outline vs the real jaw / hairline), pixels
with a person probability between the two thresholds, arms (sleeve or skin), padding.
Known noise: glasses or hats the person already wears are labelled as eyes / skin / hair.

All functions work in the coordinates of the map being drawn (the caller maps the landmarks
into its crop). Class ids: ``realtime.config.FACE_CLASSES`` / ``BODY_CLASSES``.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.config import BODY_CLASSES, FACE_CLASSES, IGNORE_INDEX, check_category
from training.teacher.cache import (FACE_CHEEK_L, FACE_CHEEK_R, FACE_CHIN, FACE_EYE_L_OUTER, FACE_EYE_R_OUTER,
                                    FACE_FOREHEAD_TOP, POSE_HIP_L, POSE_HIP_R, POSE_SHOULDER_L, POSE_SHOULDER_R)

# Closed contours of the face mesh, as ordered index loops (from the edge lists FACEMESH_FACE_OVAL,
# FACEMESH_RIGHT_EYE, ... in mediapipe/python/solutions/face_mesh_connections.py, mediapipe 0.10.21).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
RIGHT_EYEBROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_EYEBROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
#: FACEMESH_NOSE's points; the nose region is their convex hull (bridge 168 to the nostrils).
NOSE_POINTS = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115, 48,
               64)
_POSE_ELBOWS_WRISTS = ((POSE_SHOULDER_L, 13, 15), (POSE_SHOULDER_R, 14, 16))  # pose.py PoseLandmark

#: Person probability at or below which a pixel is background, and at or above which it is
#: the person (MediaPipe's selfie mask is soft at the silhouette; in between -> ignore).
SEG_BACKGROUND_MAX = 0.3
SEG_PERSON_MIN = 0.6
#: Hair: person pixels above the eye line within this many face widths of the face's axis
#: (a head is ~1.1 face widths wide; big hair reaches ~0.9 to each side).
HAIR_HALF_WIDTH = 0.9
#: Neck: person pixels at most this many face heights below the chin and this many face
#: widths from the chin's vertical (a neck is ~0.6-0.7 face widths wide).
NECK_DEPTH = 0.3
NECK_HALF_WIDTH = 0.3
#: Clothing: person pixels more than this many face heights below the chin.
CLOTHING_BELOW_CHIN = 0.45
#: Ignore band around the face oval, each side, as a share of the face width (the mesh's oval
#: is an approximation of the jawline and the hairline).
OVAL_BAND = 0.03
#: Ties: the head region is person pixels above the chin within this many face widths of the
#: face axis (hair and ears are "head" in the body classes).
HEAD_HALF_WIDTH = 0.8
#: Ties: torso = person pixels below the shoulder line (minus this many shoulder widths) and
#: within this many shoulder widths of the body axis.
TORSO_TOP_MARGIN = 0.05
TORSO_HALF_WIDTH = 0.45
#: Ties: width of the ignored arm strokes (shoulder-elbow-wrist), in shoulder widths.
ARM_WIDTH = 0.3
#: Minimum pose visibility for a landmark to be used (as the tie rule).
POSE_MIN_VISIBILITY = 0.5

_F = {n: i for i, n in enumerate(FACE_CLASSES)}
_B = {n: i for i, n in enumerate(BODY_CLASSES)}


def _fill(shape_hw: tuple[int, int], pts_xy: np.ndarray, hull: bool = False) -> np.ndarray:
    """Boolean mask of a filled polygon (sub-pixel vertices, pixel centres at integers)."""
    mask = np.zeros(shape_hw, np.uint8)
    pts = np.asarray(pts_xy, np.float64).reshape(-1, 2)
    if hull:
        pts = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    poly = np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [poly], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


class _FaceAxes:
    """Per-pixel coordinates along the face: ``v`` up from the eye line, ``u`` sideways from the
    face axis (both in pixels), and the face's image width / height."""

    def __init__(self, shape_hw: tuple[int, int], face_xy: np.ndarray) -> None:
        f = np.asarray(face_xy, np.float64)
        up = f[FACE_FOREHEAD_TOP] - f[FACE_CHIN]
        self.fh = float(np.linalg.norm(up))
        self.up = up / max(self.fh, 1e-6)
        self.side = np.array([-self.up[1], self.up[0]])  # image right for an upright face
        self.fw = float(np.linalg.norm(f[FACE_CHEEK_L] - f[FACE_CHEEK_R]))
        eye_mid = 0.5 * (f[FACE_EYE_R_OUTER] + f[FACE_EYE_L_OUTER])
        h, w = shape_hw
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        dx, dy = xs - eye_mid[0], ys - eye_mid[1]
        self.v = dx * self.up[0] + dy * self.up[1]
        self.u = dx * self.side[0] + dy * self.side[1]
        self.chin_v = float((f[FACE_CHIN] - eye_mid) @ self.up)
        self.chin_u = float((f[FACE_CHIN] - eye_mid) @ self.side)


def _seg_masks(seg: np.ndarray | None, shape_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    if seg is None:
        none = np.zeros(shape_hw, bool)
        return none, none
    seg = np.asarray(seg, np.float32)
    if seg.shape != shape_hw:
        raise ValueError(f"segmentation is {seg.shape}, the map {shape_hw}")
    return seg >= SEG_PERSON_MIN, seg <= SEG_BACKGROUND_MAX


def _oval_band(oval: np.ndarray, fw: float) -> np.ndarray:
    r = max(1, int(round(OVAL_BAND * fw)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    o = oval.astype(np.uint8)
    return (cv2.dilate(o, k) > 0) & ~(cv2.erode(o, k) > 0)


def face_parsing(shape_hw: tuple[int, int], face_xy: np.ndarray, seg: np.ndarray | None = None,
                 valid: np.ndarray | None = None) -> np.ndarray:
    """Face-class pseudo-parsing (glasses, hat backgrounds).

    Args:
        shape_hw: Map size.
        face_xy: (478, 2) face mesh in map pixels.
        seg: (H, W) person probability in [0, 1], or None (then only the mesh parts are labelled).
        valid: (H, W) bool, False on padding (ignored); None = all valid.

    Returns:
        (H, W) uint8 ``FACE_CLASSES`` ids, ``IGNORE_INDEX`` where unknown.
    """
    f = np.asarray(face_xy, np.float64)[:, :2]
    ax = _FaceAxes(shape_hw, f)
    person, bg = _seg_masks(seg, shape_hw)
    lab = np.full(shape_hw, IGNORE_INDEX, np.uint8)
    lab[bg] = _F["background"]
    oval = _fill(shape_hw, f[list(FACE_OVAL)])
    rest = person & ~oval
    lab[rest & (ax.v > 0) & (np.abs(ax.u) <= HAIR_HALF_WIDTH * ax.fw)] = _F["hair"]
    below = ax.chin_v - ax.v  # > 0 under the chin
    lab[rest & (below > 0) & (below <= NECK_DEPTH * ax.fh)
        & (np.abs(ax.u - ax.chin_u) <= NECK_HALF_WIDTH * ax.fw)] = _F["neck"]
    lab[rest & (below > CLOTHING_BELOW_CHIN * ax.fh)] = _F["clothing"]
    lab[oval] = _F["skin"]
    lab[_oval_band(oval, ax.fw)] = IGNORE_INDEX
    lab[_fill(shape_hw, f[list(NOSE_POINTS)], hull=True)] = _F["nose"]
    for loop in (RIGHT_EYEBROW, LEFT_EYEBROW):
        lab[_fill(shape_hw, f[list(loop)])] = _F["eyebrows"]
    for loop in (RIGHT_EYE, LEFT_EYE):
        lab[_fill(shape_hw, f[list(loop)])] = _F["eyes"]
    lab[_fill(shape_hw, f[list(LIPS_OUTER)])] = _F["mouth"]
    if valid is not None:
        lab[~np.asarray(valid, bool)] = IGNORE_INDEX
    return lab


def body_parsing(shape_hw: tuple[int, int], face_xy: np.ndarray, pose_xyv: np.ndarray | None,
                 seg: np.ndarray | None = None, valid: np.ndarray | None = None) -> np.ndarray:
    """Body-class pseudo-parsing (tie backgrounds).

    Args:
        shape_hw: Map size.
        face_xy: (478, 2) face mesh in map pixels.
        pose_xyv: (33, 3) pose ``x, y, visibility`` in map pixels, or None.
        seg: (H, W) person probability, or None.
        valid: (H, W) bool, False on padding; None = all valid.

    Returns:
        (H, W) uint8 ``BODY_CLASSES`` ids, ``IGNORE_INDEX`` where unknown.
    """
    f = np.asarray(face_xy, np.float64)[:, :2]
    ax = _FaceAxes(shape_hw, f)
    person, bg = _seg_masks(seg, shape_hw)
    lab = np.full(shape_hw, IGNORE_INDEX, np.uint8)
    lab[bg] = _B["background"]
    oval = _fill(shape_hw, f[list(FACE_OVAL)])
    if pose_xyv is not None:
        p = np.asarray(pose_xyv, np.float64)
        if min(p[POSE_SHOULDER_L, 2], p[POSE_SHOULDER_R, 2]) >= POSE_MIN_VISIBILITY:
            sr, sl = p[POSE_SHOULDER_R, :2], p[POSE_SHOULDER_L, :2]
            sw = float(np.linalg.norm(sl - sr))
            x = (sl - sr) / max(sw, 1e-6)
            y = np.array([-x[1], x[0]])
            mid = 0.5 * (sl + sr)
            h, w = shape_hw
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
            bx = (xs - mid[0]) * x[0] + (ys - mid[1]) * x[1]
            by = (xs - mid[0]) * y[0] + (ys - mid[1]) * y[1]
            torso = person & (by >= -TORSO_TOP_MARGIN * sw) & (np.abs(bx) <= TORSO_HALF_WIDTH * sw)
            hips = [p[i] for i in (POSE_HIP_L, POSE_HIP_R) if p[i, 2] >= POSE_MIN_VISIBILITY]
            if len(hips) == 2:
                hip_y = float(np.mean([(hp[:2] - mid) @ y for hp in hips]))
                lab[person & (by > hip_y) & (np.abs(bx) <= 0.6 * sw)] = _B["lower"]
                torso &= by <= hip_y
            lab[torso] = _B["upper"]
            arms = np.zeros(shape_hw, np.uint8)
            for chain in _POSE_ELBOWS_WRISTS:
                pts = [p[i, :2] for i in chain if p[i, 2] >= POSE_MIN_VISIBILITY]
                if len(pts) >= 2:
                    poly = np.round(np.array(pts) * 16).astype(np.int32).reshape(-1, 1, 2)
                    cv2.polylines(arms, [poly], False, 1, max(1, int(round(ARM_WIDTH * sw))), cv2.LINE_8, shift=4)
            lab[(arms > 0) & person] = IGNORE_INDEX
    head = oval | (person & (ax.v >= ax.chin_v) & (np.abs(ax.u) <= HEAD_HALF_WIDTH * ax.fw))
    lab[head] = _B["head"]
    lab[_oval_band(oval, ax.fw) & ~person] = IGNORE_INDEX
    if valid is not None:
        lab[~np.asarray(valid, bool)] = IGNORE_INDEX
    return lab


def parsing_map(category: str, shape_hw: tuple[int, int], face_xy: np.ndarray, pose_xyv: np.ndarray | None = None,
                seg: np.ndarray | None = None, valid: np.ndarray | None = None) -> np.ndarray:
    """:func:`face_parsing` for glasses / hats, :func:`body_parsing` for ties."""
    if check_category(category) == "tie":
        return body_parsing(shape_hw, face_xy, pose_xyv, seg, valid)
    return face_parsing(shape_hw, face_xy, seg, valid)


# ---------------------------------------------------------------------------------------
# A synthetic face-mesh template (tests, figures): no photo, no mediapipe
# ---------------------------------------------------------------------------------------

def _ring(n: int, cx: float, cy: float, ax: float, ay: float, start_deg: float = 180.0) -> np.ndarray:
    t = np.deg2rad(start_deg + np.arange(n) * 360.0 / n)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)


def template_face_landmarks(center_xy: tuple[float, float] = (0.0, 0.0), face_width: float = 100.0,
                            yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """A crude 478-point face mesh: the named contours of MediaPipe's mesh on a simple 3-D head.

    Face width (234-454) is ``face_width``, face height (10-152) ~1.15 of it; the contours used
    here (oval, eyes, irises, brows, lips, nose) are placed like on a real face, every other
    index sits at the face centre. Angles follow the teacher's convention
    (:func:`training.teacher.mediapipe_teacher.rotation_from_euler`), so
    ``head_pose_from_landmarks`` recovers them.

    Returns:
        (478, 3) float64 in pixels, z on the x scale (larger = farther from the camera).
    """
    from training.teacher.mediapipe_teacher import rotation_from_euler  # numpy-only module

    p = np.zeros((478, 3))
    p[:, 1] = 0.05  # face centre
    p[:, 2] = 0.2
    # Oval: 10 at the top, 454 at the right, 152 at the bottom, 234 at the left (image).
    n = len(FACE_OVAL)
    i454, i152, i234 = FACE_OVAL.index(454), FACE_OVAL.index(152), FACE_OVAL.index(234)
    knots = [(0, -90.0), (i454, 0.0), (i152, 90.0), (i234, 180.0), (n, 270.0)]
    ang = np.interp(np.arange(n), [k for k, _ in knots], [a for _, a in knots])
    t = np.deg2rad(ang)
    ox, oy = 0.5 * np.cos(t), 0.05 + 0.575 * np.sin(t)
    p[list(FACE_OVAL)] = np.stack([ox, oy, 0.45 * (ox / 0.5) ** 2], axis=1)
    for loop, cx in ((RIGHT_EYE, -0.2), (LEFT_EYE, 0.2)):
        ring = _ring(len(loop), cx, -0.05, 0.1, 0.035, 180.0 if cx < 0 else 0.0)
        p[list(loop)] = np.column_stack([ring, np.full(len(loop), 0.05)])
    for centre, ring_idx, cx in ((468, (469, 470, 471, 472), -0.2), (473, (474, 475, 476, 477), 0.2)):
        p[centre] = (cx, -0.05, 0.03)
        p[list(ring_idx)] = np.column_stack([_ring(4, cx, -0.05, 0.03, 0.03), np.full(4, 0.03)])
    for loop, cx in ((RIGHT_EYEBROW, -0.2), (LEFT_EYEBROW, 0.2)):
        ring = _ring(len(loop), cx, -0.17, 0.12, 0.025)
        p[list(loop)] = np.column_stack([ring, np.full(len(loop), 0.0)])
    p[list(LIPS_OUTER)] = np.column_stack([_ring(len(LIPS_OUTER), 0.0, 0.3, 0.16, 0.05), np.full(20, -0.05)])
    p[13], p[14] = (0.0, 0.29, -0.05), (0.0, 0.31, -0.05)
    nose = _ring(len(NOSE_POINTS), 0.0, 0.06, 0.08, 0.11)
    p[list(NOSE_POINTS)] = np.column_stack([nose, np.full(len(NOSE_POINTS), -0.1)])
    p[168], p[1] = (0.0, -0.05, -0.05), (0.0, 0.12, -0.25)
    rot = rotation_from_euler(yaw_deg, pitch_deg, roll_deg)
    pivot = np.array([0.0, 0.05, 0.45])
    pts = (p - pivot) @ rot.T + pivot
    pts *= face_width
    pts[:, 0] += center_xy[0] - pivot[0] * face_width
    pts[:, 1] += center_xy[1] - pivot[1] * face_width
    return pts


def template_pose_landmarks(face_xyz: np.ndarray, shoulder_ratio: float = 1.8, body_roll_deg: float = 0.0,
                            visibility: float = 0.95) -> np.ndarray:
    """Pose landmarks (33, 4) ``x, y, z, visibility`` under a template face: shoulders
    ``shoulder_ratio`` face widths apart, 0.3 face heights below the chin, the shoulder line
    rotated by ``body_roll_deg`` (> 0 clockwise); elbows and wrists below them."""
    f = np.asarray(face_xyz, np.float64)
    fw = float(np.linalg.norm(f[FACE_CHEEK_L, :2] - f[FACE_CHEEK_R, :2]))
    fh = float(np.linalg.norm(f[FACE_FOREHEAD_TOP, :2] - f[FACE_CHIN, :2]))
    th = np.deg2rad(body_roll_deg)
    x, y = np.array([np.cos(th), np.sin(th)]), np.array([-np.sin(th), np.cos(th)])
    mid = f[FACE_CHIN, :2] + 0.3 * fh * y
    pose = np.zeros((33, 4))
    pose[:, :2] = mid
    pose[:, 3] = visibility
    half = 0.5 * shoulder_ratio * fw
    for s_idx, e_idx, w_idx, sgn in ((POSE_SHOULDER_L, 13, 15, 1.0), (POSE_SHOULDER_R, 14, 16, -1.0)):
        pose[s_idx, :2] = mid + sgn * half * x
        pose[e_idx, :2] = mid + sgn * 1.1 * half * x + 1.2 * fh * y
        pose[w_idx, :2] = mid + sgn * 0.8 * half * x + 2.2 * fh * y
    for idx, sgn in ((POSE_HIP_L, 1.0), (POSE_HIP_R, -1.0)):
        pose[idx, :2] = mid + sgn * 0.7 * half * x + 2.6 * fh * y
    return pose
