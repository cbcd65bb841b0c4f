"""Network input preparation: the one definition of normalisation and tensor layout.

Backgrounds: RGB uint8 (H, W, 3) at network size -> float32 (1, 3, S, S), ImageNet
normalised. Foregrounds: RGBA uint8 accessory -> resized to S x S (the whole accessory
image is stretched to the square, as STRAT's loaders resize both images) -> float32
(1, 4, S, S), RGB normalised and alpha in [0, 1] un-normalised (SPEC section 3).

Training, export verification and every backend use these functions.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.config import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from realtime.geometry import resize_matrix

_MEAN = np.array(IMAGENET_MEAN_RGB, dtype=np.float32) * 255.0
_INV_STD = 1.0 / (np.array(IMAGENET_STD_RGB, dtype=np.float32) * 255.0)


def normalize_rgb(images_rgb: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> (..., 3, H, W) float32 ImageNet-normalised."""
    x = (np.asarray(images_rgb, dtype=np.float32) - _MEAN) * _INV_STD
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def background_input(image_rgb: np.ndarray) -> np.ndarray:
    """One RGB background already at network size -> (1, 3, S, S) float32."""
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"background must be (H, W, 3) RGB, got {image_rgb.shape}")
    return normalize_rgb(image_rgb)[None]


def foreground_input(fg_rgba: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGBA accessory -> network input (1, 4, S, S) and ``net_from_fg`` (3x3).

    Returns:
        The input tensor and the matrix mapping accessory pixels to network-input pixels,
        so init vertices can be expressed in either frame.
    """
    if fg_rgba.ndim != 3 or fg_rgba.shape[2] != 4:
        raise ValueError(f"foreground must be (H, W, 4) RGBA, got {fg_rgba.shape}")
    h, w = fg_rgba.shape[:2]
    resized = cv2.resize(fg_rgba, (size, size), interpolation=cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR)
    rgb = normalize_rgb(resized[..., :3])
    alpha = resized[..., 3].astype(np.float32)[None] / 255.0
    x = np.concatenate([rgb, alpha], axis=0)[None]
    return np.ascontiguousarray(x), resize_matrix((w, h), (size, size))
