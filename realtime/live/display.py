"""The preview the window shows, built in one pass over the frame into a buffer the display owns.

The old display made two full-frame passes per frame (``cv2.flip`` into a new array, then a
BGR -> RGB conversion into another) plus the overlays: 0.37 ms at 640x480, 13.4 ms at 4K
(issue 14). :class:`PreviewBuffer` makes one: the mirror (or a plain copy when not
mirroring) is written into a buffer allocated once per frame size, and everything else is
drawn where it is: the HUD on its text panel, the keypoint quad on its lines. The window
(``cv2.imshow``) takes BGR, so there is no colour conversion; a sink that needs RGB
(the virtual camera) converts its own copy.

The composite itself is never drawn on: the recorder may still hold it.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from realtime.live.render import draw_hud, draw_quad


class PreviewBuffer:
    """Builds the preview of a composite into a reused buffer (valid until the next :meth:`compose`)."""

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None

    def _target(self, like: np.ndarray) -> np.ndarray:
        if self._buf is None or self._buf.shape != like.shape or self._buf.dtype != like.dtype:
            self._buf = np.empty_like(like, order="C")
        return self._buf

    def compose(self, composite: np.ndarray, mirror: bool = True, hud: tuple[Sequence[str], str | None] | None = None,
                quad_xy: np.ndarray | None = None, dim: bool = False) -> np.ndarray:
        """The preview of ``composite`` (BGR): mirrored (selfie view) or not, optionally dimmed
        (stale), with the keypoint quad (``quad_xy`` in composite pixels, mirrored with the
        image) and the HUD (``(lines, warning)``) drawn on top.

        Returns:
            The display-owned buffer (overwritten by the next call).
        """
        view = self._target(composite)
        if mirror:
            cv2.flip(composite, 1, dst=view)
        else:
            np.copyto(view, composite)
        if dim:
            np.right_shift(view, 1, out=view)  # half brightness, in place
        if quad_xy is not None:
            pts = np.array(quad_xy, dtype=np.float64)
            if mirror:
                pts[:, 0] = view.shape[1] - 1 - pts[:, 0]
            draw_quad(view, pts)
        if hud is not None:
            draw_hud(view, *hud)
        return view
