"""Recording: a video writer on its own thread, a keypoint log, and clean shutdown on signals.

:class:`VideoRecorder` encodes on a worker thread fed by a bounded queue (the live loop
never waits on the encoder unless asked to). It tries codecs in order, avc1 (H.264) ->
mp4v (MPEG-4 part 2) -> MJPG in an AVI, and reports the one it got: pip's OpenCV wheels
usually lack an H.264 encoder. It writes to ``<name>.partial-<pid><ext>`` and renames to
the final name only after ``VideoWriter.release()`` has written the index and the file has
been read back (OpenCV's writer drops write errors, e.g. a full disk, silently), so the final
file is always playable and holds every frame reported: a run killed hard leaves only the
partial file behind; a failed write is an error naming the partial file kept.

The output path is claimed (:func:`realtime.io.claim_output`) for the whole recording, so a
second recorder of the same path is refused instead of clobbering it; an existing file is
replaced only when the new one is complete, with a warning (as ``tryon train`` does).

:func:`terminate_as_interrupt` turns SIGTERM into ``KeyboardInterrupt`` so Ctrl-C,
``kill`` and exceptions all go through the same ``finally`` that closes the recorder.

:class:`KeypointLog` writes one JSON object per processed frame (JSON lines), flushed
line by line; a write error (full disk) truncates the file to its last complete line
and raises :class:`RecorderError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from realtime.io import OutputInUse, claim_output, ensure_writable_folder

log = logging.getLogger(__name__)

#: (fourcc, container suffix) tried in order for .mp4 / .mov / .m4v outputs.
MP4_CODECS: tuple[tuple[str, str], ...] = (("avc1", ".mp4"), ("mp4v", ".mp4"), ("MJPG", ".avi"))
#: For .avi outputs.
AVI_CODECS: tuple[tuple[str, str], ...] = (("MJPG", ".avi"),)
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi")


class RecorderError(RuntimeError):
    """The video cannot be written (no codec works, disk error)."""


@dataclass(frozen=True)
class RecordingReport:
    """What a recorder wrote."""

    path: Path
    codec: str
    frames: int
    dropped: int
    fps: float
    wall_s: float

    def summary(self) -> str:
        return (f"wrote {self.path} ({self.codec}): {self.frames} frames, {self.frames / self.fps:.2f} s of video "
                f"at {self.fps:g} fps, recorded in {self.wall_s:.1f} s"
                + (f", {self.dropped} frames dropped (encoder too slow)" if self.dropped else ""))


def _partial_path(path: Path) -> Path:
    """Where this process writes ``path`` until it is complete (unique per process)."""
    return path.with_name(f"{path.stem}.partial-{os.getpid()}{path.suffix}")


def check_output(path: Path, what: str) -> None:
    """Fail fast, before any work, when ``path`` cannot be written: its folder is created and
    probed with a temporary file, and no other process may be writing ``path`` now.

    Raises:
        RecorderError: the folder is not writable (named), or another process writes ``path``.
    """
    prepare_output(path, what, claim=False)


def prepare_output(path: Path, what: str, claim: bool = True) -> Any:
    """Create ``path``'s folder and claim ``path`` for this process; warn when it exists.

    Returns:
        The function that releases the claim.

    Raises:
        RecorderError: the folder cannot be written (named), or another process writes ``path``.
    """
    try:
        if claim:
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            ensure_writable_folder(path.parent)
        release = claim_output(path)
    except OutputInUse as exc:
        raise RecorderError(f"{what} {exc}") from None
    except OSError as exc:
        if not claim:  # ensure_writable_folder's message names the folder
            raise RecorderError(f"cannot write {what} {path}: {exc.strerror}") from None
        raise RecorderError(f"cannot write {what} {path}: folder {path.parent} is not writable "
                            f"({exc.strerror or exc}); choose another folder or fix its permissions") from None
    if not claim:
        release()
    elif path.exists():
        log.warning("%s exists: it is replaced by this %s", path, what)
    return release


def decodable_frames(path: Path, expected: int) -> int:
    """How many of ``expected`` frames ``path`` gives back when read (the file is verified,
    not trusted): the container's count and a read of the last frame, else a full decode."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0
        if expected > 0 and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == expected:
            cap.set(cv2.CAP_PROP_POS_FRAMES, expected - 1)
            if cap.read()[0]:
                return expected
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        n = 0
        while n < expected and cap.read()[0]:
            n += 1
        return n
    finally:
        cap.release()


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """Silence OpenCV's own log while probing codecs (FFmpeg's messages are governed by the
    ``OPENCV_FFMPEG_LOGLEVEL`` environment variable, read when FFmpeg is first used)."""
    from cv2.utils import logging as cv_logging

    level = cv_logging.getLogLevel()
    cv_logging.setLogLevel(cv_logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv_logging.setLogLevel(level)


def check_video_suffix(path: Path) -> str:
    """``path``'s suffix, lower case, if the recorder writes it.

    Raises:
        RecorderError: an unsupported suffix (named, with the supported ones).
    """
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise RecorderError(f"output {path}: unsupported video suffix {path.suffix!r}; use one of "
                            f"{', '.join(VIDEO_SUFFIXES)}")
    return suffix


def open_writer(path: Path, fps: float, size_wh: tuple[int, int]) -> tuple[Any, Path, str]:
    """Open a ``cv2.VideoWriter`` with the first codec that works for ``path``'s suffix.

    Returns:
        (writer, final path (its suffix may change to .avi), fourcc).

    Raises:
        RecorderError: unsupported suffix, or no codec could be opened.
    """
    suffix = check_video_suffix(path)
    chain = AVI_CODECS if suffix == ".avi" else MP4_CODECS
    tried = []
    for fourcc, ext in chain:
        final = path if ext == suffix or (ext == ".mp4" and suffix in (".mov", ".m4v")) else path.with_suffix(ext)
        with _opencv_quiet():  # a missing encoder is expected here; we report the outcome ourselves
            writer = cv2.VideoWriter(str(_partial_path(final)), cv2.VideoWriter_fourcc(*fourcc), float(fps),
                                     tuple(int(v) for v in size_wh))
        if writer.isOpened():
            if tried:
                log.info("video codec %s unavailable here; using %s (%s)", "/".join(tried), fourcc, final.name)
            return writer, final, fourcc
        writer.release()
        with contextlib.suppress(FileNotFoundError):
            _partial_path(final).unlink()
        tried.append(fourcc)
    raise RecorderError(f"cannot write {path}: none of the codecs {', '.join(tried)} is available in this OpenCV")


class VideoRecorder:
    """Threaded video writer with a bounded queue.

    Args:
        path: output file (.mp4, .mov, .m4v or .avi; parent folders are created).
        fps: frame rate written into the file.
        size_wh: frame size; frames of another size are resized.
        queue_size: frames buffered between the caller and the encoder.
        drop_when_full: if the encoder falls behind, drop frames (live preview) instead
            of blocking the caller (offline recording, the default).
    """

    def __init__(self, path: str | Path, fps: float, size_wh: tuple[int, int], queue_size: int = 32,
                 drop_when_full: bool = False) -> None:
        self.requested = Path(path)
        self._release = prepare_output(self.requested, "video")
        self.fps, self.size_wh = float(fps), (int(size_wh[0]), int(size_wh[1]))
        try:
            self._writer, self.path, self.codec = open_writer(self.requested, self.fps, self.size_wh)
        except BaseException:
            self._release()
            raise
        if self.path != self.requested and self.path.exists():
            log.warning("%s exists: it is replaced by this video", self.path)
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=queue_size)
        self._drop = drop_when_full
        self.frames = 0
        self.dropped = 0
        self._error: BaseException | None = None
        self._failure: str | None = None
        self._start = time.monotonic()
        self._closed = False
        self.report: RecordingReport | None = None
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self._error is not None:
                continue
            try:
                if (frame.shape[1], frame.shape[0]) != self.size_wh:
                    frame = cv2.resize(frame, self.size_wh, interpolation=cv2.INTER_AREA)
                self._writer.write(frame)
                self.frames += 1
            except cv2.error as exc:
                self._error = exc

    def write(self, frame_bgr: np.ndarray) -> bool:
        """Queue a BGR frame (copied); False if it was dropped.

        Raises:
            RecorderError: the recorder is closed or the encoder failed.
        """
        if self._closed:
            raise RecorderError(f"recorder for {self.path} is closed")
        if self._error is not None:
            raise RecorderError(f"writing {self.path} failed: {self._error}")
        frame = np.array(frame_bgr, copy=True)
        if self._drop:
            try:
                self._queue.put_nowait(frame)
            except queue.Full:
                self.dropped += 1
                return False
        else:
            self._queue.put(frame)
        return True

    def close(self) -> RecordingReport:
        """Drain the queue, release the writer, read the file back and move it to its final name.

        Raises:
            RecorderError: the encoder failed, or the file does not give back every frame
                written (again on every later call: a failed recording never reads as done).
        """
        if self.report is not None:
            if self._failure is not None:
                raise RecorderError(self._failure)
            return self.report
        self._closed = True
        failure = None
        try:
            with _signals_deferred():  # a second Ctrl-C must not truncate the file
                self._queue.put(None)
                self._thread.join()
                self._writer.release()
                partial = _partial_path(self.path)
                good = decodable_frames(partial, self.frames) if self.frames > 0 and partial.exists() else 0
                if self.frames > 0 and good == self.frames:
                    os.replace(partial, self.path)
                elif self.frames > 0:
                    failure = (f"writing {self.path} failed: the file gives back {good} of the {self.frames} "
                               "frames written (disk full or a write error?); ")
                    if good > 0:
                        failure += f"the readable part is kept in {partial}"
                    else:
                        failure += "nothing readable was written, the partial file is removed"
                        with contextlib.suppress(FileNotFoundError):
                            partial.unlink()
                    if self.path.exists():
                        failure += f"; the earlier {self.path} is untouched"
                else:
                    with contextlib.suppress(FileNotFoundError):
                        partial.unlink()
        finally:
            self._release()
        self.report = RecordingReport(self.path, self.codec, self.frames, self.dropped, self.fps,
                                      time.monotonic() - self._start)
        if self._error is not None:
            failure = f"writing {self.path} failed: {self._error}"
        self._failure = failure
        if failure is not None:
            raise RecorderError(failure)
        return self.report

    def __enter__(self) -> "VideoRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold off SIGINT / SIGTERM while a file is finalised (it is closed at the end of a run anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _hold(signum: int, _frame: Any) -> None:
        log.warning("%s received while finalising the video; finishing the file first", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, _hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class KeypointLog:
    """JSON lines, one object per processed frame; each line written through as it comes.

    Raises:
        RecorderError: the folder is not writable, another process writes the same path, or
            a write failed (the file is cut back to its last complete line, which is kept).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._release = prepare_output(self.path, "keypoint log")
        try:
            self._fh = self.path.open("wb", buffering=0)
        except OSError as exc:
            self._release()
            raise RecorderError(f"cannot write keypoint log {self.path}: {exc.strerror or exc}") from None
        self.lines = 0
        self._size = 0

    def write(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                view = view[self._fh.write(view):]
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._fh.truncate(self._size)  # no torn last line
            self.close()
            raise RecorderError(f"writing keypoint log {self.path} failed ({exc.strerror or exc}; disk full?): "
                                f"the {self.lines} complete records written are kept") from None
        self._size += len(data)
        self.lines += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._release()

    def __enter__(self) -> "KeypointLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` in the main thread (like Ctrl-C),
    so recordings are finalised by the same ``finally`` clauses. No-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
