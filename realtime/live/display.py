"""The preview the window shows, built in one pass over the frame into a buffer the display owns.

The old display made two full-frame passes per frame (``cv2.flip`` into a new array, then a
BGR -> RGB conversion into another) plus the overlays: 0.37 ms at 640x480, 13.4 ms at 4K
(issue 14). :class:`PreviewBuffer` reads the frame once: the mirror (or a plain copy when not
mirroring) is written into a buffer allocated once per size, and everything else is drawn
where it is: the HUD on its text panel, the keypoint quad on its lines. The window
(``cv2.imshow``) takes BGR, so there is no colour conversion; a sink that needs RGB
(the virtual camera) converts its own copy.

No more pixels than the window shows: when the window shows the frame at half its size or
less (``shown_wh``, the picture's size on screen; the window is fitted to the screen,
:mod:`realtime.live.window`; :func:`reduction_factor`), the preview is built at exactly that
size, mirrored, in one pass that reads only the pixels it keeps
(:func:`realtime.live.native.resample_nearest`: nearest neighbour through index tables; a 4K
frame in a window fitted to a 1080p screen reads 918 of its 2160 rows), and the window then
shows it 1:1 (its toolkit scales nothing). Measured at 4K to a 1632x918 window
(``benchmarks/frame_scaling.py``): the previous version, a 2 x 2 box average to 1920x1080 then
the mirror on the small buffer, read every pixel (9.5 ms p50 loaded); a box filter cannot get
under the cost of reading 25 MB on that CPU, nearest can. The price is aliasing on fine
texture at these reductions (>= 2x), where the toolkit's bilinear downscale of the full frame,
what the window did before issue 14, aliased too. Below 2x the preview stays full size (a
plain mirror) and the window scales it smoothly: nearest would drop whole rows and columns
there. The composite is never drawn on: the recorder may still hold it.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from realtime.live import native
from realtime.live.render import draw_hud, draw_quad


def reduction_factor(frame_wh: tuple[int, int], shown_wh: tuple[int, int] | None) -> int:
    """Largest whole ``k >= 1`` with ``frame / k`` at least ``shown_wh`` in both directions (1 when
    the on-screen size is unknown or not smaller than the frame). The preview is reduced (to
    ``shown_wh``) when this is 2 or more."""
    if shown_wh is None or shown_wh[0] < 1 or shown_wh[1] < 1:
        return 1
    return max(1, int(min(frame_wh[0] / shown_wh[0], frame_wh[1] / shown_wh[1])))


def nearest_tables(frame_wh: tuple[int, int], out_wh: tuple[int, int], mirror: bool) -> tuple[np.ndarray, np.ndarray]:
    """(src_x, src_y): the frame column and row each preview pixel shows, the one under the
    preview pixel's centre (``floor((i + 0.5) * frame / out)``, exact in integers); ``src_x``
    descending when mirrored."""
    (w, h), (ow, oh) = frame_wh, out_wh
    xs = np.minimum((2 * np.arange(ow, dtype=np.int64) + 1) * w // (2 * ow), w - 1).astype(np.int32)
    ys = np.minimum((2 * np.arange(oh, dtype=np.int64) + 1) * h // (2 * oh), h - 1).astype(np.int32)
    return (np.ascontiguousarray(xs[::-1]) if mirror else xs), ys


class PreviewBuffer:
    """Builds the preview of a composite into a reused buffer (valid until the next :meth:`compose`).

    Attributes:
        factor: composite pixels per preview pixel across, of the last :meth:`compose` (1: full size).
        scale_xy: preview pixels per composite pixel in x and y, of the last :meth:`compose`.
    """

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None
        self._tables: tuple[tuple[int, int, int, int, bool], tuple[np.ndarray, np.ndarray]] | None = None
        self.factor = 1.0
        self.scale_xy = (1.0, 1.0)

    def _target(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        if self._buf is None or self._buf.shape != shape or self._buf.dtype != dtype:
            self._buf = np.empty(shape, dtype=dtype)
        return self._buf

    def _nearest_tables(self, frame_wh: tuple[int, int], out_wh: tuple[int, int],
                        mirror: bool) -> tuple[np.ndarray, np.ndarray]:
        key = (*frame_wh, *out_wh, mirror)
        if self._tables is None or self._tables[0] != key:
            self._tables = key, nearest_tables(frame_wh, out_wh, mirror)
        return self._tables[1]

    def view_points(self, pts_xy: np.ndarray, width: int, mirror: bool) -> np.ndarray:
        """Composite pixel coordinates -> preview pixel coordinates (pixel centres at integers),
        for a preview ``width`` pixels wide built with this buffer's last scale."""
        pts = np.array(pts_xy, dtype=np.float64)
        if self.scale_xy != (1.0, 1.0):
            pts = (pts + 0.5) * np.array(self.scale_xy) - 0.5
        if mirror:
            pts[:, 0] = width - 1 - pts[:, 0]
        return pts

    def compose(self, composite: np.ndarray, mirror: bool = True, hud: tuple[Sequence[str], str | None] | None = None,
                quad_xy: np.ndarray | None = None, dim: bool = False, shown_wh: tuple[int, int] | None = None,
                screen_scale: float = 1.0) -> np.ndarray:
        """The preview of ``composite`` (BGR): mirrored (selfie view) or not, optionally dimmed
        (stale), with the keypoint quad (``quad_xy`` in composite pixels, mirrored with the
        image) and the HUD (``(lines, warning)``) drawn on top.

        Args:
            shown_wh: the picture's size on screen (None: unknown, the preview is full size).
            screen_scale: on-screen pixels per composite pixel, for the HUD's text size.

        Returns:
            The display-owned buffer (overwritten by the next call).
        """
        h, w = composite.shape[:2]
        if shown_wh is not None and reduction_factor((w, h), shown_wh) >= 2:
            vw, vh = shown_wh
            view = self._target((vh, vw) + composite.shape[2:], composite.dtype)
            xs, ys = self._nearest_tables((w, h), (vw, vh), mirror)
            view = native.resample_nearest(composite, xs, ys, out=view)  # mirror + reduction: one pass
        else:
            vw, vh = w, h
            view = self._target(composite.shape, composite.dtype)
            if mirror:
                cv2.flip(composite, 1, dst=view)
            else:
                np.copyto(view, composite)
        self.factor = w / vw
        self.scale_xy = (vw / w, vh / h)
        if dim:
            np.right_shift(view, 1, out=view)  # half brightness, in place
        if quad_xy is not None:
            draw_quad(view, self.view_points(quad_xy, view.shape[1], mirror))
        if hud is not None:
            draw_hud(view, *hud, screen_scale=screen_scale * self.factor)
        return view
