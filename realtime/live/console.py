"""The terminal side of the product: quiet libraries, progress bars that log lines do not break.

* :func:`opencv_quiet`: OpenCV's own WARN/ERROR lines off while probing what may be absent
  (a camera index, a codec): the app reports the outcome itself, in one clear message.
  FFmpeg's messages are governed by ``OPENCV_FFMPEG_LOGLEVEL``, set by :func:`quiet_environment`.
* :func:`quiet_environment`: environment defaults read by native libraries when first used.
* :func:`console`: the context every ``tryon live/record/demo`` run is in: log lines go
  through tqdm, so a progress bar is redrawn below them instead of being torn.
* :class:`ProgressSink`: a frame sink showing frames done, rate and ETA.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def opencv_quiet() -> Iterator[None]:
    """Silence OpenCV's log (WARN/ERROR lines) within the block."""
    from cv2.utils import logging as cv_logging

    level = cv_logging.getLogLevel()
    cv_logging.setLogLevel(cv_logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv_logging.setLogLevel(level)


def quiet_environment() -> None:
    """Defaults (never overriding the user's) for messages the user cannot act on.

    * ``OPENCV_FFMPEG_LOGLEVEL=-8``: FFmpeg prints an error for every encoder / device it
      probes and lacks; the recorder and the camera report what they chose instead. Set
      it to 24 (warning) to see FFmpeg's messages.
    * ``OPENCV_LOG_LEVEL=ERROR``: OpenCV's informational warnings (plugin loading).
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


@contextlib.contextmanager
def console() -> Iterator[None]:
    """Route logging through tqdm while the block runs (progress bars stay whole)."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    quiet_environment()
    with logging_redirect_tqdm():
        yield


class ProgressSink:
    """A frame sink that shows a progress bar with rate and ETA (tqdm, on stderr).

    Args:
        total: frames expected (None: a counter without ETA).
        desc: the bar's label.
        fps: the video's frame rate, to show "x real time".
    """

    def __init__(self, total: int | None, desc: str, fps: float | None = None) -> None:
        from tqdm import tqdm

        self.fps = fps
        self.bar = tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True, leave=True,
                        bar_format=None if total else "{desc}: {n_fmt} frames [{elapsed}, {rate_fmt}]")

    def __call__(self, out: Any) -> None:
        if getattr(out, "stale", False):
            return
        self.bar.update(1)
        if self.fps:
            rate = self.bar.format_dict.get("rate")
            if rate:
                self.bar.set_postfix_str(f"{rate / self.fps:.2f}x real time", refresh=False)

    def close(self) -> None:
        self.bar.close()
