"""Recording: a video writer on its own thread, a keypoint log, and clean shutdown on signals.

:class:`VideoRecorder` encodes on a worker thread fed by a bounded queue (the live loop
never waits on the encoder unless asked to). MP4 outputs are **H.264 through PyAV** (its
wheels bundle libx264; :func:`h264_encoder`), which plays in browsers, chat previews and
social sites:

* while recording, the file ``<name>.partial-<pid>.mp4`` is a *fragmented* MP4
  (:data:`FRAGMENT_MOVFLAGS`, a keyframe and a fragment every :data:`KEYFRAME_INTERVAL_S`
  of video), so a run killed hard (SIGKILL, power loss) leaves a file that plays up to its
  last fragment;
* on a normal finish it is remuxed (no re-encoding) into an MP4 with the index up front
  (``faststart``, for streaming and sharing), the result's frame count checked, and only
  then renamed to the final name.

Timestamps are the frames' capture times (``write(frame, timestamp)``), so a video plays at
the speed it was lived in every mode, however many frames a slow inference skipped.

Without PyAV (or for ``.avi``) the OpenCV writer is the fallback: codecs avc1 -> mp4v
(MPEG-4 part 2) -> MJPG in an AVI, the first that opens. Its frame rate is fixed, so frames
are repeated or skipped to follow the timestamps. It writes to ``<name>.partial-<pid><ext>``
and renames to the final name only after ``VideoWriter.release()`` has written the index and
the file has been read back (OpenCV's writer drops write errors, e.g. a full disk,
silently). Either way the final file is always playable and holds every frame reported; a
failed write is an error naming the partial file kept.

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
import fractions
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
from realtime.live.console import opencv_quiet

log = logging.getLogger(__name__)

#: (fourcc, container suffix) tried in order for .mp4 / .mov / .m4v outputs.
MP4_CODECS: tuple[tuple[str, str], ...] = (("avc1", ".mp4"), ("mp4v", ".mp4"), ("MJPG", ".avi"))
#: For .avi outputs.
AVI_CODECS: tuple[tuple[str, str], ...] = (("MJPG", ".avi"),)
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi")
#: Suffixes PyAV writes as H.264 in MP4.
H264_SUFFIXES = (".mp4", ".mov", ".m4v")
#: While recording: a fragment per keyframe, no index needed to play (a killed run's file plays).
FRAGMENT_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
#: Seconds of video between keyframes, so between fragments: what a hard kill can lose at most.
KEYFRAME_INTERVAL_S = 1.0
#: libx264 settings. superfast: 30 ms per 720p frame on a loaded 2-core EPYC (veryfast 53 ms,
#: ultrafast 14 ms but files 2x larger); the recorder thread must keep up with a live camera.
H264_OPTIONS = {"preset": "superfast", "crf": "23", "forced-idr": "1"}
#: Time base of the H.264 stream's timestamps (1 ms).
H264_TIME_BASE = fractions.Fraction(1, 1000)


class RecorderError(RuntimeError):
    """The video cannot be written (no codec works, disk error)."""


@dataclass(frozen=True)
class RecordingReport:
    """What a recorder wrote (``duration_s``: the video's length, from the frames' timestamps)."""

    path: Path
    codec: str
    frames: int
    dropped: int
    fps: float
    wall_s: float
    duration_s: float | None = None

    def summary(self) -> str:
        duration = self.frames / self.fps if self.duration_s is None else self.duration_s
        return (f"wrote {self.path} ({self.codec}): {self.frames} frames, {duration:.2f} s of video "
                f"({self.frames / duration if duration > 0 else 0:.1f} fps), recorded in {self.wall_s:.1f} s"
                + (f", {self.dropped} frames dropped (encoder too slow)" if self.dropped else ""))


def h264_encoder() -> str | None:
    """Name of PyAV's H.264 encoder (libx264, or another), None without PyAV or one."""
    try:
        import av
    except ImportError:
        return None
    for name in ("libx264", "h264", "libopenh264"):
        try:
            return av.codec.Codec(name, "w").name
        except Exception:  # noqa: BLE001 - PyAV raises its own error types for unknown codecs
            continue
    return None


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
        with opencv_quiet():  # a missing encoder is expected here; we report the outcome ourselves
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


class _AvWriter:
    """H.264 into a fragmented MP4 through PyAV; timestamps in :data:`H264_TIME_BASE`."""

    def __init__(self, partial: Path, fps: float, size_wh: tuple[int, int], encoder: str) -> None:
        import av

        self._av = av
        self.fps = fps
        # flush_packets: each finished fragment reaches the OS at once, not when the 32 KiB I/O buffer fills
        self.container = av.open(str(partial), "w", format="mp4",
                                 options={"movflags": FRAGMENT_MOVFLAGS, "flush_packets": "1"})
        try:
            self.stream = self.container.add_stream(encoder, rate=fractions.Fraction(fps).limit_denominator(1001),
                                                    options=dict(H264_OPTIONS) if encoder == "libx264" else {})
            self.stream.width, self.stream.height = size_wh
            self.stream.pix_fmt = "yuv420p"
            self.stream.time_base = H264_TIME_BASE
            self.stream.codec_context.time_base = H264_TIME_BASE
            self.stream.codec_context.gop_size = 10 * max(1, int(round(fps)))  # keyframes are forced by time
        except BaseException:
            self.container.close()
            raise
        self._t0: float | None = None
        self._last_pts = -1
        self._last_key = -float("inf")
        self.last_t = 0.0
        self.frames_in_file = 0

    def write(self, frame_bgr: np.ndarray, t: float) -> None:
        if self._t0 is None:
            self._t0 = t
        rel = t - self._t0
        pts = max(int(round(rel / H264_TIME_BASE)), self._last_pts + 1)
        self._last_pts = pts
        self.last_t = pts * float(H264_TIME_BASE)
        frame = self._av.VideoFrame.from_ndarray(frame_bgr, format="bgr24")
        frame.pts, frame.time_base = pts, H264_TIME_BASE
        if rel - self._last_key >= KEYFRAME_INTERVAL_S:
            frame.pict_type = self._av.video.frame.PictureType.I  # a keyframe starts a fragment
            self._last_key = rel
        self._mux(self.stream.encode(frame))
        self.frames_in_file += 1

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            if not packet.duration:
                packet.duration = int(round(1 / (self.fps * H264_TIME_BASE)))  # the last frame's length
            self.container.mux(packet)

    def release(self) -> None:
        try:
            self._mux(self.stream.encode(None))
        finally:
            self.container.close()


class _CvWriter:
    """``cv2.VideoWriter`` at a fixed frame rate: frames repeated or skipped to follow the timestamps."""

    def __init__(self, writer: Any, fps: float) -> None:
        self.writer, self.fps = writer, fps
        self._t0: float | None = None
        self.frames_in_file = 0
        self.last_t = 0.0

    def write(self, frame_bgr: np.ndarray, t: float) -> None:
        if self._t0 is None:
            self._t0 = t
        due = int(round((t - self._t0) * self.fps)) + 1  # frames the file should hold with this one
        if due <= self.frames_in_file:
            return  # faster than the file's rate: this frame's slot is taken
        for _ in range(due - self.frames_in_file):
            self.writer.write(frame_bgr)
        self.frames_in_file = due
        self.last_t = (due - 1) / self.fps

    def release(self) -> None:
        self.writer.release()


def finish_mp4(partial: Path, out: Path) -> int:
    """Remux the fragmented ``partial`` into ``out`` with the index up front (``faststart``);
    returns the number of video frames ``out`` holds (read back from it)."""
    import av

    with av.open(str(partial)) as src, av.open(str(out), "w", format="mp4", options={"movflags": "faststart"}) as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream)
        for packet in src.demux(in_stream):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = out_stream
            dst.mux(packet)
    with av.open(str(out)) as check:
        return sum(1 for packet in check.demux(check.streams.video[0]) if packet.size)


class VideoRecorder:
    """Threaded video writer with a bounded queue.

    Args:
        path: output file (.mp4, .mov, .m4v or .avi; parent folders are created).
        fps: nominal frame rate (the camera's); the timestamps given to :meth:`write` decide
            when each frame plays.
        size_wh: frame size; frames of another size are resized (H.264: to even sizes).
        queue_size: frames buffered between the caller and the encoder.
        drop_when_full: if the encoder falls behind, drop frames (live preview) instead
            of blocking the caller (offline recording, the default).
        encoder: ``auto`` (H.264 through PyAV for MP4 when available, else OpenCV) or
            ``opencv`` (the fallback chain, e.g. to compare).
    """

    def __init__(self, path: str | Path, fps: float, size_wh: tuple[int, int], queue_size: int = 32,
                 drop_when_full: bool = False, encoder: str = "auto") -> None:
        if encoder not in ("auto", "opencv"):
            raise ValueError(f"encoder must be auto or opencv, got {encoder!r}")
        self.requested = Path(path)
        self._release = prepare_output(self.requested, "video")
        self.fps, self.size_wh = float(fps), (int(size_wh[0]), int(size_wh[1]))
        h264 = h264_encoder() if encoder == "auto" and self.requested.suffix.lower() in H264_SUFFIXES else None
        try:
            if h264 is not None:
                self.size_wh = (self.size_wh[0] // 2 * 2, self.size_wh[1] // 2 * 2)  # yuv420p needs even sizes
                self.path = self.requested
                try:
                    self._writer: Any = _AvWriter(_partial_path(self.path), self.fps, self.size_wh, h264)
                except Exception as exc:  # noqa: BLE001 - av / OS errors: named, not a traceback
                    raise RecorderError(f"cannot write video {self.path}: {exc}") from exc
                self.codec = f"H.264 {h264}"
            else:
                writer, self.path, fourcc = open_writer(self.requested, self.fps, self.size_wh)
                self._writer = _CvWriter(writer, self.fps)
                self.codec = fourcc
                if self.requested.suffix.lower() in H264_SUFFIXES and encoder == "auto":
                    log.info("PyAV with an H.264 encoder is not installed: writing %s with OpenCV's %s "
                             "(pip install av for H.264 that plays everywhere and survives a crash)",
                             self.path.name, fourcc)
        except BaseException:
            self._release()
            raise
        if self.path != self.requested and self.path.exists():
            log.warning("%s exists: it is replaced by this video", self.path)
        self._queue: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue(maxsize=queue_size)
        self._drop = drop_when_full
        self.frames = 0
        self.frames_offered = 0
        self.dropped = 0
        self._error: BaseException | None = None
        self._failure: str | None = None
        self._start = time.monotonic()
        self._closed = False
        self.report: RecordingReport | None = None
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    @property
    def h264(self) -> bool:
        return isinstance(self._writer, _AvWriter)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue
            frame, t = item
            try:
                if (frame.shape[1], frame.shape[0]) != self.size_wh:
                    frame = cv2.resize(frame, self.size_wh, interpolation=cv2.INTER_AREA)
                self._writer.write(frame, t)
                self.frames += 1
            except Exception as exc:  # noqa: BLE001 - cv2.error, OSError / av errors (disk full): reported
                self._error = exc

    def write(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> bool:
        """Queue a BGR frame (copied) captured at ``timestamp`` (seconds, any origin; None:
        the next slot at the nominal frame rate); False if it was dropped.

        Raises:
            RecorderError: the recorder is closed or the encoder failed.
        """
        if self._closed:
            raise RecorderError(f"recorder for {self.path} is closed")
        if self._error is not None:
            raise RecorderError(f"writing {self.path} failed: {self._error}")
        t = (self.frames_offered / self.fps) if timestamp is None else float(timestamp)
        self.frames_offered += 1
        item = (np.array(frame_bgr, copy=True), t)
        if self._drop:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped += 1
                return False
        else:
            self._queue.put(item)
        return True

    def _finalise(self) -> str | None:
        """Release the writer and move a verified file to the final name; the failure text, or None."""
        partial = _partial_path(self.path)
        try:
            self._writer.release()
        except Exception as exc:  # noqa: BLE001 - av / OS errors while flushing (disk full)
            self._error = self._error or exc
        expected = self._writer.frames_in_file
        if expected == 0:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            return None
        if self.h264 and self._error is None:
            finishing = self.path.with_name(f"{self.path.stem}.finishing-{os.getpid()}{self.path.suffix}")
            try:
                good = finish_mp4(partial, finishing)
                why = f"it holds {good} of the {expected} frames written"
            except Exception as exc:  # noqa: BLE001 - av / OS errors (disk full): keep the fragmented file
                good, why = -1, str(exc)
            if good == expected:
                os.replace(finishing, self.path)
                partial.unlink()
                return None
            with contextlib.suppress(FileNotFoundError):
                finishing.unlink()
            failure = f"finishing {self.path} failed ({why}; disk full?); "
        elif self.h264:
            failure = f"writing {self.path} failed ({self._error}; disk full?); "
        else:
            good = decodable_frames(partial, expected) if partial.exists() else 0
            if self._error is None and good == expected:
                os.replace(partial, self.path)
                return None
            failure = (f"writing {self.path} failed: the file gives back {good} of the {expected} "
                       "frames written (disk full or a write error?); ")
        kept = decodable_frames(partial, expected) if partial.exists() else 0
        if kept > 0:
            failure += f"the readable part ({kept} frames) is kept in {partial}"
        else:
            failure += "nothing readable was written, the partial file is removed"
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        if self.path.exists():
            failure += f"; the earlier {self.path} is untouched"
        return failure

    def close(self) -> RecordingReport:
        """Drain the queue, finish the file (see the module docstring) and move it to its final name.

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
                failure = self._finalise()
        finally:
            self._release()
        duration = self._writer.last_t + 1.0 / self.fps if self.frames else 0.0
        self.report = RecordingReport(self.path, self.codec, self._writer.frames_in_file, self.dropped, self.fps,
                                      time.monotonic() - self._start, duration)
        if failure is None and self._error is not None:
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
