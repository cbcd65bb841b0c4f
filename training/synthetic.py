"""Synthetic STRAT-format data: procedurally drawn people with accessories placed by construction.

For tests, CI and smoke-training without any photo. Each sample is a face (glasses, hat) or
an upper body (tie) drawn with OpenCV polygons, with the variation a network has to read
from the pixels: position, scale, in-plane roll, yaw (facial features slide across the
head and are foreshortened), skin / hair / clothing colours, textured backgrounds, light
direction and noise. The accessory (:func:`realtime.procedural.generate_accessory`, a
random style and seed) is placed BY CONSTRUCTION from the same 3-D head / torso model
that drew the person:

* glasses: a plane just in front of the eyes, centred on the nose bridge, as wide as the
  face (temple to temple), lens centres at eye level; roll rotates it and yaw turns it
  (perspective squeeze);
* hat: bottom edge on the forehead, width a per-style multiple of the head width;
* necktie: knot at the collar, under the chin, length down to about the belt;
  bow tie: centred on the collar, a little wider than the neck.

The background image is the person WITHOUT the accessory (as in STRAT), the composite is
stored for inspection, and the parsing map is drawn with the same polygons, using our
class ids (``realtime.config.FACE_CLASSES`` / ``BODY_CLASSES``).

Deterministic by seed: sample ``i`` of split ``s`` draws from its own random stream
``(seed, crc32(category/split), i)``, so any sample can be regenerated alone and an
interrupted run resumes with identical output.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from realtime.accessories import Accessory
from realtime.config import BODY_CLASSES, FACE_CLASSES, category_input_size, check_category
from realtime.procedural import STYLES, generate_accessory
from training.strat import StratWriter, composite_sample, read_dataset_meta

log = logging.getLogger(__name__)

GENERATOR_NAME = "training.synthetic"
GENERATOR_VERSION = 1
#: Distinct procedural seeds per accessory style. Accessories are cached per (style, seed):
#: drawing one costs ~50 ms, a whole synthetic sample ~5 ms. 48 seeds x 4-6 styles gives
#: 190-290 distinct accessories per category, more than enough variety for 2000 samples.
ACCESSORY_SEEDS = 48
#: Margin (px at network size) the final quad must keep from the image border.
BORDER_MARGIN_PX = 2.0
#: Tries at drawing scene parameters whose accessory quad fits the image before giving up.
MAX_PLACEMENT_TRIES = 50

_F = {name: i for i, name in enumerate(FACE_CLASSES)}
_B = {name: i for i, name in enumerate(BODY_CLASSES)}
#: Head-part -> class id for face images, and for body images (every head part is "head").
_FACE_PARTS = {p: _F[p] for p in ("hair", "skin", "eyes", "eyebrows", "nose", "mouth", "ears", "neck", "glasses")}
_BODY_HEAD_PARTS = {p: _B["head"] for p in _FACE_PARTS}

# Palettes (RGB). Skin tones span light to dark; hair black / brown / blond / red / grey.
_SKIN = ((255, 224, 196), (241, 194, 167), (234, 182, 150), (224, 172, 138), (198, 134, 98), (176, 120, 86),
         (141, 92, 62), (110, 72, 48), (84, 54, 38))
_HAIR = ((18, 16, 16), (40, 28, 22), (70, 46, 28), (105, 70, 40), (150, 110, 66), (205, 170, 115),
         (140, 62, 30), (150, 150, 150), (225, 222, 215))
_IRIS = ((62, 40, 25), (95, 62, 32), (55, 90, 140), (70, 100, 62), (30, 30, 30))
_SHIRT = ((245, 245, 245), (225, 232, 245), (190, 215, 240), (240, 225, 225), (230, 230, 205), (170, 175, 185))
_JACKET = ((30, 32, 40), (45, 50, 70), (70, 70, 75), (90, 75, 60), (40, 55, 45), (120, 120, 125), (25, 25, 28))

#: Hat placement per style: (bottom edge as a fraction of the head half-height b above the
#: head centre, (min, max) bbox width as a multiple of the head width 2a). Chosen by eye so
#: the brim / band sits on the forehead and the crown covers the top of the head.
_HAT_FIT: dict[str, tuple[float, tuple[float, float]]] = {
    "cap": (0.40, (1.05, 1.20)), "fedora": (0.45, (1.30, 1.50)), "beanie": (0.38, (1.00, 1.12)),
    "top_hat": (0.48, (1.25, 1.45)), "sun_hat": (0.40, (1.60, 1.90)), "bucket": (0.42, (1.20, 1.35)),
}


@dataclass
class SyntheticSample:
    """One generated tuple, in memory.

    Attributes:
        background: (S, S, 3) uint8 RGB, the person without the accessory.
        foreground: (h, w, 4) uint8 RGBA accessory image.
        init_vertex: (4, 2) accessory corners in foreground pixels, TL TR BR BL.
        final_vertex: (4, 2) their targets in background pixels.
        parsing: (S, S) uint8 class ids (face or body classes).
        composite: (S, S, 3) uint8 RGB ground-truth composite.
        info: scene parameters (accessory name, yaw, roll, ...), JSON-able.
    """

    background: np.ndarray
    foreground: np.ndarray
    init_vertex: np.ndarray
    final_vertex: np.ndarray
    parsing: np.ndarray
    composite: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------

class _Canvas:
    """An RGB image and its label map, drawn together (anti-aliased colour, crisp labels)."""

    def __init__(self, image: np.ndarray, labels: np.ndarray) -> None:
        self.img = image
        self.lab = labels

    @staticmethod
    def _fix(pts_xy: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(pts_xy, dtype=np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)

    def fill(self, pts_xy: np.ndarray, color: tuple[float, ...], cls: int | None = None) -> None:
        p = self._fix(pts_xy)
        cv2.fillPoly(self.img, [p], _c(color), cv2.LINE_AA, shift=4)
        if cls is not None:
            cv2.fillPoly(self.lab, [p], int(cls), cv2.LINE_8, shift=4)

    def line(self, pts_xy: np.ndarray, color: tuple[float, ...], thickness: float, cls: int | None = None) -> None:
        p = self._fix(pts_xy)
        t = max(1, int(round(thickness)))
        cv2.polylines(self.img, [p], False, _c(color), t, cv2.LINE_AA, shift=4)
        if cls is not None:
            cv2.polylines(self.lab, [p], False, int(cls), t, cv2.LINE_8, shift=4)


def _c(color: tuple[float, ...]) -> tuple[int, int, int]:
    return tuple(int(np.clip(round(v), 0, 255)) for v in color[:3])  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, color: tuple[float, ...], amount: float = 10.0) -> tuple[float, float, float]:
    return tuple(float(np.clip(v + rng.normal(0.0, amount), 0, 255)) for v in color)  # type: ignore[return-value]


def _mix(c1: tuple[float, ...], c2: tuple[float, ...], t: float) -> tuple[float, float, float]:
    return tuple((1 - t) * a + t * b for a, b in zip(c1, c2))  # type: ignore[return-value]


def _scale(color: tuple[float, ...], k: float) -> tuple[float, float, float]:
    return tuple(v * k for v in color)  # type: ignore[return-value]


def _pick(rng: np.random.Generator, seq: tuple) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _rot(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured backdrop: a colour gradient, low-frequency noise, and sometimes a few blocks."""
    s = size
    c0 = rng.uniform(20, 235, 3)
    c0 = c0.mean() + (c0 - c0.mean()) * rng.uniform(0.15, 1.0)  # mostly muted colours
    c1 = np.clip(c0 + rng.normal(0, 50, 3), 0, 255)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / max(s - 1, 1)
    t = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5) + 0.5)[..., None]
    img = c0 * (1 - t) + c1 * t
    k = int(rng.integers(3, 9))
    noise = cv2.resize(rng.normal(0, 1, (k, k, 3)).astype(np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
    img = img + noise * rng.uniform(5, 30)
    if rng.random() < 0.5:  # furniture / door / window blocks
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = rng.uniform(-0.2, 0.9, 2) * s
            w, h = rng.uniform(0.1, 0.6, 2) * s
            col = np.clip(c0 + rng.normal(0, 60, 3), 0, 255)
            x0i, y0i = int(max(x0, 0)), int(max(y0, 0))
            img[y0i:int(max(y0 + h, 0)), x0i:int(max(x0 + w, 0))] = col
    return np.clip(img, 0, 255).astype(np.uint8)


def _finish(rng: np.random.Generator, canvas: _Canvas, bg_class: int, light_px: float) -> np.ndarray:
    """Shade the person (light from one side), add a global light ramp, noise and a slight blur."""
    img = canvas.img.astype(np.float32)
    s = img.shape[0]
    person = (canvas.lab != bg_class).astype(np.float32)
    d = rng.normal(0, 1, 2)
    d = d / (np.linalg.norm(d) + 1e-9) * light_px
    shifted = cv2.warpAffine(person, np.float32([[1, 0, d[0]], [0, 1, d[1]]]), (s, s))
    sigma = max(light_px, 1.0)
    shade = cv2.GaussianBlur(shifted, (0, 0), sigma)
    strength = rng.uniform(0.15, 0.35)
    img *= (1 - person * strength * (1 - shade))[..., None]
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / max(s - 1, 1)
    ramp = np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)
    img *= (1 + rng.uniform(0.0, 0.35) * ramp)[..., None]
    img *= rng.uniform(0.8, 1.15)  # exposure
    img += rng.normal(0, rng.uniform(1.0, 5.0), img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.8) * s / 224)
    return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# The head model
# --------------------------------------------------------------------------------------

class _Head:
    """A head as an ellipsoid (half-width a, half-height b) turned by yaw, then rolled and placed.

    Also used for the torso (a = shoulder half-width), whose front carries the tie.
    Head coordinates: X right, Y down, Z toward the camera, origin at the head centre.
    Image = centre + R(roll) @ (persp * rotY(yaw) @ p), weak perspective with focal 8a.
    """

    def __init__(self, center_xy: tuple[float, float], a: float, b: float, yaw_deg: float, roll_deg: float,
                 focal: float | None = None) -> None:
        self.c = np.asarray(center_xy, dtype=np.float64)
        self.a, self.b = a, b
        self.yaw_deg, self.roll_deg = float(yaw_deg), float(roll_deg)
        self.yaw = math.radians(yaw_deg)
        self.R = _rot(roll_deg)
        self.focal = 8.0 * a if focal is None else focal

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) head-frame points -> (N, 2) image points."""
        p = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        x = p[:, 0] * cy + p[:, 2] * sy
        z = p[:, 2] * cy - p[:, 0] * sy
        s = self.focal / (self.focal - z)
        return (np.stack([x * s, p[:, 1] * s], axis=1)) @ self.R.T + self.c

    def flat(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) silhouette points (not yawed: an ellipsoid's outline keeps its width) -> image."""
        return np.asarray(xy, dtype=np.float64).reshape(-1, 2) @ self.R.T + self.c

    def radius(self, v: np.ndarray | float) -> np.ndarray:
        """Horizontal cross-section radius at height v."""
        return self.a * np.sqrt(np.clip(1.0 - (np.asarray(v, dtype=np.float64) / self.b) ** 2, 0.05, 1.0))

    def surf(self, phi: np.ndarray, v: np.ndarray, lift: np.ndarray | float = 1.0) -> np.ndarray:
        """Points on the head surface at azimuth ``phi`` (0 = front) and height ``v``."""
        phi, v = np.broadcast_arrays(np.asarray(phi, dtype=np.float64), np.asarray(v, dtype=np.float64))
        r = self.radius(v) * lift
        return self.project(np.stack([r * np.sin(phi), v, r * np.cos(phi)], axis=-1))

    def patch(self, phi0: float, v0: float, du: np.ndarray, dv: np.ndarray, lift: float = 1.0) -> np.ndarray:
        """A small shape given in surface units (px) around (phi0, v0), wrapped on the head."""
        return self.surf(phi0 + np.asarray(du) / self.radius(v0), v0 + np.asarray(dv), lift)

    def facing(self, phi: float) -> float:
        """cos of the angle between a surface point's normal and the view: <0 = turned away."""
        return math.cos(phi + self.yaw)

    def outline(self, scale: float = 1.0, n: int = 64) -> np.ndarray:
        """Head silhouette: an ellipse narrowing toward the chin."""
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        x = self.a * scale * np.cos(t) * (1 - 0.14 * np.clip(np.sin(t), 0, None) ** 2)
        y = self.b * scale * np.sin(t)
        return self.flat(np.stack([x, y], axis=1))


def _almond(w: float, h_up: float, h_down: float, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    u = np.linspace(-1, 1, n)
    top = -h_up * (1 - u ** 2) ** 0.8
    bot = h_down * (1 - u ** 2) ** 0.8
    return np.concatenate([u, u[::-1]]) * w, np.concatenate([top, bot[::-1]])


def _ellipse_pts(w: float, h: float, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return w * np.cos(t), h * np.sin(t)


@dataclass
class _Face:
    """Parameters of one drawn head, and where its landmarks are (head units)."""

    head: _Head
    v_eye: float
    phi_eye: float
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]


def _draw_head(rng: np.random.Generator, cv: _Canvas, face: _Face, parts: dict[str, int], long_hair_to: float,
               neck_to: float, allow_glasses: bool = False) -> None:
    """Draw hair, ears, neck, face and features of ``face`` (landmarks fixed by the caller)."""
    head, v_eye, phi_eye, skin, hair = face.head, face.v_eye, face.phi_eye, face.skin, face.hair
    a, b = head.a, head.b
    hair_style = _pick(rng, ("short", "short", "long", "bald", "bun"))
    v_hair = -b * rng.uniform(0.42, 0.58)
    # Long hair behind the head and shoulders.
    if hair_style == "long":
        w = a * rng.uniform(1.05, 1.3)
        t = np.linspace(np.pi, 2 * np.pi, 24)  # the top half of a wider ellipse, then straight down
        crown = np.stack([w * np.cos(t), b * 1.06 * np.sin(t)], axis=1)
        pts = np.concatenate([[[-w * 1.05, long_hair_to]], crown, [[w * 1.05, long_hair_to]]])
        cv.fill(head.flat(pts), _scale(hair, 0.9), parts["hair"])
    if hair_style == "bun":
        bun = head.flat(np.stack(_ellipse_pts(a * 0.45, a * 0.38), axis=1) + [0, -b * 1.05])
        cv.fill(bun, hair, parts["hair"])
    # Ears (behind the head outline, so only the protruding part shows).
    for side in (-1.0, 1.0):
        ex = side * (a * math.cos(head.yaw) + a * 0.07)
        pts = np.stack(_ellipse_pts(a * 0.13, b * 0.17), axis=1) + [ex, v_eye + b * 0.12]
        cv.fill(head.flat(pts), _scale(skin, 0.9), parts["ears"])
    # Neck.
    nx = a * 0.25 * math.sin(head.yaw)
    neck = head.flat([[nx - 0.42 * a, 0.5 * b], [nx + 0.42 * a, 0.5 * b], [nx + 0.46 * a, neck_to],
                      [nx - 0.46 * a, neck_to]])
    cv.fill(neck, _scale(skin, 0.82), parts["neck"])
    # Face.
    cv.fill(head.outline(), skin, parts["skin"])
    # Hair cap above the hairline (follows the yawed face).
    if hair_style != "bald":
        top = head.outline(1.05, 64)[32:]  # upper half: angles pi..2pi
        phi = np.linspace(np.pi / 2 - head.yaw, -np.pi / 2 - head.yaw, 24)
        vh = v_hair + b * 0.1 * (np.abs(np.sin(phi)) ** 1.5) * rng.uniform(0.5, 1.5)
        line = head.surf(phi, vh)
        cv.fill(np.concatenate([top, line]), hair, parts["hair"])
    elif rng.random() < 0.5:  # receding: a little hair at the sides
        for side in (-1.0, 1.0):
            pts = head.flat([[side * a * 1.02, -0.2 * b], [side * a * 0.85, -0.55 * b], [side * a * 0.8, 0.1 * b]])
            cv.fill(pts, hair, parts["hair"])
    # Eyebrows, eyes, nose, mouth; only where the surface faces the camera.
    brow_col = _scale(hair, 0.7) if hair_style != "bald" else _scale(skin, 0.45)
    iris = _jitter(rng, _pick(rng, _IRIS), 6)
    gaze = rng.uniform(-0.3, 0.3)
    eye_w, eye_h = a * rng.uniform(0.12, 0.16), a * rng.uniform(0.045, 0.07)
    for side in (-1.0, 1.0):
        phi = side * phi_eye
        if head.facing(phi) < 0.12:
            continue
        du, dv = _almond(eye_w * 1.15, a * rng.uniform(0.03, 0.05), a * 0.025)
        cv.fill(head.patch(phi, v_eye - b * rng.uniform(0.15, 0.19), du, dv - a * 0.02), brow_col, parts["eyebrows"])
        du, dv = _almond(eye_w, eye_h, eye_h * 0.8)
        cv.fill(head.patch(phi, v_eye, du, dv), (240, 238, 232), parts["eyes"])
        du, dv = _ellipse_pts(eye_h * 0.95, eye_h * 0.95, 16)
        cv.fill(head.patch(phi, v_eye, du + gaze * eye_w, dv, 1.01), iris)
        du, dv = _ellipse_pts(eye_h * 0.4, eye_h * 0.4, 10)
        cv.fill(head.patch(phi, v_eye, du + gaze * eye_w, dv, 1.01), (15, 12, 12))
        du, dv = _almond(eye_w, eye_h, eye_h * 0.8)
        cv.line(head.patch(phi, v_eye, du[:16], dv[:16], 1.01), _scale(skin, 0.35), max(1.0, a / 40))
    v_nose = v_eye + b * rng.uniform(0.28, 0.36)
    nose_w = a * rng.uniform(0.09, 0.14)
    # Lift the nose off the surface: the tip sticks out 15-20% of a (depth-dependent shift with yaw).
    lifts = np.array([1.03, 1.05, 1.18, 1.05])
    phis = np.array([0.0, -nose_w / head.radius(v_nose), 0.0, nose_w / head.radius(v_nose)])
    nose = head.surf(phis, np.array([v_eye + 0.05 * b, v_nose, v_nose + 0.03 * b, v_nose]), lifts)
    cv.fill(nose, _scale(skin, 0.86), parts["nose"])
    for side in (-1.0, 1.0):
        du, dv = _ellipse_pts(nose_w * 0.35, b * 0.018, 10)
        cv.fill(head.patch(side * nose_w * 0.55 / head.radius(v_nose), v_nose + 0.02 * b, du, dv, 1.06),
                _scale(skin, 0.5))
    v_mouth = v_nose + b * rng.uniform(0.17, 0.24)
    lip = _mix(_scale(skin, 0.8), (170, 50, 60), rng.uniform(0.2, 0.5))
    du, dv = _almond(a * rng.uniform(0.22, 0.3), a * rng.uniform(0.04, 0.07), a * rng.uniform(0.05, 0.09))
    cv.fill(head.patch(0.0, v_mouth, du, dv), lip, parts["mouth"])
    cv.line(head.patch(0.0, v_mouth, du[:16] * 0.95, np.full(16, a * 0.005)), _scale(lip, 0.45), max(1.0, a / 50))
    if allow_glasses and rng.random() < 0.15:  # a plain pair drawn into the person (labelled glasses)
        r = eye_w * 1.5
        frame_col = _jitter(rng, (30, 30, 35), 15)
        for side in (-1.0, 1.0):
            du, dv = _ellipse_pts(r, r * 0.75, 24)
            ring = head.patch(side * phi_eye, v_eye, du, dv, 1.1)
            cv.line(np.concatenate([ring, ring[:1]]), frame_col, max(1.0, a / 35), parts["glasses"])
        cv.line(head.surf(np.array([-phi_eye * 0.45, phi_eye * 0.45]), np.array([v_eye, v_eye]), 1.12),
                frame_col, max(1.0, a / 35), parts["glasses"])


def _random_face(rng: np.random.Generator, head: _Head) -> _Face:
    return _Face(head=head, v_eye=-head.b * rng.uniform(0.02, 0.12), phi_eye=rng.uniform(0.36, 0.44),
                 skin=_jitter(rng, _pick(rng, _SKIN), 8), hair=_jitter(rng, _pick(rng, _HAIR), 8))


# --------------------------------------------------------------------------------------
# Accessories and placement
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4 * ACCESSORY_SEEDS * 6)
def _pool_accessory(category: str, style: str, seed: int) -> Accessory:
    acc = generate_accessory(category, style, seed)
    acc.rgba.setflags(write=False)
    return acc


def _pick_accessory(rng: np.random.Generator, category: str) -> tuple[Accessory, str, np.ndarray, np.ndarray]:
    """A pooled accessory, sometimes padded with transparent margins (varies init_vertex).

    Returns:
        The accessory, its style, the foreground RGBA image and its init quad (TL TR BR BL).
    """
    style = _pick(rng, STYLES[category])
    acc = _pool_accessory(category, style, int(rng.integers(ACCESSORY_SEEDS)))
    rgba = acc.rgba
    init = acc.init_vertex_xy.astype(np.float64)
    if rng.random() < 0.5:
        h, w = rgba.shape[:2]
        pads = (rng.uniform(0, 0.25, 4) * np.array([w, h, w, h])).astype(int)  # left, top, right, bottom
        rgba = cv2.copyMakeBorder(rgba, int(pads[1]), int(pads[3]), int(pads[0]), int(pads[2]),
                                  cv2.BORDER_CONSTANT, value=(0, 0, 0, 0))
        init = init + pads[:2]
    return acc, style, np.ascontiguousarray(rgba), init


def _bbox_wh(init: np.ndarray) -> tuple[float, float]:
    return float(init[1, 0] - init[0, 0]), float(init[3, 1] - init[0, 1])


def _inside(quad: np.ndarray, size: int) -> bool:
    m = BORDER_MARGIN_PX
    return bool(np.all(quad >= m) and np.all(quad <= size - 1 - m))


def _glasses_quad(face: _Face, init: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    head = face.head
    w_bb, h_bb = _bbox_wh(init)
    # Temple to temple; the perspective (focal 8a) already magnifies the front plane by ~1.14.
    width = 2 * head.radius(face.v_eye) * rng.uniform(0.84, 0.98)
    height = width * h_bb / w_bb
    yc = face.v_eye + height * rng.uniform(0.0, 0.12)  # lens centres a little below the bbox centre
    z = head.radius(face.v_eye) * rng.uniform(0.98, 1.05)  # just in front of the eyes
    x0, x1, y0, y1 = -width / 2, width / 2, yc - height / 2, yc + height / 2
    return head.project(np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]]))


def _hat_quad(face: _Face, init: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    head = face.head
    bottom_frac, (wmin, wmax) = _HAT_FIT[style]
    w_bb, h_bb = _bbox_wh(init)
    width = 2 * head.a * rng.uniform(wmin, wmax)
    height = width * h_bb / w_bb
    y1 = -head.b * (bottom_frac + rng.uniform(-0.06, 0.06))
    z = 0.3 * head.a
    dx = rng.uniform(-0.04, 0.04) * head.a
    corners = np.array([[dx - width / 2, y1 - height, z], [dx + width / 2, y1 - height, z],
                        [dx + width / 2, y1, z], [dx - width / 2, y1, z]])
    # A hat is round: turning the head narrows it much less than a flat plane would.
    return _Head(tuple(head.c), head.a, head.b, head.yaw_deg * 0.5, head.roll_deg).project(corners)


# --------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------

def _face_scene(rng: np.random.Generator, category: str, size: int) -> SyntheticSample:
    s = float(size)
    acc, style, fg, init = _pick_accessory(rng, category)
    for _ in range(MAX_PLACEMENT_TRIES):
        if category == "glasses":
            a = s * rng.uniform(0.2, 0.3)
            cxy = (s * (0.5 + rng.uniform(-0.12, 0.12)), s * (0.5 + rng.uniform(-0.1, 0.1)))
        else:
            a = s * rng.uniform(0.15, 0.23)
            cxy = (s * (0.5 + rng.uniform(-0.12, 0.12)), s * rng.uniform(0.52, 0.68))
        b = a * rng.uniform(1.25, 1.4)
        head = _Head(cxy, a, b, rng.uniform(-35, 35), rng.uniform(-25, 25))
        face = _random_face(rng, head)
        quad = _glasses_quad(face, init, rng) if category == "glasses" else _hat_quad(face, init, style, rng)
        if _inside(quad, size):
            break
    else:
        raise RuntimeError(f"could not place a {category} inside a {size}px image in {MAX_PLACEMENT_TRIES} tries")
    img = _background(rng, size)
    cv = _Canvas(img, np.full((size, size), _F["background"], np.uint8))
    # Clothing at the bottom: shoulders under the neck, rolled a third as much as the head.
    body_R = _rot(head.roll_deg / 3)
    ys = b * rng.uniform(1.3, 1.5)
    ws = a * rng.uniform(1.9, 2.5)
    bx = a * 0.25 * math.sin(head.yaw)
    cloth = np.array([[bx - ws, 4 * b], [bx - ws * 0.98, ys + 0.5 * a], [bx - ws * 0.7, ys], [bx - 0.55 * a, ys - 0.1 * a],
                      [bx, ys + a * rng.uniform(0.25, 0.6)], [bx + 0.55 * a, ys - 0.1 * a], [bx + ws * 0.7, ys],
                      [bx + ws * 0.98, ys + 0.5 * a], [bx + ws, 4 * b]])
    _draw_head(rng, cv, face, _FACE_PARTS, long_hair_to=ys + a, neck_to=ys + a, allow_glasses=category == "hat")
    cv.fill(cloth @ body_R.T + head.c, _jitter(rng, tuple(rng.uniform(20, 235, 3)), 0), _F["clothing"])
    background = _finish(rng, cv, _F["background"], light_px=0.12 * a)
    info = {"accessory": acc.name, "yaw_deg": round(head.yaw_deg, 2), "roll_deg": round(head.roll_deg, 2),
            "head_halfwidth_px": round(a, 2)}
    return SyntheticSample(background, fg, init, quad, cv.lab, composite_sample(background, fg, init, quad), info)


def _tie_scene(rng: np.random.Generator, size: int) -> SyntheticSample:
    s = float(size)
    acc, style, fg, init = _pick_accessory(rng, "tie")
    bow = style == "bow_tie"
    w_bb, h_bb = _bbox_wh(init)
    for _ in range(MAX_PLACEMENT_TRIES):
        ws = s * rng.uniform(0.2, 0.34)  # shoulder half-width
        a = ws * rng.uniform(0.36, 0.44)  # head half-width
        b = a * rng.uniform(1.25, 1.38)
        cx = s * (0.5 + rng.uniform(-0.1, 0.1))
        y_sh = s * rng.uniform(0.3, 0.45)
        yaw = rng.uniform(-30, 30)
        roll = rng.uniform(-8, 8)
        torso_len = 2 * ws * rng.uniform(1.05, 1.3)
        neck_len = a * rng.uniform(0.4, 0.65)
        tie_frac = rng.uniform(0.8, 0.95)
        bow_w = 2 * 0.45 * a * rng.uniform(1.3, 1.8)
        # The torso as a cylinder of depth d around the shoulder-centre; the tie lies on its front.
        body = _Head((cx, y_sh), ws, torso_len, yaw, roll)
        d = 0.5 * ws
        collar_y = 0.05 * a
        if bow:
            width, height = bow_w, bow_w * h_bb / w_bb
            y0, y1 = collar_y - height / 2, collar_y + height / 2
        else:
            length = torso_len * tie_frac
            width = length * w_bb / h_bb
            y0, y1 = collar_y - 0.12 * a, collar_y - 0.12 * a + length
        quad = body.project(np.array([[-width / 2, y0, d], [width / 2, y0, d], [width / 2, y1, d], [-width / 2, y1, d]]))
        if _inside(quad, size):
            break
    else:
        raise RuntimeError(f"could not place a tie inside a {size}px image in {MAX_PLACEMENT_TRIES} tries")
    img = _background(rng, size)
    cv = _Canvas(img, np.full((size, size), _B["background"], np.uint8))
    # Silhouette: rounded shoulders, slight taper to the waist, then trousers.
    sq = 0.8 + 0.2 * math.cos(body.yaw)  # the torso looks a bit narrower when turned
    wsx = ws * sq
    waist = torso_len
    jacket = rng.random() < 0.6
    shirt = _jitter(rng, _pick(rng, _SHIRT), 6)
    top_col = _jitter(rng, _pick(rng, _JACKET), 10) if jacket else shirt
    if rng.random() < 0.3 and not jacket:
        shirt = top_col = _jitter(rng, tuple(rng.uniform(60, 235, 3)), 0)
    pants = _jitter(rng, _pick(rng, _JACKET), 12)
    short_sleeves = (not jacket) and rng.random() < 0.35
    skin = _jitter(rng, _pick(rng, _SKIN), 8)
    # Arms (behind the torso's edge): sleeve (upper), bare forearm / hand (arms).
    for side in (-1.0, 1.0):
        sh = np.array([side * wsx * 0.92, 0.12 * ws])
        out = np.array([side * wsx * rng.uniform(1.0, 1.12), waist * 1.05])
        arm_w = ws * 0.3
        upper_end = sh + (out - sh) * (0.45 if short_sleeves else 1.0)
        perp = np.array([-(out - sh)[1], (out - sh)[0]]) / (np.linalg.norm(out - sh) + 1e-9) * arm_w / 2
        cv.fill(body.flat([sh - perp, sh + perp, upper_end + perp, upper_end - perp]),
                _scale(top_col, 0.92), _B["upper"])
        if short_sleeves:
            cv.fill(body.flat([upper_end - perp * 0.8, upper_end + perp * 0.8, out + perp * 0.7, out - perp * 0.7]),
                    _scale(skin, 0.92), _B["arms"])
        hand = np.stack(_ellipse_pts(arm_w * 0.42, arm_w * 0.6, 16), axis=1) + out + [0, arm_w * 0.5]
        cv.fill(body.flat(hand), _scale(skin, 0.92), _B["arms"])
    # Trousers below the waist.
    cv.fill(body.flat([[-wsx * 0.85, waist - 0.05 * ws], [wsx * 0.85, waist - 0.05 * ws], [wsx * 0.9, 3 * s],
                       [-wsx * 0.9, 3 * s]]), pants, _B["lower"])
    t = np.linspace(np.pi, 1.5 * np.pi, 8)
    shoulder_l = np.stack([-wsx + 0.35 * ws * (1 + np.cos(t)), 0.35 * ws * (1 + np.sin(t))], axis=1)
    shoulder_r = shoulder_l[::-1] * [-1, 1]
    torso = np.concatenate([[[-wsx * 0.86, waist]], shoulder_l, shoulder_r, [[wsx * 0.86, waist]]])
    cv.fill(body.flat(torso), top_col, _B["upper"])
    # Neck and head above the collar (the head drawn with every part labelled "head").
    front = body.project(np.array([[0.0, 0.0, d]]))[0]  # collar point on the chest's front line
    head_c = body.flat([[0.0, 0.0]])[0] + (front - body.flat([[0.0, 0.0]])[0]) * 0.6
    head_c = head_c + body.R @ np.array([0.0, -(neck_len + 0.85 * b)])
    head = _Head(tuple(head_c), a, b, yaw * rng.uniform(0.8, 1.2), roll + rng.uniform(-10, 10))
    _draw_head(rng, cv, _random_face(rng, head), _BODY_HEAD_PARTS, long_hair_to=b * 1.6,
               neck_to=0.85 * b + neck_len + 0.3 * a)
    # Shirt front (covers the bottom of the neck): with a jacket, the V between the lapels.
    nw = 0.45 * a
    v_depth = torso_len * rng.uniform(0.35, 0.55)
    shirt_v = body.project(np.array([[-nw * 1.6, -0.05 * a, d], [nw * 1.6, -0.05 * a, d], [0.0, v_depth, d]]))
    cv.fill(shirt_v, shirt, _B["upper"])
    if jacket:
        for side in (-1.0, 1.0):
            lapel = body.project(np.array([[side * nw * 1.6, -0.05 * a, d], [side * nw * 2.3, 0.1 * ws, d],
                                           [0.0, v_depth, d]]))
            cv.fill(lapel, _scale(top_col, 0.8), _B["upper"])
    else:  # a button line
        cv.line(body.project(np.array([[0.0, 0.3 * a, d], [0.0, torso_len, d]])), _scale(shirt, 0.85),
                max(1.0, s / 400), _B["upper"])
    collar_col = _scale(shirt, 0.97)
    for side in (-1.0, 1.0):
        flap = body.project(np.array([[side * nw * 1.15, -0.35 * a, d], [side * 0.05 * a, 0.05 * a + 0.25 * a, d],
                                      [side * nw * 1.9, 0.2 * a, d]]))
        cv.fill(flap, collar_col, _B["upper"])
        cv.line(flap, _scale(shirt, 0.7), max(1.0, s / 450))
    background = _finish(rng, cv, _B["background"], light_px=0.1 * ws)
    info = {"accessory": acc.name, "yaw_deg": round(yaw, 2), "roll_deg": round(roll, 2), "jacket": bool(jacket),
            "shoulder_halfwidth_px": round(ws, 2)}
    return SyntheticSample(background, fg, init, quad, cv.lab, composite_sample(background, fg, init, quad), info)


def sample_rng(seed: int, category: str, split: str, index: int) -> np.random.Generator:
    """The random stream of one sample (independent of every other sample)."""
    return np.random.default_rng([int(seed), zlib.crc32(f"{category}/{split}".encode()), int(index)])


def render_sample(category: str, size: int | None = None, rng: np.random.Generator | None = None) -> SyntheticSample:
    """Draw one synthetic sample in memory.

    Args:
        category: ``glasses``, ``hat`` or ``tie``.
        size: square image size (default: the category's network size, 224 / 448).
        rng: random stream (default: a fresh unseeded generator).
    """
    check_category(category)
    size = int(size or category_input_size(category))
    if size < 32:
        raise ValueError(f"synthetic size must be >= 32 px, got {size}")
    rng = rng if rng is not None else np.random.default_rng()
    return _tie_scene(rng, size) if category == "tie" else _face_scene(rng, category, size)


def make_synthetic(category: str, n: int, size: int | None, out_dir: str | Path, seed: int = 0,
                   split: str = "train", progress: bool = True,
                   on_sample: Callable[[int], None] | None = None) -> Path:
    """Write ``n`` synthetic samples as the STRAT split ``out_dir/<split>`` (resumable).

    Sample ids are ``{split}_{index:06d}``; ids already present are kept (not redrawn), and
    since every sample has its own random stream the result does not depend on interruptions.

    Args:
        category: ``glasses``, ``hat`` or ``tie``.
        n: number of samples.
        size: square image size (None: the category's network size).
        out_dir: dataset root; the split is written to ``out_dir/<split>``.
        seed: base seed.
        split: split name (``train`` / ``test``); also part of the random stream.
        progress: show a tqdm bar.
        on_sample: optional callback after each written sample (its index).

    Returns:
        The split directory.
    """
    check_category(category)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    size = int(size or category_input_size(category))
    split_dir = Path(out_dir) / split
    info = {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, "seed": int(seed), "size": size,
            "split": split, "n": int(n), "accessory_seeds": ACCESSORY_SEEDS}
    earlier = read_dataset_meta(split_dir).get("generator") or {}
    changed = [k for k in ("name", "version", "seed", "size", "accessory_seeds")
               if k in earlier and earlier[k] != info[k]]
    if changed:  # resuming is only for the same settings: mixed sizes or seeds would pass as one dataset
        raise ValueError(f"{split_dir} holds samples made with " + ", ".join(f"{k}={earlier[k]!r}" for k in changed)
                         + "; this run asks " + ", ".join(f"{k}={info[k]!r}" for k in changed)
                         + ": choose another --out, or delete the folder to start over")
    from tqdm import tqdm  # lazy: only the writer needs the bar

    t0 = time.perf_counter()
    with StratWriter(split_dir, category, generator_info=info) as writer:
        todo = [i for i in range(n) if f"{split}_{i:06d}" not in writer]
        if len(todo) < n:
            log.info("%s: %d of %d samples already present, generating %d", split_dir, n - len(todo), n, len(todo))
        for i in tqdm(todo, desc=f"synthetic {category}/{split}", unit="img", disable=not progress or not todo):
            smp = render_sample(category, size, sample_rng(seed, category, split, i))
            writer.add(f"{split}_{i:06d}", smp.background, smp.foreground, smp.init_vertex, smp.final_vertex,
                       parsing=smp.parsing, composite_rgb=smp.composite)
            if on_sample is not None:
                on_sample(i)
    log.info("%s: wrote %d samples in %.1f s", split_dir, len(todo), time.perf_counter() - t0)
    return split_dir


def preview_grid(category: str, count: int = 24, size: int | None = None, seed: int = 0, cols: int = 6,
                 draw_quads: bool = True) -> np.ndarray:
    """RGB grid of ``count`` composites (final quad in green, vertex 0 red), for inspection."""
    size = int(size or category_input_size(category))
    tiles = []
    for i in range(count):
        smp = render_sample(category, size, sample_rng(seed, category, "preview", i))
        tile = smp.composite.copy()
        if draw_quads:
            q = np.round(smp.final_vertex * 16).astype(np.int32)
            cv2.polylines(tile, [q.reshape(-1, 1, 2)], True, (0, 200, 0), 1, cv2.LINE_AA, shift=4)
            cv2.circle(tile, tuple(int(v) for v in np.round(smp.final_vertex[0]).astype(int)), 3, (255, 0, 0), -1)
        tiles.append(tile)
    rows = -(-count // cols)
    while len(tiles) < rows * cols:
        tiles.append(np.full_like(tiles[0], 255))
    return np.vstack([np.hstack(tiles[r * cols:(r + 1) * cols]) for r in range(rows)])
