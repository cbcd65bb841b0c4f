"""Frame sources: webcam, video file, in-memory / generated frames, and a faulty camera for tests.

Every source yields :class:`Frame` objects (BGR uint8, as OpenCV delivers them) through
one small interface, :class:`FrameSource`::

    with open_source(...) as src:
        while (frame := src.read()) is not None or not src.ended:
            ...

* :class:`CameraSource`: a capture thread keeps only the NEWEST frame, so a slow consumer
  never sees stale buffered frames. It asks for MJPG (USB cameras deliver 720p/1080p at
  30 fps only compressed) and the requested size and rate, and logs what it actually got.
  A camera that drops is reopened with exponential backoff; meanwhile :meth:`read`
  returns None and :attr:`FrameSource.status` says ``"camera lost, retrying"``.
* :class:`VideoFileSource` and :class:`GeneratedSource`: every frame in order, as fast as
  the consumer reads; wrap them in :class:`RealtimePacer` to make them behave like a
  camera (frames released at their timestamps, newest only).
* :class:`FlakyCaptureFactory`: fake ``cv2.VideoCapture`` devices that stop delivering
  after N frames and refuse to reopen a few times, to test the reconnection logic.

Timestamps are seconds: media time (index / fps) for files and generated frames,
``time.monotonic()`` at grab for cameras.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from realtime.live.console import opencv_quiet

log = logging.getLogger(__name__)

#: Camera indices probed when listing cameras (OpenCV numbers V4L2 / DirectShow devices).
PROBE_INDICES = range(10)
#: Reconnection backoff: first wait, and the cap of the doubling wait (seconds).
BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 4.0
#: Consecutive failed grabs after which a camera counts as lost.
LOST_AFTER_FAILURES = 5
#: FPS assumed when a file does not say.
DEFAULT_FPS = 30.0

STATUS_OK = "ok"
STATUS_LOST = "camera lost, retrying"
STATUS_ENDED = "ended"


class CameraError(RuntimeError):
    """A camera cannot be opened; the message lists the cameras that can."""


@dataclass(frozen=True)
class Frame:
    """One frame.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        index: running index from the source (gaps mean dropped frames).
        timestamp: seconds (media time for files, monotonic clock for cameras).
    """

    image: np.ndarray
    index: int
    timestamp: float


class FrameSource(ABC):
    """A source of BGR frames. Use as a context manager or call :meth:`close`."""

    fps: float = DEFAULT_FPS
    #: (width, height) of the frames.
    size_wh: tuple[int, int] = (0, 0)
    #: Frame count when known (files, generated), else None.
    frame_count: int | None = None
    #: Whether frames arrive at their own pace (camera, paced file) or on demand.
    live: bool = False
    #: Whether every frame's image is a new array that nothing else holds, so the loop may
    #: composite onto it in place instead of copying the whole frame.
    fresh_frames: bool = False

    def __init__(self) -> None:
        self.status = STATUS_OK
        self.ended = False

    @abstractmethod
    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame, or None (end of stream: :attr:`ended` is set; or, for live
        sources, no new frame within ``timeout`` s, e.g. while the camera is lost)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release the device or file."""

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> str:
        """One line for logs and the HUD."""
        return f"{type(self).__name__} {self.size_wh[0]}x{self.size_wh[1]}@{self.fps:g}"


class _NewestFrame:
    """A one-slot buffer: the producer overwrites, the consumer waits for a newer frame."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._taken = -1
        self.closed = False

    def put(self, frame: Frame) -> None:
        with self._cond:
            self._frame = frame
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def get(self, timeout: float) -> Frame | None:
        """Newest frame not returned before, waiting up to ``timeout`` s; None if none came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._frame is None or self._frame.index <= self._taken:
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    return None
                self._cond.wait(left)
            self._taken = self._frame.index
            return self._frame


# --------------------------------------------------------------------------------------
# Cameras
# --------------------------------------------------------------------------------------

def _fourcc_str(value: float) -> str:
    code = int(value)
    chars = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return chars if chars.isprintable() and chars.strip() else f"0x{code:08x}"


def list_cameras(indices: Sequence[int] = PROBE_INDICES,
                 opener: Callable[[int], Any] = cv2.VideoCapture) -> list[tuple[int, str]]:
    """Probe camera indices quickly; returns ``[(index, "WxH"), ...]`` of those that deliver.

    On Linux, indices without a ``/dev/videoN`` node are skipped without opening anything.
    """
    found = []
    for i in indices:
        if opener is cv2.VideoCapture and sys.platform.startswith("linux") and not Path(f"/dev/video{i}").exists():
            continue
        with opencv_quiet():  # an absent index is expected here
            cap = opener(i)
        try:
            if cap.isOpened():
                ok, img = cap.read()
                if ok and img is not None:
                    found.append((i, f"{img.shape[1]}x{img.shape[0]}"))
        finally:
            cap.release()
    return found


def _no_camera_message(index: int, available: list[tuple[int, str]]) -> str:
    if available:
        listing = ", ".join(f"{i} ({size})" for i, size in available)
        return f"camera {index} is not available; cameras found: {listing} (use --camera N)"
    return (f"camera {index} is not available and no camera was found (probed indices "
            f"{PROBE_INDICES.start}..{PROBE_INDICES.stop - 1}); use --video FILE to run on a file")


class _ThreadedSource(FrameSource):
    """A source whose frames come from a background thread through a newest-frame buffer.

    Subclasses create ``_buf``, ``_stop`` and ``_thread`` and implement ``_release()``.
    """

    _buf: _NewestFrame
    _stop: threading.Event
    _thread: threading.Thread

    def read(self, timeout: float = 1.0) -> Frame | None:
        return self._buf.get(timeout)

    def close(self) -> None:
        self._stop.set()
        self._buf.close()
        self._thread.join(timeout=5.0)
        self._release()

    def _release(self) -> None:
        """Free what the thread was reading from (after it has stopped)."""


class CameraSource(_ThreadedSource):
    """A webcam read on its own thread; :meth:`read` returns the newest frame only.

    Args:
        index: camera index (``cv2.VideoCapture(index)``).
        size_wh: requested (width, height), None = the camera's default.
        fps: requested frame rate, None = the camera's default.
        fourcc: requested pixel format ("MJPG"; None to leave it).
        opener: ``index -> capture`` (``cv2.VideoCapture`` or a fake for tests).

    Raises:
        CameraError: the camera cannot be opened at start (lists the available ones).
    """

    live = True
    fresh_frames = True  # VideoCapture.read allocates each frame

    def __init__(self, index: int = 0, size_wh: tuple[int, int] | None = None, fps: float | None = None,
                 fourcc: str | None = "MJPG", opener: Callable[[int], Any] = cv2.VideoCapture,
                 backoff_start_s: float = BACKOFF_START_S, backoff_max_s: float = BACKOFF_MAX_S) -> None:
        super().__init__()
        if int(index) < 0:  # OpenCV's "any camera" index, which crashes some back-ends
            raise CameraError(f"camera index must be >= 0, got {index}")
        self.index, self._req_size, self._req_fps, self._fourcc = index, size_wh, fps, fourcc
        self._opener = opener
        self._backoff = (backoff_start_s, backoff_max_s)
        self._buf = _NewestFrame()
        self._stop = threading.Event()
        self._count = 0
        self.reconnects = 0
        cap = self._open()
        if cap is None:
            raise CameraError(_no_camera_message(index, list_cameras(opener=opener)))
        self._cap = cap
        self._thread = threading.Thread(target=self._run, name=f"camera-{index}", daemon=True)
        self._thread.start()

    def _open(self) -> Any | None:
        with opencv_quiet():  # OpenCV prints WARN/ERROR lines for an absent camera; we say it in one message
            cap = self._opener(self.index)
        if not cap.isOpened():
            cap.release()
            return None
        if self._fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self._fourcc))
        if self._req_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._req_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._req_size[1])
        if self._req_fps:
            cap.set(cv2.CAP_PROP_FPS, self._req_fps)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or DEFAULT_FPS
        got = f"{w}x{h}@{fps:g} {_fourcc_str(cap.get(cv2.CAP_PROP_FOURCC))}"
        asked = (f"{self._req_size[0]}x{self._req_size[1]}" if self._req_size else "default") + \
            (f"@{self._req_fps:g}" if self._req_fps else "") + (f" {self._fourcc}" if self._fourcc else "")
        log.info("camera %d: asked %s, got %s", self.index, asked, got)
        self.size_wh, self.fps = (w, h), fps
        return cap

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            ok, img = self._cap.read()
            if ok and img is not None:
                failures = 0
                if self.status != STATUS_OK:
                    log.info("camera %d: back", self.index)
                self.status = STATUS_OK
                if (img.shape[1], img.shape[0]) != self.size_wh:
                    self.size_wh = (img.shape[1], img.shape[0])
                self._buf.put(Frame(img, self._count, time.monotonic()))
                self._count += 1
                continue
            failures += 1
            if failures < LOST_AFTER_FAILURES:
                continue
            self.status = STATUS_LOST
            log.warning("camera %d lost; reopening with backoff", self.index)
            self._cap.release()
            self._reopen()
            failures = 0

    def _reopen(self) -> None:
        wait, cap_s = self._backoff
        while not self._stop.wait(wait):
            cap = self._open()
            if cap is not None:
                self._cap = cap
                self.reconnects += 1
                log.info("camera %d reopened (after a %.2g s wait)", self.index, wait)
                return
            log.info("camera %d: still unavailable, next try in %.2g s", self.index, min(2 * wait, cap_s))
            wait = min(2 * wait, cap_s)
        self._cap = _ClosedCapture()

    def _release(self) -> None:
        self._cap.release()

    def describe(self) -> str:
        return f"camera {self.index} {self.size_wh[0]}x{self.size_wh[1]}@{self.fps:g}"


class _ClosedCapture:
    """Stand-in after close: never delivers."""

    def read(self) -> tuple[bool, None]:
        return False, None

    def isOpened(self) -> bool:  # noqa: N802 (cv2 API)
        return False

    def release(self) -> None:
        pass


# --------------------------------------------------------------------------------------
# Files and generated frames
# --------------------------------------------------------------------------------------

class VideoFileSource(FrameSource):
    """Every frame of a video file, in order, decoded on demand.

    Raises:
        FileNotFoundError: no such file.
        ValueError: OpenCV cannot decode it (message names the file).
    """

    fresh_frames = True  # VideoCapture.read allocates each frame

    def __init__(self, path: str | Path, loop: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise ValueError(f"cannot open video {self.path} (unsupported format?)")
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or DEFAULT_FPS
        self.size_wh = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = None if loop or count <= 0 else count
        self.loop = loop
        self._index = 0

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self.ended:
            return None
        ok, img = self._cap.read()
        if not ok and self.loop and self._index > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self._cap.read()
        if not ok or img is None:
            self.ended, self.status = True, STATUS_ENDED
            return None
        frame = Frame(img, self._index, self._index / self.fps)
        self._index += 1
        return frame

    def close(self) -> None:
        self._cap.release()

    def describe(self) -> str:
        return f"video {self.path.name} {self.size_wh[0]}x{self.size_wh[1]}@{self.fps:g}"


class GeneratedSource(FrameSource):
    """Frames from a list of BGR images or from a function ``index -> BGR image``.

    Args:
        frames: a sequence of (H, W, 3) uint8 BGR images, or a callable.
        fps: frame rate used for the timestamps.
        count: number of frames (required with a callable).
    """

    def __init__(self, frames: Sequence[np.ndarray] | Callable[[int], np.ndarray], fps: float = DEFAULT_FPS,
                 count: int | None = None, name: str = "generated") -> None:
        super().__init__()
        if callable(frames):
            if count is None:
                raise ValueError("GeneratedSource: count is required with a frame function")
            self._get, self.frame_count = frames, int(count)
        else:
            seq = list(frames)
            self._get, self.frame_count = seq.__getitem__, len(seq)
        if self.frame_count < 1:
            raise ValueError("GeneratedSource: no frames")
        self.fps, self.name = float(fps), name
        first = self._get(0)
        self.size_wh = (first.shape[1], first.shape[0])
        self._index = 0

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self._index >= self.frame_count:
            self.ended, self.status = True, STATUS_ENDED
            return None
        img = self._get(self._index)
        frame = Frame(img, self._index, self._index / self.fps)
        self._index += 1
        return frame

    def describe(self) -> str:
        return f"{self.name} {self.size_wh[0]}x{self.size_wh[1]}@{self.fps:g}"


class RealtimePacer(_ThreadedSource):
    """Makes an on-demand source behave like a camera: frame k becomes available at
    ``start + k / fps`` (wall clock) and :meth:`read` returns only the newest one, so a
    slow consumer skips frames instead of falling behind."""

    live = True

    def __init__(self, inner: FrameSource) -> None:
        super().__init__()
        self.inner = inner
        self.fps, self.size_wh, self.frame_count = inner.fps, inner.size_wh, inner.frame_count
        self.fresh_frames = inner.fresh_frames
        self._buf = _NewestFrame()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pacer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            frame = self.inner.read()
            if frame is None:
                break
            due = start + frame.index / self.fps
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            self._buf.put(frame)
        self.ended, self.status = True, STATUS_ENDED
        self._buf.close()

    def _release(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe() + " (real-time paced)"


class PortraitMotionSource(GeneratedSource):
    """A still portrait filmed by a synthetic moving camera: pan, zoom and roll.

    Each frame shows the portrait, warped by a smooth similarity transform
    (:meth:`frame_from_image`), over a blurred, darkened enlargement of itself (so the
    backdrop has no second face). No download needed: the demo uses scikit-image's
    public-domain astronaut portrait. The known motion also serves steadiness tests.

    Args:
        image_rgb: (h, w, 3) uint8 RGB portrait.
        size_wh: output frame size.
        fps: frame rate.
        seconds: duration.
        pan: pan amplitude as fractions of the frame (x, y).
        zoom: relative zoom amplitude.
        roll_deg: roll amplitude in degrees.
        noise_sigma: Gaussian sensor noise (grey levels) added to each frame, 0 for none.
    """

    #: Periods (s) of the pan x, pan y, zoom and roll sinusoids: incommensurate, so the
    #: motion does not repeat within a demo.
    PERIODS_S = (8.0, 5.5, 6.0, 4.5)
    #: Portrait height as a fraction of the frame height at zoom 1.
    FILL = 0.95

    fresh_frames = True  # each frame is rendered into a new array

    def __init__(self, image_rgb: np.ndarray, size_wh: tuple[int, int] = (1280, 720), fps: float = 30.0,
                 seconds: float = 10.0, pan: tuple[float, float] = (0.08, 0.04), zoom: float = 0.15,
                 roll_deg: float = 7.0, noise_sigma: float = 0.0, seed: int = 0) -> None:
        img = np.ascontiguousarray(image_rgb[..., ::-1])  # RGB -> BGR, once
        self._img, self._size_wh = img, (int(size_wh[0]), int(size_wh[1]))
        self._pan, self._zoom, self._roll, self._noise, self._seed = pan, zoom, roll_deg, noise_sigma, seed
        self._fps = float(fps)
        w, h = self._size_wh
        ih, iw = img.shape[:2]
        cover = max(w / iw, h / ih)
        big = cv2.resize(img, (int(np.ceil(iw * cover)), int(np.ceil(ih * cover))), interpolation=cv2.INTER_LINEAR)
        y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
        back = cv2.GaussianBlur(big[y0:y0 + h, x0:x0 + w], (0, 0), w / 40.0)
        self._backdrop = (back.astype(np.float32) * 0.55).astype(np.float32)
        # Feathered alpha for the portrait's edge (8 % of its size), so it is not a hard square.
        feather = max(2, int(0.08 * min(ih, iw)))
        alpha = np.zeros((ih, iw), np.float32)
        alpha[feather:-feather, feather:-feather] = 1.0
        self._alpha = cv2.GaussianBlur(alpha, (0, 0), feather / 2.0)
        super().__init__(self._render, fps=fps, count=max(1, int(round(seconds * fps))), name="portrait-motion")

    def frame_from_image(self, index: int) -> np.ndarray:
        """3x3 similarity mapping portrait pixels to frame pixels at frame ``index``."""
        t = index / self._fps
        px, py, pz, pr = (2 * np.pi * t / p for p in self.PERIODS_S)
        w, h = self._size_wh
        ih, iw = self._img.shape[:2]
        scale = self.FILL * h / ih * (1.0 + self._zoom * np.sin(pz))
        angle = np.deg2rad(self._roll * np.sin(pr))
        cx = w / 2 + self._pan[0] * w * np.sin(px)
        cy = h / 2 + self._pan[1] * h * np.sin(py)
        c, s = np.cos(angle) * scale, np.sin(angle) * scale
        icx, icy = (iw - 1) / 2, (ih - 1) / 2
        return np.array([[c, -s, cx - c * icx + s * icy], [s, c, cy - s * icx - c * icy], [0, 0, 1]])

    def save(self, path: str | Path, fourcc: str = "MJPG") -> Path:
        """Write every frame to a video file (test and demo clips); returns ``path``."""
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size_wh)
        if not writer.isOpened():
            raise ValueError(f"cannot write video {path} with codec {fourcc}")
        try:
            for i in range(self.frame_count):
                writer.write(self._get(i))
        finally:
            writer.release()
        return Path(path)

    def _render(self, index: int) -> np.ndarray:
        mat = self.frame_from_image(index)[:2]
        w, h = self._size_wh
        fg = cv2.warpAffine(self._img, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = cv2.warpAffine(self._alpha, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
        out = fg.astype(np.float32) * a + self._backdrop * (1.0 - a)
        if self._noise > 0:
            out += np.random.default_rng([self._seed, index]).normal(0.0, self._noise, out.shape).astype(np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def open_source(camera: int | None = None, video: str | Path | None = None, size_wh: tuple[int, int] | None = None,
                fps: float | None = None, realtime: bool = True, loop: bool = False) -> FrameSource:
    """Open a camera (default index 0) or a video file.

    Args:
        camera: camera index (used when ``video`` is None).
        video: video file path.
        size_wh: requested camera size (files are used as they are).
        fps: requested camera frame rate.
        realtime: pace a file like a camera (newest frame only); False = every frame.
        loop: restart a file at its end.
    """
    if video is not None:
        src: FrameSource = VideoFileSource(video, loop=loop)
        return RealtimePacer(src) if realtime else src
    return CameraSource(0 if camera is None else camera, size_wh=size_wh, fps=fps)
