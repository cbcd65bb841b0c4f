"""Data augmentation that keeps the STRAT vertices consistent with the pixels.

A training sample is a person image (background), an accessory (foreground, RGBA),
the accessory's corners in the foreground (``init_vertex``), their targets in the
background (``final_vertex``) and the background's parsing map. Every geometric change
is applied to the pixels AND to the points through the same matrix:

* **Affine** (scale, shift, small rotation): one matrix ``new_from_old`` built by
  :func:`realtime.geometry.crop_from_box`, applied to the background (bilinear), to the
  parsing map (nearest; pixels from outside the image become ``IGNORE_INDEX``) and to
  ``final_vertex``. The person moves, and where the accessory belongs moves with them.
  The foreground is not moved: it is the accessory as the user supplies it.
* **Horizontal flip** of the WHOLE tuple: background, parsing AND foreground are
  mirrored, and both vertex sets go through
  :func:`realtime.codec.flip_corners_horizontally` (mirror + relabel TL<->TR, BR<->BL).
  Mirroring the ground-truth composite gives a valid composite of the mirrored
  accessory; flipping the background alone would pair a mirrored placement with an
  unmirrored accessory, wrong for any asymmetric accessory (a cap's brim, a logo).
  The pairing init_k <-> final_k is kept because both sets are relabelled alike.
* **Colour jitter** on the background only (brightness, contrast, saturation, hue with
  torchvision ``ColorJitter`` semantics): camera and lighting vary; the accessory's
  colours are its identity.

An affine draw whose ``final_vertex`` would leave the image is redrawn (up to
``max_tries``), then skipped: the heatmap targets need every corner inside.

The paper mentions no augmentation, so the ``paper`` preset turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from realtime.codec import flip_corners_horizontally
from realtime.config import IGNORE_INDEX
from realtime.geometry import crop_from_box, warp_crop, warp_points


@dataclass
class AugmentConfig:
    """Augmentation switches and ranges [I: our choice; the paper has none].

    Attributes:
        enabled: master switch.
        scale: the person is scaled by a factor uniform in [1 - scale, 1 + scale].
        shift: shift uniform in +-shift * S pixels, per axis.
        rotate_deg: rotation uniform in +-rotate_deg degrees (faces tilt a little).
        affine_prob: probability of applying the affine at all.
        flip_prob: probability of the horizontal flip of the whole tuple.
        brightness, contrast, saturation: jitter factors uniform in [1 - v, 1 + v]
            (torchvision ``ColorJitter``).
        hue: hue shift uniform in +-hue turns (torchvision ``ColorJitter``; <= 0.5).
        color_prob: probability of applying the colour jitter.
        max_tries: affine redraws before giving up when a vertex would leave the image.
    """

    enabled: bool = False
    scale: float = 0.15
    shift: float = 0.08
    rotate_deg: float = 10.0
    affine_prob: float = 0.8
    flip_prob: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.03
    color_prob: float = 0.8
    max_tries: int = 5

    def __post_init__(self) -> None:
        if not 0.0 <= self.scale < 1.0:
            raise ValueError(f"augment.scale must be in [0, 1), got {self.scale}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"augment.hue must be in [0, 0.5], got {self.hue}")
        for name in ("affine_prob", "flip_prob", "color_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be a probability, got {getattr(self, name)}")


def random_affine(size: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A random ``new_from_old`` 3x3 affine of an S x S image: scale, rotation, shift.

    Built as a crop of a box of side S / scale around the (shifted) centre, rotated by
    the angle, so it reuses :func:`realtime.geometry.crop_from_box`.
    """
    s = rng.uniform(1.0 - cfg.scale, 1.0 + cfg.scale)
    angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
    dx, dy = rng.uniform(-cfg.shift, cfg.shift, size=2) * size
    c = (size - 1) / 2.0
    return crop_from_box((c + dx, c + dy), size / s, size, angle)


def _inside(pts_xy: np.ndarray, size: int) -> bool:
    return bool(np.all(pts_xy >= 0.0) and np.all(pts_xy <= size - 1))


def color_jitter(image_rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """torchvision-style ColorJitter on an RGB uint8 image, factors drawn from ``rng``.

    Brightness scales the image; contrast blends with the mean grey level; saturation
    blends with the greyscale image; hue rotates the HSV hue. Applied in random order.
    """
    img = image_rgb.astype(np.float32)
    ops = rng.permutation(4)
    b = rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    c = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
    s = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
    h = rng.uniform(-cfg.hue, cfg.hue)
    for op in ops:
        if op == 0:
            img = img * b
        elif op == 1:
            grey = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).mean()
            img = (img - grey) * c + grey
        elif op == 2:
            grey = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
            img = (img - grey[..., None]) * s + grey[..., None]
        elif h != 0.0:
            hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV_FULL)
            hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(round(h * 256))) % 256  # FULL: hue in 0..255
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
        img = np.clip(img, 0, 255)
    return np.rint(img).astype(np.uint8)


def augment_sample(sample: dict[str, Any], cfg: AugmentConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Return an augmented copy of a sample (the input is not modified).

    Args:
        sample: a :class:`training.strat.StratDataset` item with at least
            ``background`` (S, S, 3) uint8, ``foreground`` (S, S, 4) uint8,
            ``init_vertex`` and ``final_vertex`` (4, 2) in network pixels, and
            optionally ``parsing`` (S, S) uint8.
        cfg: the ranges; ``cfg.enabled`` False returns the sample unchanged (a copy).
        rng: the random generator (seeded per sample and epoch by the caller).

    Returns:
        A new dict with the same keys; vertices are float32 (4, 2) in canonical order.
    """
    out = dict(sample)
    if not cfg.enabled:
        return out
    bg = sample["background"]
    fg = sample["foreground"]
    parsing = sample.get("parsing")
    init_v = np.asarray(sample["init_vertex"], dtype=np.float64)
    final_v = np.asarray(sample["final_vertex"], dtype=np.float64)
    size = bg.shape[1]
    if bg.shape[0] != size:
        raise ValueError(f"augment_sample expects a square background at network size, got {bg.shape}")

    if rng.random() < cfg.affine_prob:
        for _ in range(max(cfg.max_tries, 1)):
            new_from_old = random_affine(size, cfg, rng)
            moved = warp_points(new_from_old, final_v)
            if _inside(moved, size):
                bg = warp_crop(bg, new_from_old, size, border_value=(0, 0, 0))
                if parsing is not None:
                    parsing = cv2.warpAffine(parsing, np.ascontiguousarray(new_from_old[:2]), (size, size),
                                             flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                             borderValue=IGNORE_INDEX)
                final_v = moved
                break

    if rng.random() < cfg.flip_prob:
        bg = bg[:, ::-1]
        fg = fg[:, ::-1]
        if parsing is not None:
            parsing = parsing[:, ::-1]
        final_v = flip_corners_horizontally(final_v, bg.shape[1])
        init_v = flip_corners_horizontally(init_v, fg.shape[1])

    if rng.random() < cfg.color_prob:
        bg = color_jitter(bg, cfg, rng)

    out["background"] = np.ascontiguousarray(bg)
    out["foreground"] = np.ascontiguousarray(fg)
    if parsing is not None:
        out["parsing"] = np.ascontiguousarray(parsing)
    out["init_vertex"] = init_v.astype(np.float32)
    out["final_vertex"] = final_v.astype(np.float32)
    return out
