"""The preview the window shows, built in one pass over the frame into a buffer the display owns.

The old display made two full-frame passes per frame (``cv2.flip`` into a new array, then a
BGR -> RGB conversion into another) plus the overlays: 0.37 ms at 640x480, 13.4 ms at 4K
(issue 14). :class:`PreviewBuffer` reads the frame once: the mirror (or a plain copy when not
mirroring) is written into a buffer allocated once per size, and everything else is drawn
where it is: the HUD on its text panel, the keypoint quad on its lines. The window
(``cv2.imshow``) takes BGR, so there is no colour conversion; a sink that needs RGB
(the virtual camera) converts its own copy.

No more pixels than the window shows: given the size the picture has on screen
(``shown_wh``; the window is fitted to the screen, :mod:`realtime.live.window`), the frame is
first reduced by the largest whole factor ``k`` that keeps the preview at least as large as
the picture on screen (:func:`reduction_factor`: a 4K frame in a window fitted to a 1080p
screen is shown from a 1920x1080 preview; the window scales the rest, as it did before from
the full frame), by a k x k box average (``cv2.resize`` ``INTER_AREA`` at a whole factor, which
reads the frame once), then mirrored in place on the small buffer. The composite is
never drawn on: the recorder may still hold it.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from realtime.live.render import draw_hud, draw_quad


def reduction_factor(frame_wh: tuple[int, int], shown_wh: tuple[int, int] | None) -> int:
    """Largest whole ``k >= 1`` with ``frame / k`` at least ``shown_wh`` in both directions (1 when
    the on-screen size is unknown or not smaller than the frame)."""
    if shown_wh is None or shown_wh[0] < 1 or shown_wh[1] < 1:
        return 1
    return max(1, int(min(frame_wh[0] / shown_wh[0], frame_wh[1] / shown_wh[1])))


class PreviewBuffer:
    """Builds the preview of a composite into a reused buffer (valid until the next :meth:`compose`).

    Attributes:
        factor: the reduction of the last :meth:`compose` (preview pixel = ``factor`` x
            ``factor`` composite pixels).
    """

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None
        self.factor = 1

    def _target(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        if self._buf is None or self._buf.shape != shape or self._buf.dtype != dtype:
            self._buf = np.empty(shape, dtype=dtype)
        return self._buf

    def view_points(self, pts_xy: np.ndarray, width: int, mirror: bool) -> np.ndarray:
        """Composite pixel coordinates -> preview pixel coordinates (pixel centres at integers),
        for a preview ``width`` pixels wide built with this buffer's last ``factor``."""
        pts = np.array(pts_xy, dtype=np.float64)
        if self.factor > 1:
            pts = (pts + 0.5) / self.factor - 0.5
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
        k = self.factor = reduction_factor((w, h), shown_wh)
        if k > 1:
            vw, vh = w // k, h // k
            view = self._target((vh, vw) + composite.shape[2:], composite.dtype)
            # a whole factor on an exact multiple: OpenCV's k x k box-average fast path, one read of the frame
            cv2.resize(composite[:vh * k, :vw * k], (vw, vh), dst=view, interpolation=cv2.INTER_AREA)
            if mirror:
                cv2.flip(view, 1, dst=view)  # in place on the small buffer
        else:
            view = self._target(composite.shape, composite.dtype)
            if mirror:
                cv2.flip(composite, 1, dst=view)
            else:
                np.copyto(view, composite)
        if dim:
            np.right_shift(view, 1, out=view)  # half brightness, in place
        if quad_xy is not None:
            draw_quad(view, self.view_points(quad_xy, view.shape[1], mirror))
        if hud is not None:
            draw_hud(view, *hud, screen_scale=screen_scale * k)
        return view
