"""Warp + composite of the accessory onto the frame, the mirrored preview and the HUD.

The network predicts where the 4 corners of the accessory's tight alpha box go. The
corners in the accessory image (``Accessory.init_vertex_xy``, full-resolution accessory
pixels) and their predicted places in the frame (full-resolution frame pixels) define
``frame_from_fg = homography(init_vertex_in_fg_px, final_vertex_in_frame_px)``; the
full-resolution accessory is warped with it and alpha-composited onto the full-resolution
BGR frame, inside the warped footprint only (:func:`realtime.live.native.composite`: the native
C++ kernel where it wins, else its reference :func:`realtime.geometry.composite_roi`). The
network's S x S resize of the accessory never enters the composite.

Mirroring is for the preview only, after compositing: the geometry, the keypoints, the
recording and the keypoint log are never mirrored.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import cv2
import numpy as np

from realtime.accessories import Accessory
from realtime.geometry import DegenerateQuadError, PreparedAccessory, homography_from_quads
from realtime.live import native

log = logging.getLogger(__name__)

#: Minimum time between two "degenerate quad" log lines.
DEGENERATE_LOG_INTERVAL_S = 1.0


class Compositor:
    """Warps accessories onto BGR frames; prepares (premultiplies) each accessory once.

    Args:
        prefer_native: the warp + composite kernel: True = native C++ when the library
            is loaded, False = the OpenCV reference (:func:`realtime.geometry.composite_roi`),
            None = the measured default (:data:`realtime.live.native.PREFER_NATIVE`).
    """

    def __init__(self, prefer_native: bool | None = None) -> None:
        self.prefer_native = prefer_native
        # per accessory object: (the accessory, premultiplied BGR, its alpha-box corners); the corners
        # are computed once (Accessory.init_vertex_xy scans the alpha channel on every call)
        self._prepared: dict[int, tuple[Accessory, PreparedAccessory, np.ndarray]] = {}
        self._last_warning = -float("inf")
        self.skipped = 0

    def _entry(self, acc: Accessory) -> tuple[Accessory, PreparedAccessory, np.ndarray]:
        hit = self._prepared.get(id(acc))
        if hit is None or hit[0] is not acc:
            hit = (acc, PreparedAccessory.from_rgba(acc.rgba, to_bgr=True), acc.init_vertex_xy.astype(np.float64))
            self._prepared[id(acc)] = hit
        return hit

    def prepared(self, acc: Accessory) -> PreparedAccessory:
        """The accessory premultiplied in BGR order (cached per accessory object)."""
        return self._entry(acc)[1]

    def frame_from_fg(self, acc: Accessory, pts_xy: np.ndarray) -> np.ndarray:
        """Homography from accessory pixels to frame pixels for predicted corners ``pts_xy``.

        Raises:
            DegenerateQuadError: the predicted quad cannot define a homography.
        """
        return homography_from_quads(self._entry(acc)[2], pts_xy)

    def draw(self, frame: np.ndarray, acc: Accessory, pts_xy: np.ndarray) -> bool:
        """Composite ``acc`` onto ``frame`` (BGR, in place) at corners ``pts_xy`` (4, 2).

        A degenerate quad skips the warp for this frame (logged at most once a second).

        Returns:
            Whether anything was drawn.
        """
        try:
            mat = self.frame_from_fg(acc, pts_xy)
        except DegenerateQuadError as exc:
            self.skipped += 1
            now = time.monotonic()
            if now - self._last_warning >= DEGENERATE_LOG_INTERVAL_S:
                log.warning("skipping the warp: %s (%d frame(s) skipped so far)", exc, self.skipped)
                self._last_warning = now
            return False
        return native.composite(frame, self.prepared(acc), mat, prefer_native=self.prefer_native) is not None


def mirror(frame: np.ndarray) -> np.ndarray:
    """Horizontally flipped copy, for the selfie-style preview only."""
    return cv2.flip(frame, 1)


def draw_quad(frame: np.ndarray, pts_xy: np.ndarray, colour: tuple[int, int, int] = (0, 255, 0)) -> None:
    """Debug overlay: the keypoint quad, corner 0 (top-left) marked (in place)."""
    pts = np.asarray(pts_xy, dtype=np.float64)
    if not np.all(np.isfinite(pts)):
        return
    fixed = np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(frame, [fixed], True, colour, 1, cv2.LINE_AA, 4)
    cv2.circle(frame, tuple(int(v) for v in fixed[0, 0]), 4 * 16, (0, 0, 255), -1, cv2.LINE_AA, 4)


def _text_scale(frame_h: int, screen_scale: float) -> tuple[float, int]:
    """(font scale, thickness) in frame pixels for text about 1/45 of the shown height, at
    least 14 on-screen pixels tall; ``screen_scale`` = on-screen pixels per frame pixel."""
    shown_h = frame_h * screen_scale
    on_screen = max(0.55, min(1.1, shown_h / 1100.0))  # HERSHEY_SIMPLEX: about 22 px tall per unit
    scale = on_screen / max(screen_scale, 1e-3)
    return scale, max(1, int(round(scale * 1.6)))


def wrap_hud_lines(lines: Sequence[str], width: int, text_width: Callable[[str], int],
                   sep: str = " | ") -> list[str]:
    """HUD lines that fit ``width`` pixels: a line too wide is broken at its ``sep``
    separators (as many fields per line as fit; a single field wider than ``width`` stays
    whole). ``text_width`` measures a string in pixels."""
    out: list[str] = []
    for line in lines:
        if text_width(line) <= width:
            out.append(line)
            continue
        current = ""
        for field in line.split(sep):
            candidate = f"{current}{sep}{field}" if current else field
            if current and text_width(candidate) > width:
                out.append(current)
                current = field
            else:
                current = candidate
        out.append(current)
    return out


def draw_hud(frame: np.ndarray, lines: Sequence[str], warning: str | None = None, screen_scale: float = 1.0) -> None:
    """Text panel at the top-left (and a red warning line at the bottom), in place.

    The text is sized for the picture as shown (``screen_scale``: on-screen pixels per
    frame pixel, 1 for a video file), so it stays readable from 480p to 1080p and in a
    window smaller than the frame.
    """
    h, w = frame.shape[:2]
    scale, thick = _text_scale(h, screen_scale)
    font = cv2.FONT_HERSHEY_SIMPLEX
    line_h = int(round(30 * scale)) + 4
    pad = int(round(8 * scale))
    lines = wrap_hud_lines(lines, w - 2 * pad, lambda t: cv2.getTextSize(t, font, scale, thick)[0][0])
    for i, text in enumerate(lines):  # each line on its own darkened strip, as wide as the line
        x1 = min(w, cv2.getTextSize(text, font, scale, thick)[0][0] + 2 * pad)
        y0 = 0 if i == 0 else line_h * i + pad // 2  # strips touch: line i's baseline is at line_h * (i + 1)
        y1 = min(h, line_h * (i + 1) + (pad if i == len(lines) - 1 else pad // 2))
        roi = frame[y0:y1, :x1]
        roi[...] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40 % behind the text
        cv2.putText(frame, text, (pad, line_h * (i + 1)), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    if warning:
        size = cv2.getTextSize(warning, font, scale * 1.2, thick + 1)[0]
        y = h - int(round(12 * scale))
        cv2.rectangle(frame, (0, y - size[1] - pad), (min(w, size[0] + 2 * pad), h), (0, 0, 0), -1)
        cv2.putText(frame, warning, (pad, y), font, scale * 1.2, (60, 60, 255), thick + 1, cv2.LINE_AA)


def draw_rec(frame: np.ndarray, seconds: float, screen_scale: float = 1.0) -> None:
    """The recording indicator, a red dot and the elapsed time at the top-right, in place.

    Drawn whether or not the HUD is shown: a user must always see that they are recorded.
    """
    h, w = frame.shape[:2]
    scale, thick = _text_scale(h, screen_scale)
    font = cv2.FONT_HERSHEY_SIMPLEX
    text = f"REC {int(seconds) // 60:02d}:{int(seconds) % 60:02d}"
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    pad = int(round(10 * scale))
    r = max(4, int(round(th * 0.6)))
    x_text = w - pad - tw
    cx, cy = x_text - pad - r, pad + th
    x0 = cx - r - pad
    roi = frame[:cy + r + pad, max(0, x0):]
    roi[...] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)
    cv2.circle(frame, (cx, cy - th // 2), r, (0, 0, 255), -1, cv2.LINE_AA)
    cv2.putText(frame, text, (x_text, cy), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
