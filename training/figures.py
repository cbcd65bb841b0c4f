"""Qualitative figures in the style of the paper's Fig. 3 and Fig. 4 (OpenCV only).

* :func:`composite_grid` (Fig. 3): one row per sample: background | foreground (on a
  checkerboard) with its 4 corners | ground-truth composite | predicted composite, the
  ground-truth (green) and predicted (red) quads drawn on the last two.
* :func:`heatmap_figure` (Fig. 4): for keypoints A-D (TL, TR, BR, BL), the ground-truth
  and the predicted heatmap superimposed on the background, plus the background with
  both sets of points.

Images are RGB uint8 in memory; PNGs are encoded in memory and written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.geometry import DegenerateQuadError
from realtime.io import atomic_write_bytes
from training.strat import composite_sample

#: Drawing colours (RGB).
GT_RGB = (40, 200, 40)
PRED_RGB = (230, 40, 40)
#: Keypoint letters of the paper's Fig. 4, in canonical corner order.
KEYPOINT_LETTERS = ("A", "B", "C", "D")
_HEADER_PX = 22


def _checkerboard(size_hw: tuple[int, int], cell: int = 8) -> np.ndarray:
    h, w = size_hw
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, 200, 255).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def over_checkerboard(rgba: np.ndarray) -> np.ndarray:
    """An RGBA accessory alpha-blended over a grey checkerboard, RGB uint8."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba[..., :3].astype(np.float32) * a + _checkerboard(rgba.shape[:2]).astype(np.float32) * (1.0 - a)
    return np.rint(out).astype(np.uint8)


def draw_quad(image_rgb: np.ndarray, quad_xy: np.ndarray, colour: tuple[int, int, int], letters: bool = False
              ) -> np.ndarray:
    """Return a copy with the quad outline and its corners drawn (sub-pixel, anti-aliased)."""
    out = np.ascontiguousarray(image_rgb.copy())
    q = np.asarray(quad_xy, np.float64)
    if not np.all(np.isfinite(q)):
        return out
    shift = 4  # cv2 fixed-point bits for sub-pixel drawing
    pts = np.rint(q * (1 << shift)).astype(np.int32)
    cv2.polylines(out, [pts.reshape(-1, 1, 2)], True, colour, 1, cv2.LINE_AA, shift)
    for k, p in enumerate(pts):
        cv2.circle(out, (int(p[0]), int(p[1])), 3 << shift, colour, -1, cv2.LINE_AA, shift)
        if letters:
            cv2.putText(out, KEYPOINT_LETTERS[k], (int(q[k, 0]) + 4, int(q[k, 1]) - 4), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, colour, 1, cv2.LINE_AA)
    return out


def _safe_composite(sample: dict[str, Any], final_vertex: np.ndarray) -> np.ndarray:
    try:
        return composite_sample(sample["background"], sample["foreground"], sample["init_vertex"], final_vertex)
    except DegenerateQuadError:
        return sample["background"].copy()  # a degenerate prediction draws no accessory (training.metrics)


def _labelled(tiles: list[np.ndarray], labels: list[str]) -> np.ndarray:
    """Tiles side by side under a white header row with their labels."""
    row = np.concatenate(tiles, axis=1)
    header = np.full((_HEADER_PX, row.shape[1], 3), 255, np.uint8)
    x = 0
    for tile, label in zip(tiles, labels):
        cv2.putText(header, label, (x + 4, _HEADER_PX - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        x += tile.shape[1]
    return np.concatenate([header, row], axis=0)


def _write_png(path: str | Path, image_rgb: np.ndarray) -> Path:
    path = Path(path)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, buf.tobytes())
    return path


def composite_grid(samples: list[dict[str, Any]], path: str | Path) -> Path:
    """Fig. 3 style grid; each sample needs the StratDataset keys plus ``pred_vertex``.

    Returns:
        The written PNG path.
    """
    if not samples:
        raise ValueError("composite_grid: no samples")
    rows = []
    for s in samples:
        gt_comp = draw_quad(_safe_composite(s, s["final_vertex"]), s["final_vertex"], GT_RGB)
        pred_comp = draw_quad(_safe_composite(s, s["pred_vertex"]), s["final_vertex"], GT_RGB)
        pred_comp = draw_quad(pred_comp, s["pred_vertex"], PRED_RGB)
        fg = draw_quad(over_checkerboard(s["foreground"]), s["init_vertex"], GT_RGB, letters=True)
        rows.append(_labelled([s["background"], fg, gt_comp, pred_comp],
                              [str(s["id"])[-18:], "foreground", "GT", "pred (red)"]))
    return _write_png(path, np.concatenate(rows, axis=0))


def heatmap_overlay(background_rgb: np.ndarray, heatmap: np.ndarray, weight: float = 0.55) -> np.ndarray:
    """One heatmap in [0, 1] (S, S) as a JET colour map blended over the background."""
    hm = np.clip(np.nan_to_num(heatmap, nan=0.0), 0.0, 1.0)
    colour = cv2.cvtColor(cv2.applyColorMap(np.rint(hm * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = weight * hm[..., None]  # stronger where the heatmap is high, so the person stays visible
    out = background_rgb.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha
    return np.rint(out).astype(np.uint8)


def heatmap_figure(sample: dict[str, Any], path: str | Path) -> Path:
    """Fig. 4 style panel: GT (top) and predicted (bottom) heatmaps A-D over the background.

    ``sample`` needs ``background``, ``foreground``, ``init_vertex``, ``final_vertex``,
    ``pred_vertex``, ``gt_heatmaps`` and ``pred_heatmaps`` ((4, S, S) each).
    """
    bg = sample["background"]
    points = draw_quad(draw_quad(bg, sample["final_vertex"], GT_RGB, letters=True), sample["pred_vertex"], PRED_RGB)
    fg = draw_quad(over_checkerboard(sample["foreground"]), sample["init_vertex"], GT_RGB, letters=True)
    rows = []
    for name, key, first in (("GT", "gt_heatmaps", fg), ("pred", "pred_heatmaps", points)):
        tiles = [first] + [heatmap_overlay(bg, sample[key][k]) for k in range(4)]
        labels = ["foreground" if name == "GT" else "GT / pred"]
        labels += [f"{name} {letter}" for letter in KEYPOINT_LETTERS]
        rows.append(_labelled(tiles, labels))
    return _write_png(path, np.concatenate(rows, axis=0))
