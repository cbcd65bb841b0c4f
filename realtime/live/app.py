"""The product: ``tryon live``, ``tryon record`` and ``tryon demo``.

Each ``*_main(argv)`` parses its options, checks them, builds an options dataclass
(:class:`LiveOptions`, :class:`RecordOptions`, :class:`DemoOptions`, each with the shared
:class:`SessionOptions`) and calls one library function here (:func:`run_live`,
:func:`run_record`, :func:`run_demo`), which wires a frame source, a
:class:`~realtime.live.pipeline.TryOnPipeline` and sinks (window, recorder, keypoint log,
virtual camera) into a :class:`~realtime.live.pipeline.FrameLoop`.

Exit status: 0 done (also after Ctrl-C / SIGTERM, the outputs are finalised), 2 for
problems the user must fix, with one message naming the cause:

* no camera: ``camera N is not available; cameras found: ...``;
* an accessory that cannot be read: ``accessory image not found: PATH`` /
  ``cannot read image PATH ...`` (skipped with that message while others remain; exit 2
  when none remain);
* a missing or mismatched model: the :class:`~realtime.backends.base.BackendError` text;
* ``--virtual-cam`` without ``pyvirtualcam`` installed, or no display for the window
  (``$DISPLAY`` unset, or naming an X server that does not answer);
* an output that cannot be written (its folder named; checked before the models load),
  one another process is writing, or a recording that does not read back (full disk);
* an empty video; a negative ``--camera``; ``--fps`` / ``--resolution`` with ``--video``.

A run in which no frame had a face, or the accessory never appeared, says so (warnings,
and a ``faces:`` line in the summary).

Keys in the live window: n / right arrow next accessory, p / left arrow previous,
c category, m mirror, s smoothing, h HUD, r start/stop recording, space screenshot,
q / Esc quit.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from realtime.accessories import Accessory, load_accessory
from realtime.backends.resolver import (BACKEND_CHOICES, PRECISION_CHOICES, PRECISION_HELP, ModelResolver,
                                       default_threads)
from realtime.cli import int_at_least, positive_float, positive_int
from realtime.config import CATEGORIES, IMAGE_SUFFIXES, load_config
from realtime.errors import BackendError
from realtime.live.capture import (STATUS_OK, CameraError, FrameSource, PortraitMotionSource, VideoFileSource,
                                   open_source)
from realtime.live.detectors import DEFAULT_DETECTOR, detector_names, make_detector
from realtime.live.display import PreviewBuffer
from realtime.live.pipeline import STATUS_NO_FACE, STATUS_NON_FINITE, FrameLoop, LoopReport, Output, TryOnPipeline
from realtime.live.pipeline import STATUS_OK as EST_OK
from realtime.live.record import (KeypointLog, RecorderError, VideoRecorder, check_output, check_video_suffix,
                                  terminate_as_interrupt)
from realtime.live.render import draw_hud, draw_quad, mirror
from realtime.live.smoothing import SmoothingConfig
from realtime.procedural import accessory_by_name, bundled_accessories

log = logging.getLogger(__name__)

KEY_HELP = ("keys: n/-> next  p/<- previous  c category  m mirror  s smoothing  h HUD  "
            "r record  space screenshot  q/Esc quit")
#: Arrow-key codes from cv2.waitKeyEx: GTK/Qt on Linux, then Windows.
_RIGHT = (65363, 2555904, 0xFF53)
_LEFT = (65361, 2424832, 0xFF51)


class UsageError(RuntimeError):
    """A problem the user must fix (bad input, missing device or package): exit status 2."""


# --------------------------------------------------------------------------------------
# Options shared by the commands
# --------------------------------------------------------------------------------------

def parse_resolution(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution must look like 1280x720, got {text!r}") from None
    if w < 64 or h < 64:
        raise argparse.ArgumentTypeError(f"resolution {text} is too small")
    return w, h


#: ``--camera N``: N >= 0 (OpenCV crashes on some negative indices).
camera_index = int_at_least(0, "0 is the first camera; or use --video FILE")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="auto: tensorrt if an engine is given and importable, else onnxruntime if an ONNX "
                        "model is given, torch for a checkpoint; the shipped models run on openvino when it is "
                        "installed (exported once into ~/.cache/tryon), else onnxruntime / torch")
    g.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                   help="torch checkpoint (.pt); repeat for several categories")
    g.add_argument("--onnx", action="append", default=[], metavar="PATH",
                   help="ONNX per-frame graph (or a 'tryon export' folder)")
    g.add_argument("--engine", action="append", default=[], metavar="PATH", help="TensorRT engine")
    g.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    g.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help=PRECISION_HELP)
    g.add_argument("--threads", type=positive_int, default=None,
                   help=f"CPU inference threads (default: half the cores, here {default_threads()})")
    g.add_argument("--detector", choices=detector_names(), default=DEFAULT_DETECTOR,
                   help=f"face detector (default {DEFAULT_DETECTOR}, chosen by benchmarks/detection.py)")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="smoothing option (realtime.live.smoothing.SmoothingConfig), e.g. --set beta=2 "
                        "--set min_cutoff=0.5 (repeatable)")


def _add_accessory_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("accessories")
    g.add_argument("--accessory", action="append", default=[], metavar="NAME_OR_PATH",
                   help="bundled name (glasses/round, hat/fedora, tie/bow_tie, ...) or an image file; "
                        "repeatable (default: all bundled accessories)")
    g.add_argument("--category", choices=CATEGORIES, help="starting category / category of image files")


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keypoints-out", type=Path, metavar="FILE.jsonl",
                   help="JSON lines: frame, timestamp, raw and smoothed keypoints, confidence, latency")
    p.add_argument("--show-keypoints", action="store_true", help="draw the keypoint quad (debug)")


@dataclass(frozen=True)
class ModelOptions:
    """Which models serve the categories, and how they run (see
    :class:`~realtime.backends.resolver.ModelResolver`)."""

    backend: str = "auto"
    checkpoints: tuple[Path, ...] = ()
    onnx: tuple[Path, ...] = ()
    engines: tuple[Path, ...] = ()
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None

    def resolver(self) -> ModelResolver:
        return ModelResolver(self.backend, checkpoints=self.checkpoints, onnx=self.onnx, engines=self.engines,
                             device=self.device, precision=self.precision, threads=self.threads)


@dataclass(frozen=True)
class SessionOptions:
    """What every command shares: models, accessories, smoothing.

    Attributes:
        model: the models.
        accessories: bundled names or image paths (empty: every bundled accessory).
        category: starting category, and the category of image files that do not say.
        smoothing: keypoint smoothing.
        detector: face detector name (:data:`realtime.live.detectors.DETECTORS`).
    """

    model: ModelOptions = field(default_factory=ModelOptions)
    accessories: tuple[str, ...] = ()
    category: str | None = None
    detector: str = DEFAULT_DETECTOR
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)


@dataclass(frozen=True)
class OutputOptions:
    """Side outputs every command can write."""

    keypoints_out: Path | None = None
    show_keypoints: bool = False


@dataclass(frozen=True)
class LiveOptions:
    """``tryon live``: a camera (or a video paced like one) to a window, recording, virtual camera."""

    session: SessionOptions = field(default_factory=SessionOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    camera: int = 0
    video: Path | None = None
    resolution: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    pace: bool = True
    loop: bool = False
    mode: str = "auto"
    display: bool = True
    mirror: bool = True
    hud: bool = True
    virtual_cam: bool = False
    record: Path | None = None
    screenshot_dir: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True)
class RecordOptions:
    """``tryon record``: every frame of a video (or a camera) to a file."""

    out: Path
    session: SessionOptions = field(default_factory=SessionOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    video: Path | None = None
    camera: int | None = None
    duration: float | None = None
    resolution: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    hud: bool = False


@dataclass(frozen=True)
class DemoOptions:
    """``tryon demo``: the astronaut portrait under synthetic camera motion, to a file."""

    out: Path = Path("demo.mp4")
    session: SessionOptions = field(default_factory=SessionOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    seconds: float = 10.0
    fps: float = 30.0
    resolution: tuple[int, int] = (1280, 720)
    switch_every: float = 1.5
    hud: bool = True


def _session_options(args: argparse.Namespace) -> SessionOptions:
    """The shared options from parsed arguments (smoothing through the one config loader)."""
    model = ModelOptions(backend=args.backend, checkpoints=tuple(args.checkpoint), onnx=tuple(args.onnx),
                         engines=tuple(args.engine), device=args.device, precision=args.precision,
                         threads=args.threads)
    return SessionOptions(model=model, accessories=tuple(args.accessory), category=args.category,
                          smoothing=load_config(SmoothingConfig, overrides=args.overrides), detector=args.detector)


def _output_options(args: argparse.Namespace) -> OutputOptions:
    return OutputOptions(keypoints_out=args.keypoints_out, show_keypoints=args.show_keypoints)


@dataclass
class Session:
    """What every command builds from the shared options."""

    resolver: ModelResolver
    pipeline: TryOnPipeline
    smoothing: SmoothingConfig

    def backend_description(self) -> str:
        return self.resolver.describe(self.pipeline.category)

    def close(self) -> None:
        self.resolver.close()


def load_catalogue(names_or_paths: Sequence[str], category: str | None) -> dict[str, list[Accessory]]:
    """Accessories by category from names / image paths; all bundled ones when none given.

    Unreadable entries are skipped with an error message naming the file.

    Raises:
        UsageError: none of the given accessories could be loaded.
    """
    if not names_or_paths:
        return {c: bundled_accessories(c) for c in CATEGORIES}
    out: dict[str, list[Accessory]] = {}
    problems = []
    for item in names_or_paths:
        path = Path(item)
        try:
            if path.suffix.lower() in IMAGE_SUFFIXES or path.exists():
                try:
                    acc = load_accessory(path, None)
                except ValueError as exc:
                    if category is None or "cannot tell the category" not in str(exc):
                        raise
                    acc = load_accessory(path, category)
            else:
                acc = accessory_by_name(item)
        except (FileNotFoundError, ValueError) as exc:
            log.error("skipping accessory %s: %s", item, exc)
            problems.append(str(exc))
            continue
        out.setdefault(acc.category, []).append(acc)
    if not out:
        raise UsageError("no usable accessory: " + "; ".join(problems))
    return {c: out[c] for c in CATEGORIES if c in out}


def build_session(opts: SessionOptions, categories: Sequence[str] | None = None) -> Session:
    """Resolver + catalogue + pipeline from the shared options."""
    smoothing = opts.smoothing
    resolver = opts.model.resolver()
    catalogue = load_catalogue(opts.accessories, opts.category)
    if categories is not None:
        catalogue = {c: a for c, a in catalogue.items() if c in categories}
    start = opts.category
    if start is None and resolver.user_categories:
        start = next((c for c in resolver.user_categories if c in catalogue), None)
    if start is not None and start not in catalogue:
        names = ", ".join(a.name for accs in catalogue.values() for a in accs)
        raise UsageError(f"no accessory of category {start!r} among {names}")
    try:
        detector = make_detector(opts.detector)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"--detector {opts.detector}: {exc}") from exc
    pipeline = TryOnPipeline(resolver, catalogue, category=start, smoothing=smoothing, detector=detector)
    log.info("model for %s: %s", pipeline.category, resolver.describe(pipeline.category))
    return Session(resolver, pipeline, smoothing)


# --------------------------------------------------------------------------------------
# Sinks
# --------------------------------------------------------------------------------------

def hud_text(out: Output, session: Session, extra: Sequence[str] = (),
             offline_frames: int | None = None) -> tuple[list[str], str | None]:
    """HUD lines and the warning line (None when all is well) for one output.

    Live: display FPS and inference rate. Offline (``offline_frames`` = total frames, for
    rendered videos whose playback rate is fixed): frame number and per-frame latencies.
    """
    est = out.estimate
    infer_ms = est.times_ms.get("infer", 0.0) if est else 0.0
    pipe = session.pipeline
    acc = pipe.accessory
    n = len(pipe.catalogue[pipe.category])
    idx = pipe.catalogue[pipe.category].index(acc) + 1
    if offline_frames is None:
        speed = f"display {out.display_fps:5.1f} fps | inference {out.inference_hz:5.1f} Hz, {infer_ms:4.0f} ms"
    else:
        speed = (f"frame {out.frame.index + 1}/{offline_frames} | inference {infer_ms:4.0f} ms, "
                 f"all stages {sum(out.times_ms.values()):4.0f} ms")
    lines = [f"{speed} | {session.backend_description()}",
             f"{acc.name} ({idx}/{n}) | smoothing {'on' if pipe.smoother.enabled else 'off'}"
             + (f" | conf {est.confidence:.2f}" if est and est.confidence is not None else ""),
             *extra]
    warning = None
    if out.source_status != STATUS_OK:
        warning = out.source_status
    elif est is not None and est.status != EST_OK:
        # Why nothing is drawn: no face, a detection the network has not confirmed / refused,
        # the face left, low confidence (realtime.live.pipeline.Estimate.status).
        warning = "no face found" if est.status == STATUS_NO_FACE else est.status
    elif session.resolver.untrained(pipe.category):
        warning = "UNTRAINED weights: placements are meaningless"
    return lines, warning


class FaceTally:
    """Counts the frames with no face and those where the accessory was drawn, so a run in
    which the try-on never happened says so instead of ending like a good one."""

    def __init__(self) -> None:
        self.frames = self.no_face = self.shown = self.non_finite = 0

    def __call__(self, out: Output) -> None:
        if out.stale:
            return
        self.frames += 1
        est = out.estimate
        if est is None or est.status == STATUS_NO_FACE:
            self.no_face += 1
        elif est.status == STATUS_NON_FINITE:
            self.non_finite += 1
        if est is not None and est.visible and est.smooth_pts_xy is not None:
            self.shown += 1

    def report(self) -> list[str]:
        """Log what went wrong; returns the line for the report."""
        if not self.frames:
            return []
        if self.no_face:
            log.warning("no face in %d of %d frames", self.no_face, self.frames)
        if self.non_finite:
            log.warning("the model's output was not finite (NaN/inf) in %d of %d frames: is the model broken?",
                        self.non_finite, self.frames)
        if not self.shown:
            cause = ("no face was found in any frame" if self.no_face == self.frames
                     else "the model's confidence gate hid it in every frame")
            log.warning("the accessory never appeared in %d frames: %s", self.frames, cause)
        return [f"faces: found in {self.frames - self.no_face} of {self.frames} frames, accessory shown in "
                f"{self.shown}"]


class KeypointSink:
    """Writes one JSON line per (non-stale) output frame."""

    def __init__(self, path: Path) -> None:
        self.log = KeypointLog(path)

    def __call__(self, out: Output) -> None:
        if out.stale:
            return
        if out.estimate is None:
            self.log.write({"frame": out.frame.index, "timestamp": round(out.frame.timestamp, 6),
                            "inferred_frame": None, "accessory": None, "category": None, "raw": None,
                            "smoothed": None, "confidence": None, "visible": False, "status": "no estimate yet",
                            "latency_ms": {k: round(v, 3) for k, v in out.times_ms.items()}})
            return
        self.log.write(out.estimate.record(out.frame, extra_ms=out.times_ms))

    def close(self) -> None:
        self.log.close()


class RecordSink:
    """Writes every (non-stale) composite into a :class:`VideoRecorder`, opened lazily."""

    def __init__(self, path: Path, fps: float, hud: Session | None = None, drop_when_full: bool = False,
                 show_keypoints: bool = False, hud_extra: Sequence[str] = (),
                 offline_frames: int | None = None) -> None:
        self.path, self.fps, self.hud, self.drop = path, fps, hud, drop_when_full
        self.show_keypoints, self.hud_extra, self.offline_frames = show_keypoints, hud_extra, offline_frames
        self.recorder: VideoRecorder | None = None
        self.reports: list[Any] = []

    def __call__(self, out: Output) -> None:
        if out.stale:
            return
        img = out.composite
        if self.hud is not None or self.show_keypoints:
            img = img.copy()
            if self.show_keypoints and out.estimate is not None and out.estimate.smooth_pts_xy is not None:
                draw_quad(img, out.estimate.smooth_pts_xy)
            if self.hud is not None:
                draw_hud(img, *hud_text(out, self.hud, self.hud_extra, self.offline_frames))
        if self.recorder is None:
            self.recorder = VideoRecorder(self.path, self.fps, (img.shape[1], img.shape[0]),
                                          drop_when_full=self.drop)
            log.info("recording to %s (%s)", self.recorder.path, self.recorder.codec)
        self.recorder.write(img)

    def close(self) -> None:
        if self.recorder is not None:
            report = self.recorder.close()
            self.reports.append(report)
            log.info("%s", report.summary())
            self.recorder = None


class VirtualCamSink:
    """Sends composites to a virtual camera (``pyvirtualcam``), un-mirrored, no HUD."""

    def __init__(self, size_wh: tuple[int, int], fps: float) -> None:
        try:
            import pyvirtualcam  # optional
        except ImportError:
            raise UsageError("--virtual-cam needs the optional package pyvirtualcam "
                             "(pip install pyvirtualcam; on Linux also the v4l2loopback module)") from None
        try:
            self.cam = pyvirtualcam.Camera(width=size_wh[0], height=size_wh[1], fps=fps)
        except RuntimeError as exc:
            raise UsageError(f"cannot open a virtual camera: {exc}") from exc
        log.info("virtual camera: %s", self.cam.device)

    def __call__(self, out: Output) -> None:
        if out.stale:
            return
        img = out.composite
        if (img.shape[1], img.shape[0]) != (self.cam.width, self.cam.height):
            img = cv2.resize(img, (self.cam.width, self.cam.height), interpolation=cv2.INTER_AREA)
        self.cam.send(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        self.cam.close()


def check_display() -> None:
    """Fail early (instead of a GUI toolkit abort) when no display is available: ``$DISPLAY``
    unset, or set to an X server that does not answer (Qt would abort the process)."""
    if not sys.platform.startswith("linux") or os.environ.get("WAYLAND_DISPLAY"):
        return
    display = os.environ.get("DISPLAY")
    hint = "run with --no-display (and --record FILE, --virtual-cam or --keypoints-out)"
    if not display:
        raise UsageError(f"no display found ($DISPLAY is not set): {hint}")
    problem = x_display_problem(display)
    if problem:
        raise UsageError(f"no display found ($DISPLAY={display}: {problem}): {hint}")


def x_display_problem(display: str, timeout_s: float = 2.0) -> str | None:
    """Why the X server of ``display`` (``[host]:N[.S]``) does not answer, or None when it does.

    Connects to its socket (``/tmp/.X11-unix/XN``, the abstract ``@/tmp/.X11-unix/XN``, or TCP
    port 6000 + N) and sends the connection set-up request; any reply (even a refusal of
    refusal: authorisation is the toolkit's business, with the cookie in ``$XAUTHORITY``) means
    a server is there.
    """
    import socket
    import struct

    host, _, rest = display.rpartition(":")
    try:
        number = int(rest.split(".")[0])
    except ValueError:
        return "not a valid X display name"
    if host.startswith("/"):  # launchd / path sockets (macOS XQuartz style)
        targets = [(socket.AF_UNIX, display.split(":")[0])]
    elif host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        targets = [(socket.AF_UNIX, "\0" + path), (socket.AF_UNIX, path)]
    else:
        targets = [(socket.AF_INET, (host, 6000 + number))]
    reason = "the X server does not answer"
    for family, address in targets:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                sock.connect(address)
                sock.sendall(struct.pack("=cxHHHHxx", b"l" if sys.byteorder == "little" else b"B", 11, 0, 0, 0))
                reply = sock.recv(8)
        except OSError as exc:
            reason = f"cannot connect to the X server: {exc.strerror or exc}"
            continue
        if reply:
            return None
        reason = "the X server closed the connection without a reply"
    return reason


@dataclass
class ViewState:
    """Toggles of the live window."""

    mirror: bool = True
    hud: bool = True
    show_keypoints: bool = False
    quit: bool = False
    screenshot_dir: Path = field(default_factory=Path.cwd)


class LiveView:
    """The window: mirror + HUD + keys. Key handling is separate (:meth:`handle_key`) so
    it can be tested without a window.

    Args:
        session: the pipeline and its models.
        state: the toggles.
        recorder: recording sink toggled by ``r`` (created with the ``--record`` path or
            a timestamped name).
        record_path: where ``r`` records when no ``--record`` was given.
        fps: recording frame rate.
    """

    WINDOW = "tryon live"

    def __init__(self, session: Session, state: ViewState, record_path: Path | None, fps: float,
                 show_window: bool = True) -> None:
        self.session, self.state, self.fps = session, state, fps
        self.record_path = record_path
        self.recorder: RecordSink | None = None
        self.show_window = show_window
        self.last_view: np.ndarray | None = None  # the display's buffer: valid until the next frame
        self.preview = PreviewBuffer()
        if show_window:
            cv2.namedWindow(self.WINDOW, cv2.WINDOW_NORMAL)

    def toggle_recording(self) -> None:
        if self.recorder is None:
            path = self.record_path or Path(f"tryon_{_dt.datetime.now():%Y%m%d_%H%M%S}.mp4")
            self.recorder = RecordSink(path, self.fps, drop_when_full=True)
            log.info("recording to %s (press r to stop)", path)
        else:
            self.recorder.close()
            self.recorder = None
            self.record_path = None  # the next r starts a new file

    def screenshot(self, out: Output) -> Path:
        img = mirror(out.composite) if self.state.mirror else out.composite
        path = self.state.screenshot_dir / f"tryon_{_dt.datetime.now():%Y%m%d_%H%M%S_%f}.png"
        if not cv2.imwrite(str(path), img):
            log.error("could not write screenshot %s", path)
        else:
            log.info("screenshot: %s", path)
        return path

    def handle_key(self, key: int, out: Output | None = None) -> bool:
        """Apply one key code (``cv2.waitKeyEx``); False means quit."""
        if key < 0:
            return True
        ch = chr(key & 0xFF).lower() if key < 0x100 else ""
        pipe = self.session.pipeline
        try:
            if ch in ("q", "\x1b"):
                self.state.quit = True
                return False
            if ch == "n" or key in _RIGHT:
                log.info("accessory: %s", pipe.next_accessory(+1).name)
            elif ch == "p" or key in _LEFT:
                log.info("accessory: %s", pipe.next_accessory(-1).name)
            elif ch == "c":
                log.info("category: %s (%s)", pipe.cycle_category(), self.session.backend_description())
            elif ch == "m":
                self.state.mirror = not self.state.mirror
            elif ch == "s":
                pipe.smoother.enabled = not pipe.smoother.enabled
                log.info("smoothing %s", "on" if pipe.smoother.enabled else "off")
            elif ch == "h":
                self.state.hud = not self.state.hud
            elif ch == "r":
                self.toggle_recording()
            elif ch == " " and out is not None:
                self.screenshot(out)
        except (BackendError, RecorderError) as exc:  # keep running on the current selection
            log.error("%s", exc)
        return True

    def __call__(self, out: Output) -> bool:
        if self.recorder is not None:
            self.recorder(out)
        quad = None
        if self.state.show_keypoints and out.estimate is not None and out.estimate.smooth_pts_xy is not None:
            quad = out.estimate.smooth_pts_xy
        hud = None
        if self.state.hud:
            hud = hud_text(out, self.session, [KEY_HELP] + (["REC"] if self.recorder is not None else []))
        # one pass over the frame (mirror or copy) into the display's own buffer, overlays in place
        view = self.preview.compose(out.composite, mirror=self.state.mirror, hud=hud, quad_xy=quad, dim=out.stale)
        self.last_view = view
        if not self.show_window:
            return True
        cv2.imshow(self.WINDOW, view)
        return self.handle_key(cv2.waitKeyEx(1), out)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        if self.show_window:
            cv2.destroyWindow(self.WINDOW)


# --------------------------------------------------------------------------------------
# Commands (library functions)
# --------------------------------------------------------------------------------------

def _close_all(sinks: Sequence[Any]) -> None:
    errors = []
    for sink in sinks:
        close = getattr(sink, "close", None)
        if close is None:
            continue
        try:
            close()
        except (RecorderError, OSError) as exc:
            errors.append(exc)
    for exc in errors[1:]:
        log.error("%s", exc)
    if errors:
        raise errors[0]


def _run(source: FrameSource, session: Session, sinks: list[Any], mode: str, duration_s: float | None = None,
         on_frame: Any = None) -> LoopReport:
    tally = FaceTally()
    try:
        with terminate_as_interrupt():
            loop = FrameLoop(source, session.pipeline, [tally, *sinks], mode=mode, duration_s=duration_s,
                             on_frame=on_frame)
            report = loop.run()
    except BaseException:
        try:  # finalise what can be; the first error is the one reported
            _close_all(sinks)
        except (RecorderError, OSError) as exc:
            log.error("%s", exc)
        finally:
            source.close()
            session.close()
        raise
    try:
        _close_all(sinks)
    finally:
        source.close()
        session.close()
    if report.frames_in == 0 and not report.interrupted:
        raise UsageError(f"{source.describe()}: no frame could be read (an empty or unreadable video?); "
                         "nothing was written")
    report.outputs += tally.report()
    for sink in sinks:
        report.outputs += [r.summary() for r in getattr(sink, "reports", [])]
        if isinstance(sink, KeypointSink):
            report.outputs.append(f"wrote {sink.log.path}: {sink.log.lines} keypoint records")
    if report.frames_out:
        log.info("per-stage latency:\n%s", report.stats.table())
    return report


def _check_outputs(output: OutputOptions, video: Path | None) -> None:
    """Before the models load: every output can be written (folder, no other writer)."""
    if output.keypoints_out:
        check_output(output.keypoints_out, "keypoint log")
    if video:
        check_video_suffix(video)
        check_output(video, "video")


def run_live(opts: LiveOptions) -> LoopReport:
    """``tryon live``: camera or video -> try-on -> window / recording / virtual camera."""
    if opts.display:
        check_display()
    _check_outputs(opts.output, opts.record)
    session = build_session(opts.session)
    source = None
    sinks: list[Any] = []
    try:
        source = open_source(camera=opts.camera, video=opts.video, size_wh=opts.resolution, fps=opts.fps,
                             realtime=opts.pace, loop=opts.loop)
        log.info("source: %s", source.describe())
        fps = source.fps
        if opts.output.keypoints_out:
            sinks.append(KeypointSink(opts.output.keypoints_out))
        if opts.virtual_cam:
            sinks.append(VirtualCamSink(source.size_wh, fps))
        view = LiveView(session, ViewState(mirror=opts.mirror, hud=opts.hud, show_keypoints=opts.output.show_keypoints,
                                           screenshot_dir=opts.screenshot_dir),
                        record_path=opts.record, fps=fps, show_window=opts.display)
        sinks.append(view)
        if opts.record:
            view.toggle_recording()
    except BaseException:
        _close_all(sinks)
        if source is not None:
            source.close()
        session.close()
        raise
    return _run(source, session, sinks, opts.mode)


def run_record(opts: RecordOptions) -> LoopReport:
    """``tryon record``: every processed frame of a video / camera written to a file.

    From a file every frame is inferred; from a camera, inference runs asynchronously when
    it is slower than the camera, so the file plays at the camera's speed.
    """
    _check_outputs(opts.output, opts.out)
    session = build_session(opts.session)
    sinks: list[Any] = []
    try:
        if opts.video is not None:
            source: FrameSource = VideoFileSource(opts.video)
        else:
            source = open_source(camera=opts.camera, size_wh=opts.resolution, fps=opts.fps)
    except BaseException:
        session.close()
        raise
    log.info("source: %s", source.describe())
    if opts.output.keypoints_out:
        sinks.append(KeypointSink(opts.output.keypoints_out))
    sinks.append(RecordSink(opts.out, source.fps, hud=session if opts.hud else None,
                            show_keypoints=opts.output.show_keypoints, offline_frames=source.frame_count))
    # A file: every frame inferred. A camera: its frames come at their own pace, so
    # inference goes asynchronous when slower, and the video keeps the camera's timing.
    return _run(source, session, sinks, "sync" if opts.video is not None else "auto", duration_s=opts.duration)


def demo_schedule(catalogue: dict[str, list[Accessory]]) -> list[Accessory]:
    """Accessories interleaved across categories: g0, h0, t0, g1, h1, t1, ..."""
    out = []
    for i in range(max(len(v) for v in catalogue.values())):
        out.extend(v[i] for v in catalogue.values() if i < len(v))
    return out


def run_demo(opts: DemoOptions) -> LoopReport:
    """``tryon demo``: the astronaut portrait under synthetic camera motion, cycling accessories."""
    from skimage.data import astronaut  # public-domain portrait bundled with scikit-image

    _check_outputs(opts.output, opts.out)
    session = build_session(opts.session)
    source = PortraitMotionSource(astronaut(), size_wh=opts.resolution, fps=opts.fps, seconds=opts.seconds)
    schedule = demo_schedule(session.pipeline.catalogue)
    per = max(1, int(round(opts.switch_every * opts.fps)))
    log.info("demo: %d frames at %dx%d, %d accessories, switching every %d frames", source.frame_count,
             *source.size_wh, len(schedule), per)

    def on_frame(frame: Any) -> None:
        acc = schedule[(frame.index // per) % len(schedule)]
        if acc is not session.pipeline.accessory:
            session.pipeline.select(acc)

    sinks: list[Any] = []
    if opts.output.keypoints_out:
        sinks.append(KeypointSink(opts.output.keypoints_out))
    credit = "demo: synthetic camera motion over the astronaut portrait (public domain, scikit-image)"
    sinks.append(RecordSink(opts.out, source.fps, hud=session if opts.hud else None,
                            show_keypoints=opts.output.show_keypoints, hud_extra=[credit],
                            offline_frames=source.frame_count))
    return _run(source, session, sinks, "sync", on_frame=on_frame)


# --------------------------------------------------------------------------------------
# CLI mains
# --------------------------------------------------------------------------------------

def _call(fn: Any, opts: Any, prog: str) -> int:
    """Run a command function; print its summary; map user-fixable errors to exit 2."""
    # FFmpeg prints an error for every H.264 encoder it probes and lacks (pip wheels have
    # none usable); the recorder reports the codec it chose instead. Set the variable to
    # 24 (warning) to see FFmpeg's messages. Read once, when FFmpeg is first used.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        report = fn(opts)
    except (UsageError, CameraError, BackendError, RecorderError, FileNotFoundError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"{prog}: {report.summary()}")
    for line in report.outputs:
        print(f"{prog}: {line}")
    return 0


def _camera_mode(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--resolution / --fps request a camera mode: refused with --video (a file plays as it is),
    defaults filled in otherwise."""
    if args.video is not None:
        given = [f"--{k}" for k in ("resolution", "fps") if getattr(args, k) is not None]
        if given:
            p.error(f"{' and '.join(given)} set{'s' if len(given) == 1 else ''} a camera's mode; with --video the "
                    "file's own size and frame rate are used: drop the option")
    args.resolution = args.resolution or (1280, 720)
    args.fps = args.fps or 30.0


def live_main(argv: list[str] | None = None) -> int:
    """``tryon live``."""
    p = argparse.ArgumentParser(prog="tryon live", description="Try accessories on live, from a webcam or a video.",
                                epilog=KEY_HELP)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=camera_index, default=0, help="camera index (default 0)")
    src.add_argument("--video", type=Path, help="video file instead of a camera")
    p.add_argument("--resolution", type=parse_resolution, default=None, metavar="WxH",
                   help="requested camera resolution (default 1280x720; not with --video)")
    p.add_argument("--fps", type=positive_float, default=None,
                   help="requested camera frame rate (default 30; not with --video)")
    p.add_argument("--no-pace", action="store_true", help="with --video: every frame, as fast as possible")
    p.add_argument("--loop", action="store_true", help="with --video: start over at the end")
    p.add_argument("--mode", choices=("auto", "sync", "async"), default="auto",
                   help="async: inference on a worker thread, display at camera rate (auto: when "
                        "inference is slower than the camera)")
    p.add_argument("--no-display", action="store_true", help="no window (headless)")
    p.add_argument("--no-mirror", action="store_true", help="do not mirror the preview")
    p.add_argument("--no-hud", action="store_true", help="start with the HUD hidden")
    p.add_argument("--virtual-cam", action="store_true", help="send the result to a virtual camera (pyvirtualcam)")
    p.add_argument("--record", type=Path, metavar="FILE",
                   help="record the composite (no mirror, no HUD) from the start; r toggles")
    p.add_argument("--screenshot-dir", type=Path, default=Path.cwd(), help="where space saves PNGs")
    _add_accessory_args(p)
    _add_model_args(p)
    _add_output_args(p)
    args = p.parse_args(argv)
    _camera_mode(p, args)
    if args.no_display and not (args.record or args.virtual_cam or args.keypoints_out):
        log.warning("--no-display without --record, --virtual-cam or --keypoints-out: nothing is kept")
    print(f"tryon live: {KEY_HELP}")
    opts = LiveOptions(session=_session_options(args), output=_output_options(args), camera=args.camera,
                       video=args.video, resolution=args.resolution, fps=args.fps, pace=not args.no_pace,
                       loop=args.loop, mode=args.mode, display=not args.no_display, mirror=not args.no_mirror,
                       hud=not args.no_hud, virtual_cam=args.virtual_cam, record=args.record,
                       screenshot_dir=args.screenshot_dir)
    return _call(run_live, opts, "tryon live")


def record_main(argv: list[str] | None = None) -> int:
    """``tryon record``."""
    p = argparse.ArgumentParser(prog="tryon record",
                                description="Run the try-on on a video or camera and write every frame to a file.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", type=Path, help="input video")
    src.add_argument("--camera", type=camera_index, help="camera index")
    p.add_argument("--out", type=Path, required=True, help="output video (.mp4, or .avi)")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds of input")
    p.add_argument("--resolution", type=parse_resolution, default=None, metavar="WxH",
                   help="requested camera resolution (default 1280x720; not with --video)")
    p.add_argument("--fps", type=positive_float, default=None,
                   help="requested camera frame rate (default 30; not with --video)")
    p.add_argument("--hud", action="store_true", help="burn the HUD into the video")
    _add_accessory_args(p)
    _add_model_args(p)
    _add_output_args(p)
    args = p.parse_args(argv)
    _camera_mode(p, args)
    opts = RecordOptions(out=args.out, session=_session_options(args), output=_output_options(args),
                         video=args.video, camera=args.camera, duration=args.duration, resolution=args.resolution,
                         fps=args.fps, hud=args.hud)
    return _call(run_record, opts, "tryon record")


def demo_main(argv: list[str] | None = None) -> int:
    """``tryon demo``."""
    p = argparse.ArgumentParser(prog="tryon demo",
                                description="Render a try-on demo video from scikit-image's astronaut portrait "
                                            "under synthetic camera motion (no webcam, no download).")
    p.add_argument("--out", type=Path, default=Path("demo.mp4"), help="output video")
    p.add_argument("--seconds", type=positive_float, default=10.0, help="duration")
    p.add_argument("--fps", type=positive_float, default=30.0, help="frame rate")
    p.add_argument("--resolution", type=parse_resolution, default=(1280, 720), metavar="WxH")
    p.add_argument("--switch-every", type=positive_float, default=1.5, metavar="S", help="seconds per accessory")
    p.add_argument("--no-hud", action="store_true", help="no HUD in the video")
    _add_accessory_args(p)
    _add_model_args(p)
    _add_output_args(p)
    args = p.parse_args(argv)
    opts = DemoOptions(out=args.out, session=_session_options(args), output=_output_options(args),
                       seconds=args.seconds, fps=args.fps, resolution=args.resolution, switch_every=args.switch_every,
                       hud=not args.no_hud)
    return _call(run_demo, opts, "tryon demo")
