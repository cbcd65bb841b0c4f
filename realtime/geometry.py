"""Geometry: homographies, vertex warps, crop<->frame affines, and the warp + composite.

numpy + OpenCV only (no torch). Used by the data builders, training, evaluation and
the live loop alike.

Conventions:
    * ``pts_xy`` arrays are (..., 2) with x first; pixel centres at integer coordinates.
    * 3x3 matrices are named ``<to>_from_<from>``: ``frame_from_crop`` maps crop
      coordinates into the frame. Homographies from the accessory image to a target
      image are ``target_from_fg``.
    * Quads are 4 corners in canonical order TL, TR, BR, BL.

The composite (paper Eq. 5: I_c = M~ * I~_f + (1 - M~) * I_b) comes in two versions
that must agree within one grey level:

    * :func:`composite_reference`: full-frame float32, straightforward;
    * :class:`PreparedAccessory` + :func:`composite_roi`: premultiplied-alpha uint8
      work restricted to the bounding box of the warped quad, so a 1080p frame costs
      about as much as the accessory's footprint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np


class DegenerateQuadError(ValueError):
    """A quad cannot define a homography: non-finite, collinear, self-intersecting or tiny."""


#: Minimum quad area in pixels^2 below which a homography is refused.
MIN_QUAD_AREA_PX2 = 4.0
#: |sin| of the smallest corner angle tolerated (about 0.6 degrees): below it three
#: corners are treated as collinear and the homography is ill-conditioned.
MIN_CORNER_SIN = 0.01


def validate_quad(quad_xy: np.ndarray, name: str = "quad", min_area: float = MIN_QUAD_AREA_PX2) -> np.ndarray:
    """Check that a quad can define a homography; return it as float64 (4, 2).

    Runs on every drawn frame: the checks are done on the 8 numbers as Python floats
    (NumPy's per-call overhead on (4, 2) arrays made this 0.3 ms a quad).

    Raises:
        DegenerateQuadError: wrong shape, non-finite values, area below ``min_area``,
            three nearly collinear corners, or a non-convex / self-intersecting outline.
    """
    q = np.asarray(quad_xy, dtype=np.float64)
    if q.shape != (4, 2):
        raise DegenerateQuadError(f"{name}: expected 4 points of (x, y), got shape {q.shape}")
    pts = q.tolist()
    if not all(math.isfinite(v) for p in pts for v in p):
        raise DegenerateQuadError(f"{name}: non-finite coordinates {pts}")
    area = 0.5 * sum(pts[i][0] * pts[(i + 1) % 4][1] - pts[i][1] * pts[(i + 1) % 4][0] for i in range(4))
    if abs(area) < min_area:
        raise DegenerateQuadError(f"{name}: area {abs(area):.3g} px^2 is below {min_area} px^2")
    edges = [(pts[(i + 1) % 4][0] - pts[i][0], pts[(i + 1) % 4][1] - pts[i][1]) for i in range(4)]
    lengths = [math.hypot(ex, ey) for ex, ey in edges]
    crosses = []
    for i in range(4):
        (ax, ay), (bx, by) = edges[i], edges[(i + 1) % 4]
        crosses.append(ax * by - ay * bx)
        if abs(crosses[-1] / max(lengths[i] * lengths[(i + 1) % 4], 1e-12)) < MIN_CORNER_SIN:
            raise DegenerateQuadError(f"{name}: three corners are (nearly) collinear: {q.round(3).tolist()}")
    if not (all(c > 0 for c in crosses) or all(c < 0 for c in crosses)):
        raise DegenerateQuadError(f"{name}: self-intersecting or non-convex outline: {q.round(3).tolist()}")
    return q


def homography_from_quads(src_xy: np.ndarray, dst_xy: np.ndarray) -> np.ndarray:
    """Homography mapping 4 source points onto 4 destination points (8-unknown DLT, h33=1).

    Equivalent to ``cv2.getPerspectiveTransform`` (SPEC section 2), solved in float64,
    after checking both quads with :func:`validate_quad`.

    Returns:
        (3, 3) float64 ``dst_from_src``.

    Raises:
        DegenerateQuadError: either quad is degenerate, or the system is singular.
    """
    src = validate_quad(src_xy, "source quad")
    dst = validate_quad(dst_xy, "target quad")
    rows, b = [], []
    for (x, y), (u, v) in zip(src.tolist(), dst.tolist()):
        rows.append((x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y))
        rows.append((0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y))
        b += (u, v)
    try:
        h = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(b, dtype=np.float64))
    except np.linalg.LinAlgError as exc:
        raise DegenerateQuadError(f"singular homography system for {src.tolist()} -> {dst.tolist()}") from exc
    mat = np.append(h, 1.0).reshape(3, 3)
    if not np.all(np.isfinite(mat)):
        raise DegenerateQuadError("homography has non-finite entries")
    return mat


def complete_quad(pts_xy: np.ndarray, peak: np.ndarray, init_vertex_xy: np.ndarray, min_peak: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Replace the corners the network barely sees by the accessory's shape through the others.

    A corner whose heatmap peak is below ``min_peak`` carries no position (a tie's lower
    corners hanging out of the picture into the black padding get flat heatmaps, whose
    argmax is pixel 0). With at least two confident corners, the weak ones are placed where
    the accessory's own quad (``init_vertex_xy``, foreground pixels) puts them under the
    similarity (2 confident corners) or affine map (3) that takes its confident corners onto
    the predicted ones. With fewer than two, or ``min_peak <= 0``, nothing changes.

    Returns:
        (pts (4, 2) float32, completed (4,) bool: which corners were replaced).
    """
    pts = np.array(pts_xy, np.float64)
    weak = np.asarray(peak, np.float64) < min_peak if min_peak > 0 else np.zeros(len(pts), bool)
    strong = np.flatnonzero(~weak)
    if not weak.any() or len(strong) < 2:
        return pts.astype(np.float32), np.zeros(len(pts), bool)
    src = np.asarray(init_vertex_xy, np.float64)
    if len(strong) == 2:  # similarity z -> a z + b in complex numbers
        s0, s1 = (complex(*src[i]) for i in strong)
        d0, d1 = (complex(*pts[i]) for i in strong)
        if s1 == s0:
            return pts.astype(np.float32), np.zeros(len(pts), bool)
        a = (d1 - d0) / (s1 - s0)
        b = d0 - a * s0
        for i in np.flatnonzero(weak):
            z = a * complex(*src[i]) + b
            pts[i] = (z.real, z.imag)
    else:
        mat = cv2.getAffineTransform(src[strong[:3]].astype(np.float32), pts[strong[:3]].astype(np.float32))
        pts[weak] = warp_points(to3x3(mat), src[weak])
    return pts.astype(np.float32), weak


def warp_points(mat: np.ndarray, pts_xy: np.ndarray) -> np.ndarray:
    """Apply a 3x3 projective (or affine) matrix to points (..., 2)."""
    pts = np.asarray(pts_xy, dtype=np.float64)
    flat = pts.reshape(-1, 2)
    hom = np.concatenate([flat, np.ones((len(flat), 1))], axis=1) @ np.asarray(mat, dtype=np.float64).T
    w = hom[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = hom[:, :2] / w
    return out.reshape(pts.shape)


def to3x3(mat2x3: np.ndarray) -> np.ndarray:
    """Lift a 2x3 affine to 3x3."""
    m = np.eye(3, dtype=np.float64)
    m[:2] = np.asarray(mat2x3, dtype=np.float64).reshape(2, 3)
    return m


def translation_matrix(dx: float, dy: float) -> np.ndarray:
    """3x3 translation by (dx, dy)."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def similarity_scale_angle(mat: np.ndarray) -> tuple[float, float]:
    """(scale, rotation in degrees, positive = clockwise on screen with y down) of a 2x3 /
    3x3 similarity ``[[a, -b, tx], [b, a, ty]]`` (for a general affine: of its first column)."""
    m = np.asarray(mat, dtype=np.float64)
    a, b = float(m[0, 0]), float(m[1, 0])
    return math.hypot(a, b), math.degrees(math.atan2(b, a))


def conjugate_by_scaling(mat: np.ndarray, small_from_frame: np.ndarray) -> np.ndarray:
    """``inv(A) @ M @ A`` (3x3) for a 2x3 / 3x3 affine ``M`` measured in a scaled and shifted
    copy of the frame, ``A = small_from_frame = [[s, 0, tx], [0, s, ty]]`` (isotropic):
    the same motion in frame pixels, in closed form (no inverse)."""
    m = np.asarray(mat, np.float64)
    s, tx, ty = float(small_from_frame[0][0]), float(small_from_frame[0][2]), float(small_from_frame[1][2])
    out = np.eye(3)
    out[:2, :2] = m[:2, :2]
    out[0, 2] = (m[0, 0] * tx + m[0, 1] * ty + m[0, 2] - tx) / s
    out[1, 2] = (m[1, 0] * tx + m[1, 1] * ty + m[1, 2] - ty) / s
    return out


def carry_matrix(dst_from_ref: np.ndarray, src_from_ref: np.ndarray) -> np.ndarray:
    """``dst_from_src`` from two transforms out of a common reference:
    ``dst_from_ref @ inv(src_from_ref)`` (3x3; e.g. carries points from frame k to frame n
    given each frame's cumulative motion since the same reference frame)."""
    return np.asarray(dst_from_ref, np.float64) @ np.linalg.inv(np.asarray(src_from_ref, np.float64))


def scale_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    """3x3 scaling about the origin."""
    return np.diag([sx, sx if sy is None else sy, 1.0])


def resize_matrix(src_wh: tuple[int, int], dst_wh: tuple[int, int]) -> np.ndarray:
    """``dst_from_src`` for ``cv2.resize`` from ``src_wh`` to ``dst_wh``.

    OpenCV's resize aligns pixel *edges*: x_dst = (x_src + 0.5) * s - 0.5.
    """
    sx = dst_wh[0] / src_wh[0]
    sy = dst_wh[1] / src_wh[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], dtype=np.float64)


def crop_from_box(center_xy: tuple[float, float], side: float, out_size: int, angle_deg: float = 0.0) -> np.ndarray:
    """``crop_from_frame``: a square box of ``side`` px (optionally rotated) -> out_size^2.

    The box centre maps to the crop centre ((out_size - 1) / 2); a positive angle
    rotates the box counter-clockwise on screen, so the crop is de-rotated.
    """
    s = out_size / float(side)
    c = (out_size - 1) / 2.0
    th = np.deg2rad(angle_deg)
    cos, sin = np.cos(th) * s, np.sin(th) * s
    cx, cy = center_xy
    # p_crop = s * R(-angle) (p - centre) + c, with y pointing down.
    return np.array([[cos, -sin, c - cos * cx + sin * cy],
                     [sin, cos, c - sin * cx - cos * cy],
                     [0.0, 0.0, 1.0]], dtype=np.float64)


def rotated_crop_from_box(center_xy: tuple[float, float], side: float, out_size: int,
                          roll_deg: float = 0.0) -> np.ndarray:
    """``crop_from_frame`` of a square crop that turns with a rolled face: the ONE home of
    the rotated-crop transform (live tracker, training's crop framing, detector views).

    ``roll_deg`` is the face's in-plane rotation, positive = eye line clockwise on screen
    (y down); the crop's x axis runs along the face's eye line, so the face is upright
    in the crop. Same as :func:`crop_from_box` with ``angle_deg = -roll_deg``; keypoints
    go back with the inverse matrix.
    """
    return crop_from_box(center_xy, side, out_size, -float(roll_deg))


def rolled_offset(center_xy: tuple[float, float], unit: float, offset_xy: tuple[float, float],
                  roll_deg: float = 0.0) -> tuple[float, float]:
    """``center + unit * R(roll) offset``: an offset given in a rolled face's own axes
    (x along the eye line, y down the face), in frame pixels."""
    th = np.deg2rad(roll_deg)
    c, s = np.cos(th), np.sin(th)
    ox, oy = offset_xy[0] * unit, offset_xy[1] * unit
    return float(center_xy[0] + c * ox - s * oy), float(center_xy[1] + s * ox + c * oy)


def view_from_frame(center_xy: tuple[float, float], scale: float, out_wh: tuple[int, int],
                    roll_deg: float = 0.0) -> np.ndarray:
    """3x3 affine of a (possibly rectangular) view: the frame point ``center_xy`` goes to the
    view's centre, scaled by ``scale`` and de-rotated by ``roll_deg`` like
    :func:`rotated_crop_from_box` (a face rolled by ``roll_deg`` is upright in the view)."""
    th = np.deg2rad(-float(roll_deg))
    cos, sin = np.cos(th) * scale, np.sin(th) * scale
    cx, cy = center_xy
    vx, vy = (out_wh[0] - 1) / 2.0, (out_wh[1] - 1) / 2.0
    return np.array([[cos, -sin, vx - cos * cx + sin * cy],
                     [sin, cos, vy - sin * cx - cos * cy],
                     [0.0, 0.0, 1.0]], dtype=np.float64)


def letterbox(frame: np.ndarray, region_xywh: tuple[float, float, float, float], out_wh: tuple[int, int],
              shrink: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """The frame region (x0, y0, w, h) scaled, aspect kept, into a black ``out_wh`` image, centred
    (a region reaching outside the frame is black there): the detectors' input placement.

    Returns (image, frame_from_input 2x3 affine; None when the region holds under 2x2 frame
    pixels). The resize is ``cv2.resize`` (area when shrinking), which maps pixel centres:
    src = (dst + 0.5) / s - 0.5, then shifted by the region's origin. ``shrink(crop, (w, h))``
    replaces the area resize when given (the live detectors pass
    :func:`realtime.live.native.shrink_rows_sampled`: the native area kernel, the same pixels
    within one grey level, reading every k-th row on a large shrink such as a whole 4K frame).
    """
    x0, y0, side_w, side_h = region_xywh
    out_w, out_h = out_wh
    h, w = frame.shape[:2]
    s = min(out_w / side_w, out_h / side_h)
    ox = (out_w - side_w * s) / 2.0 - x0 * s  # input x = frame x * s + ox
    oy = (out_h - side_h * s) / 2.0 - y0 * s
    ix0, iy0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    ix1, iy1 = min(w, int(math.ceil(x0 + side_w))), min(h, int(math.ceil(y0 + side_h)))
    canvas = np.zeros((out_h, out_w, 3), np.uint8)
    if ix1 - ix0 < 2 or iy1 - iy0 < 2:
        return canvas, None
    crop = frame[iy0:iy1, ix0:ix1]
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    px, py = int(round(ix0 * s + ox)), int(round(iy0 * s + oy))
    size = (max(1, int(round((ix1 - ix0) * s))), max(1, int(round((iy1 - iy0) * s))))
    if (s < 1 and shrink is not None and crop.dtype == np.uint8 and crop.shape[2] == 3
            and size[0] <= crop.shape[1] and size[1] <= crop.shape[0]):
        small = shrink(crop, size)
    else:
        small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    sx, sy = small.shape[1] / (ix1 - ix0), small.shape[0] / (iy1 - iy0)
    qx, qy = max(px, 0), max(py, 0)  # the part of the resized crop that lands inside the output
    cw, ch = min(out_w - qx, small.shape[1] - (qx - px)), min(out_h - qy, small.shape[0] - (qy - py))
    if cw > 0 and ch > 0:
        canvas[qy:qy + ch, qx:qx + cw] = small[qy - py:qy - py + ch, qx - px:qx - px + cw]
    back = np.array([[1 / sx, 0.0, (0.5 - px) / sx - 0.5 + ix0], [0.0, 1 / sy, (0.5 - py) / sy - 0.5 + iy0]])
    return canvas, back


def roll_from_eyes(right_eye_xy, left_eye_xy) -> float:
    """Roll (degrees, + = eye line clockwise on screen, y down) of a face from the subject's
    right and left eye centres (in a non-mirrored upright view the right eye is on the image
    left): the angle of right eye -> left eye, in (-180, 180] (a face upside down reads 180)."""
    return math.degrees(math.atan2(left_eye_xy[1] - right_eye_xy[1], left_eye_xy[0] - right_eye_xy[0]))


def warp_crop(frame: np.ndarray, crop_from_frame: np.ndarray, out_size: int,
              border_value: tuple[int, ...] = (0, 0, 0)) -> np.ndarray:
    """Cut the square crop described by ``crop_from_frame`` out of ``frame`` (bilinear).

    Pixels outside the frame take ``border_value``.
    """
    return cv2.warpAffine(frame, np.ascontiguousarray(crop_from_frame[:2]), (out_size, out_size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


# --------------------------------------------------------------------------------------
# Warp + alpha composite
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PreparedAccessory:
    """An accessory prepared once for fast compositing.

    Attributes:
        premul: (h, w, 4) uint8, colour premultiplied by alpha, alpha in channel 3, in the
            frame's channel order. Premultiplying before the bilinear warp keeps the
            transparent pixels' colour from bleeding into the edges.
        corners_xy: (4, 2) corners of the whole accessory image, for the footprint.
    """

    premul: np.ndarray
    corners_xy: np.ndarray

    @staticmethod
    def from_rgba(image_rgba: np.ndarray, to_bgr: bool = True) -> "PreparedAccessory":
        """Prepare an RGBA uint8 image; ``to_bgr`` swaps colour to OpenCV frame order."""
        img = np.asarray(image_rgba)
        if img.ndim != 3 or img.shape[2] != 4 or img.dtype != np.uint8:
            raise ValueError(f"accessory image must be (h, w, 4) uint8 RGBA, got {img.shape} {img.dtype}")
        colour = img[..., [2, 1, 0]] if to_bgr else img[..., :3]
        alpha = img[..., 3:4].astype(np.uint16)
        premul = np.empty_like(img)
        premul[..., :3] = ((colour.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
        premul[..., 3] = img[..., 3]
        h, w = img.shape[:2]
        corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
        return PreparedAccessory(premul=np.ascontiguousarray(premul), corners_xy=corners)


def footprint_box(frame_from_fg: np.ndarray, corners_xy: np.ndarray, frame_wh: tuple[int, int]
                  ) -> tuple[int, int, int, int] | None:
    """Integer box (x0, y0, x1, y1), exclusive end, of the warped quad clipped to the frame.

    Returns None when the quad is entirely outside the frame, or when a corner maps
    behind the camera (w <= 0), in which case the warp is not drawable.
    """
    hom = np.concatenate([corners_xy, np.ones((4, 1))], axis=1) @ frame_from_fg.T
    if np.any(hom[:, 2] <= 1e-9) or not np.all(np.isfinite(hom)):
        return None
    pts = hom[:, :2] / hom[:, 2:3]
    # One pixel of margin: bilinear sampling reaches half a pixel beyond the corners.
    x0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + 2, frame_wh[0])
    y1 = min(int(np.ceil(pts[:, 1].max())) + 2, frame_wh[1])
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def composite_roi(frame: np.ndarray, acc: PreparedAccessory, frame_from_fg: np.ndarray) -> tuple[int, int, int, int] | None:
    """Warp the accessory into ``frame`` and alpha-composite it **in place**, ROI only.

    Only the bounding box of the warped quad is touched: ``cv2.warpPerspective`` writes a
    box-sized patch (the homography is pre-translated by the box origin), and the blend
    out = premul + bg * (255 - a) / 255 runs in uint8 with OpenCV's saturating, rounding
    arithmetic.

    Args:
        frame: (H, W, 3) uint8, same channel order as ``acc.premul``; modified in place.
        acc: the prepared accessory.
        frame_from_fg: 3x3 homography from accessory pixels to frame pixels.

    Returns:
        The box (x0, y0, x1, y1) that was composited, or None if nothing was drawn.
    """
    h, w = frame.shape[:2]
    box = footprint_box(frame_from_fg, acc.corners_xy, (w, h))
    if box is None:
        return None
    x0, y0, x1, y1 = box
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    patch = cv2.warpPerspective(acc.premul, shift @ frame_from_fg, (x1 - x0, y1 - y0),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    roi = frame[y0:y1, x0:x1]
    inv_alpha = cv2.cvtColor(255 - patch[..., 3], cv2.COLOR_GRAY2BGR)
    blended = cv2.add(cv2.multiply(roi, inv_alpha, scale=1.0 / 255.0), patch[..., :3])
    roi[...] = blended
    return box


def composite_reference(frame: np.ndarray, acc: PreparedAccessory, frame_from_fg: np.ndarray) -> np.ndarray:
    """Full-frame float32 reference of :func:`composite_roi` (returns a new frame)."""
    h, w = frame.shape[:2]
    warped = cv2.warpPerspective(acc.premul.astype(np.float32), frame_from_fg, (w, h),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a = warped[..., 3:4] / 255.0
    out = warped[..., :3] + frame.astype(np.float32) * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def warp_mask(frame_from_fg: np.ndarray, alpha: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    """Warp an accessory alpha (h, w) uint8/float into a target of ``out_wh`` (float32 0..1)."""
    a = np.asarray(alpha, dtype=np.float32)
    if a.max() > 1.0:
        a = a / 255.0
    return cv2.warpPerspective(a, frame_from_fg, out_wh, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
