"""Test doubles for the live capture: fake ``cv2.VideoCapture`` devices that fail on cue, and a
short video of the moving astronaut (:func:`write_video`)."""

from __future__ import annotations

import time
from typing import Sequence

from pathlib import Path

import cv2
import numpy as np


class FlakyCaptureFactory:
    """Opener of fake ``cv2.VideoCapture`` devices for :class:`CameraSource` that fail on cue.

    The first device delivers ``fail_after`` frames, then every ``read`` fails (the cable
    was pulled); the next ``reopen_failures`` opens fail; then a device opens and delivers
    the remaining frames forever (cycling). Frames are delivered at up to ``fps``.

    Args:
        frames: BGR images to deliver, cycled.
        fail_after: frames delivered before the drop.
        reopen_failures: failed opens before the camera comes back.
        fps: pacing of the fake device (0 = as fast as read).
        size_wh: reported frame size (default: the frames' size).
    """

    def __init__(self, frames: Sequence[np.ndarray], fail_after: int = 10, reopen_failures: int = 2,
                 fps: float = 100.0) -> None:
        self.frames = list(frames)
        self.fail_after, self.reopen_failures, self.fps = fail_after, reopen_failures, fps
        self.opens = 0
        self.failed_opens = 0
        self.delivered = 0

    def __call__(self, index: int) -> "_FakeCapture":
        self.opens += 1
        if self.opens == 1:
            return _FakeCapture(self, budget=self.fail_after)
        if self.failed_opens < self.reopen_failures:
            self.failed_opens += 1
            return _FakeCapture(self, budget=0, opened=False)
        return _FakeCapture(self, budget=None)


class _FakeCapture:
    def __init__(self, factory: FlakyCaptureFactory, budget: int | None, opened: bool = True) -> None:
        self.factory, self.budget, self.opened = factory, budget, opened
        self.props: dict[int, float] = {}
        self._last = 0.0

    def isOpened(self) -> bool:  # noqa: N802 (cv2 API)
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        h, w = self.factory.frames[0].shape[:2]
        return {cv2.CAP_PROP_FRAME_WIDTH: w, cv2.CAP_PROP_FRAME_HEIGHT: h,
                cv2.CAP_PROP_FPS: self.factory.fps}.get(prop, self.props.get(prop, 0.0))

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened or (self.budget is not None and self.budget <= 0):
            time.sleep(0.001)
            return False, None
        if self.factory.fps > 0:
            wait = self._last + 1.0 / self.factory.fps - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last = time.monotonic()
        if self.budget is not None:
            self.budget -= 1
        img = self.factory.frames[self.factory.delivered % len(self.factory.frames)]
        self.factory.delivered += 1
        return True, img.copy()

    def release(self) -> None:
        self.opened = False


def write_video(path: Path, frames: int, size_wh=(480, 270), fps: float = 15.0) -> Path:
    """An MJPG AVI of the astronaut portrait under synthetic camera motion."""
    from skimage.data import astronaut

    from realtime.live.capture import PortraitMotionSource

    return PortraitMotionSource(astronaut(), size_wh=size_wh, fps=fps, seconds=frames / fps).save(path)
