"""The live window: opened at the frame's size fitted to the screen, resizable with the
aspect kept, no toolbar, and closing it (the title bar's X, Alt-F4) quits like q.

OpenCV's Qt build (the pip wheels on Linux) opens a ``WINDOW_NORMAL`` window at 400x300
with a debug toolbar and a status bar; ``WINDOW_GUI_NORMAL`` drops both, ``WINDOW_KEEPRATIO``
keeps the frame's aspect when the user resizes, and :meth:`Window.show` sizes the window
on the first frame (:func:`fit_size`). The HUD is drawn for the on-screen size
(:attr:`Window.display_scale`), so its text keeps its size however large the frame is, and the
preview is built no larger than the window shows it (:meth:`Window.shown_size`).

Closing: OpenCV has no close callback; after each ``waitKeyEx`` the window's
``WND_PROP_VISIBLE`` property is read, and below 1 means the user closed it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: Fraction of the screen a window may cover when it opens (room for the title bar and a task bar).
SCREEN_FRACTION = (0.92, 0.85)


def screen_size() -> tuple[int, int] | None:
    """(width, height) of the primary screen in pixels, or None when it cannot be told.

    X11 (through libX11, which the Qt/GTK builds of OpenCV load anyway) and Windows; None
    elsewhere (macOS, Wayland without XWayland), where the window opens at the frame size.
    """
    if sys.platform == "win32":
        try:
            user32 = ctypes.windll.user32  # type: ignore[attr-defined]
            return int(user32.GetSystemMetrics(0)), int(user32.GetSystemMetrics(1))
        except (AttributeError, OSError):
            return None
    if not os.environ.get("DISPLAY"):
        return None
    x11 = _libx11()
    if x11 is None:
        return None
    dpy = x11.XOpenDisplay(None)
    if not dpy:
        return None
    try:
        scr = x11.XDefaultScreen(dpy)
        return int(x11.XDisplayWidth(dpy, scr)), int(x11.XDisplayHeight(dpy, scr))
    finally:
        x11.XCloseDisplay(dpy)


def display_reachable() -> tuple[bool, str]:
    """(reachable, what was found) for the window's display, without opening a window."""
    if sys.platform == "win32" or sys.platform == "darwin":
        return True, "desktop session"
    if os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return True, f"Wayland {os.environ['WAYLAND_DISPLAY']} (OpenCV's Qt needs XWayland or QT_QPA_PLATFORM=wayland)"
    name = os.environ.get("DISPLAY")
    if not name:
        return False, "$DISPLAY is not set"
    x11 = _libx11()
    if x11 is None:
        return True, f"DISPLAY={name} (libX11 not found to check it)"
    dpy = x11.XOpenDisplay(None)
    if not dpy:
        return False, f"DISPLAY={name} is set but the X server does not answer"
    try:
        scr = x11.XDefaultScreen(dpy)
        return True, f"X display {name}, {x11.XDisplayWidth(dpy, scr)}x{x11.XDisplayHeight(dpy, scr)}"
    finally:
        x11.XCloseDisplay(dpy)


def _libx11() -> ctypes.CDLL | None:
    path = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    for fn in ("XDefaultScreen", "XCloseDisplay"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    for fn in ("XDisplayWidth", "XDisplayHeight"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def fit_size(frame_wh: tuple[int, int], screen_wh: tuple[int, int] | None,
             fraction: tuple[float, float] = SCREEN_FRACTION) -> tuple[int, int]:
    """The frame's size, scaled down (aspect kept, never up) to fit ``fraction`` of the screen."""
    w, h = frame_wh
    if screen_wh is None:
        return w, h
    s = min(1.0, fraction[0] * screen_wh[0] / w, fraction[1] * screen_wh[1] / h)
    return max(1, int(round(w * s))), max(1, int(round(h * s)))


class Window:
    """One OpenCV window (see the module docstring).

    Attributes:
        size_wh: the size it was opened at (after the first :meth:`show`).
        display_scale: on-screen pixels per frame pixel (for the HUD), updated as the
            user resizes.
        closed: the user closed the window.
    """

    FLAGS = cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL

    def __init__(self, name: str) -> None:
        self.name = name
        self.size_wh: tuple[int, int] | None = None
        self.display_scale = 1.0
        self.closed = False
        cv2.namedWindow(name, self.FLAGS)

    def update_scale(self, frame_wh: tuple[int, int]) -> float:
        """On-screen pixels per frame pixel, from the window's image rectangle."""
        if self.size_wh is None:
            self.size_wh = fit_size(frame_wh, screen_size())
            cv2.resizeWindow(self.name, *self.size_wh)
            log.debug("window %s opened at %dx%d for %dx%d frames", self.name, *self.size_wh, *frame_wh)
            self.display_scale = self.size_wh[0] / frame_wh[0]
            return self.display_scale
        with contextlib.suppress(cv2.error):
            _, _, w, h = cv2.getWindowImageRect(self.name)
            if w > 0 and h > 0:
                self.display_scale = min(w / frame_wh[0], h / frame_wh[1])
        return self.display_scale

    def shown_size(self, frame_wh: tuple[int, int]) -> tuple[int, int]:
        """The picture's size on screen for ``frame_wh`` frames (after :meth:`update_scale`): what
        the preview needs to be built at (:class:`realtime.live.display.PreviewBuffer`)."""
        s = self.display_scale
        return max(1, int(round(frame_wh[0] * s))), max(1, int(round(frame_wh[1] * s)))

    def show(self, image: np.ndarray) -> int:
        """Show a frame, poll the keyboard (1 ms); returns the key code (-1 none).

        Sets :attr:`closed` when the user closed the window (the caller quits).
        """
        cv2.imshow(self.name, image)
        key = cv2.waitKeyEx(1)
        try:
            visible = cv2.getWindowProperty(self.name, cv2.WND_PROP_VISIBLE)
        except cv2.error:  # the window is gone
            visible = -1
        if visible < 1:
            self.closed = True
        return key

    def close(self) -> None:
        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.name)
            cv2.waitKey(1)  # let the toolkit process the destruction
