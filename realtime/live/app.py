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
c category, o outfit (several categories at once), m mirror, s smoothing, h HUD,
d debug (backend, model file, latencies), r start/stop recording, space screenshot,
q / Esc / closing the window quit.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from realtime.accessories import Accessory, load_accessory
from realtime.backends.resolver import (BACKEND_CHOICES, PRECISION_CHOICES, PRECISION_HELP, ModelResolver,
                                       default_threads)
from realtime.cli import command_parser, int_at_least, positive_float, positive_int
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
from realtime.live.render import draw_hud, draw_quad, draw_rec, mirror
from realtime.live.smoothing import SmoothingConfig
from realtime.live.window import Window
from realtime.procedural import accessory_by_name, bundled_accessories

log = logging.getLogger(__name__)

#: The keys, in the two lines the HUD shows (joined for --help and the terminal).
KEY_LINES = ("n/-> next  p/<- previous  c category  o outfit  m mirror  s smoothing",
             "h HUD  d debug  r record  space screenshot  q/Esc quit")
KEY_HELP = "keys: " + "  ".join(KEY_LINES)
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
    g.add_argument("--outfit", type=parse_outfit, metavar="CATEGORIES",
                   help="wear several categories at once, e.g. glasses,hat,tie (composited tie, then glasses, "
                        "then hat); in the live window o toggles it")


def parse_outfit(text: str) -> tuple[str, ...]:
    """``"glasses,hat"`` -> ("glasses", "hat"); every name must be a category."""
    cats = tuple(dict.fromkeys(c.strip().lower() for c in text.split(",") if c.strip()))
    bad = [c for c in cats if c not in CATEGORIES]
    if bad or not cats:
        raise argparse.ArgumentTypeError(f"--outfit takes categories among {', '.join(CATEGORIES)} separated by "
                                         f"commas, got {text!r}")
    return cats


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
        outfit: categories worn together from the start (empty: one at a time).
    """

    model: ModelOptions = field(default_factory=ModelOptions)
    accessories: tuple[str, ...] = ()
    category: str | None = None
    detector: str = DEFAULT_DETECTOR
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    outfit: tuple[str, ...] = ()


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
    progress: bool = True


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
    #: Seconds into the demo when every category goes on together (outfit mode); None never.
    outfit_at: float | None = 7.0
    progress: bool = True


def _session_options(args: argparse.Namespace) -> SessionOptions:
    """The shared options from parsed arguments (smoothing through the one config loader)."""
    model = ModelOptions(backend=args.backend, checkpoints=tuple(args.checkpoint), onnx=tuple(args.onnx),
                         engines=tuple(args.engine), device=args.device, precision=args.precision,
                         threads=args.threads)
    return SessionOptions(model=model, accessories=tuple(args.accessory), category=args.category,
                          smoothing=load_config(SmoothingConfig, overrides=args.overrides),
                          detector=args.detector, outfit=args.outfit or ())


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
        resolver.close()
        raise UsageError(f"--detector {opts.detector}: {exc}") from exc
    pipeline = TryOnPipeline(resolver, catalogue, category=start, smoothing=smoothing, detector=detector)
    if opts.outfit:
        try:
            worn = pipeline.set_outfit(opts.outfit)
        except ValueError as exc:
            resolver.close()
            raise UsageError(str(exc)) from None
        except BaseException:
            resolver.close()
            raise
        for c in worn:
            log.info("model for %s: %s", c, resolver.describe(c))
    else:
        log.info("model for %s: %s", pipeline.category, resolver.describe(pipeline.category))
    return Session(resolver, pipeline, smoothing)


# --------------------------------------------------------------------------------------
# Sinks
# --------------------------------------------------------------------------------------

def hud_text(out: Output, session: Session, extra: Sequence[str] = (), offline_frames: int | None = None,
             debug: bool = False, mirrored: bool | None = None) -> tuple[list[str], str | None]:
    """HUD lines and the warning line (None when all is well) for one output.

    Live: display FPS and inference rate. Offline (``offline_frames`` = total frames, for
    rendered videos whose playback rate is fixed): frame number. ``debug`` adds the
    backend, the model file and per-stage latencies; ``mirrored`` (live) says whether the
    preview is mirrored.
    """
    est = out.estimate
    pipe = session.pipeline
    accs = pipe.catalogue[pipe.category]
    acc = pipe.accessory
    if pipe.outfit:
        what = "outfit: " + " + ".join(pipe.catalogue[c][pipe.selected_index(c)].title for c in pipe.outfit)
        if offline_frames is None:
            what += f" | n/p change the {pipe.category} ({accs.index(acc) + 1}/{len(accs)})"
    else:
        what = f"{acc.title} ({accs.index(acc) + 1}/{len(accs)} {pipe.category})"
    if offline_frames is None:
        state = [f"mirror {'on' if mirrored else 'off'}"] if mirrored is not None else []
        state.append(f"smoothing {'on' if pipe.smoother.enabled else 'off'}")
        rates = f"display {out.display_fps:4.1f} fps | inference {out.inference_hz:4.1f} Hz"
        if est is not None and est.propagated is not None:  # async: were the keypoints carried to this frame?
            lag = out.frame.index - est.frame_index
            rates += f" | tracked +{lag} frames" if est.propagated else f" | {lag} frames behind (motion lost)"
        lines = [f"{what} | {' | '.join(state)}", rates]
    else:  # a rendered video: short, so it hides little of the picture
        lines = [f"{what} | frame {out.frame.index + 1}/{offline_frames}"]
    if debug:
        infer_ms = est.times_ms.get("infer", 0.0) if est else 0.0
        conf = f" | conf {est.confidence:.2f}" if est and est.confidence is not None else ""
        lines.append(f"{session.backend_description()} | infer {infer_ms:.0f} ms | all stages "
                     f"{sum(out.times_ms.values()):.0f} ms{conf}")
    lines += list(extra)
    warning = None
    if out.source_status != STATUS_OK:
        warning = out.source_status
    elif est is not None and est.status != EST_OK:
        # Why nothing is drawn: no face, a detection the network has not confirmed / refused,
        # the face left, low confidence (realtime.live.pipeline.Estimate.status).
        warning = "no face found" if est.status == STATUS_NO_FACE else est.status
    elif any(session.resolver.untrained(c) for c in (pipe.outfit or (pipe.category,))):
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
        self.recorder.write(img, out.frame.timestamp)  # capture time: the video plays at the lived speed

    def close(self) -> None:
        if self.recorder is not None:
            report = self.recorder.close()
            self.reports.append(report)
            log.info("%s", report.summary())
            self.recorder = None


class VirtualCamSink:
    """Sends composites to a virtual camera (``pyvirtualcam``), un-mirrored, no HUD."""

    def __init__(self, size_wh: tuple[int, int], fps: float) -> None:
        from realtime.live.doctor import virtual_camera_hint

        try:
            import pyvirtualcam  # optional
        except ImportError:
            raise UsageError("--virtual-cam needs the optional package pyvirtualcam: "
                             f"pip install 'tryon-realtime[virtualcam]'. {virtual_camera_hint()}") from None
        try:
            self.cam = pyvirtualcam.Camera(width=size_wh[0], height=size_wh[1], fps=fps)
        except RuntimeError as exc:
            raise UsageError(f"cannot open a virtual camera: {exc}. {virtual_camera_hint()} "
                             f"('tryon doctor' checks the set-up)") from exc
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
    debug: bool = False
    show_keypoints: bool = False
    quit: bool = False
    screenshot_dir: Path = field(default_factory=Path.cwd)


class LiveView:
    """The window: mirror + HUD + keys. Key handling is separate (:meth:`handle_key`) so
    it can be tested without a window.

    Args:
        session: the pipeline and its models.
        state: the toggles.
        record_path: where ``r`` records when no ``--record`` was given.
        fps: recording frame rate.
        show_window: open a window (:class:`~realtime.live.window.Window`); False for headless runs.
        outfit: the categories ``o`` wears together (default: every category that has accessories).
    """

    WINDOW = "tryon live"

    def __init__(self, session: Session, state: ViewState, record_path: Path | None, fps: float,
                 show_window: bool = True, outfit: Sequence[str] | None = None) -> None:
        self.session, self.state, self.fps = session, state, fps
        self.record_path = record_path
        self.recorder: RecordSink | None = None
        self.reports: list[Any] = []  # of the recordings made (r toggles, --record)
        self._rec_start = 0.0
        self.show_window = show_window
        self.outfit = tuple(outfit or session.pipeline.catalogue)
        self.last_view: np.ndarray | None = None  # the display's buffer: valid until the next frame
        self.preview = PreviewBuffer()
        self.window = Window(self.WINDOW) if show_window else None

    def toggle_recording(self) -> None:
        if self.recorder is None:
            path = self.record_path or Path(f"tryon_{_dt.datetime.now():%Y%m%d_%H%M%S}.mp4")
            self.recorder = RecordSink(path, self.fps, drop_when_full=True)
            self._rec_start = time.monotonic()
            log.info("recording to %s (press r to stop)", path)
        else:
            self._stop_recording()
            self.record_path = None  # the next r starts a new file

    def _stop_recording(self) -> None:
        recorder, self.recorder = self.recorder, None
        try:
            recorder.close()
        finally:
            self.reports += recorder.reports

    def toggle_outfit(self) -> tuple[str, ...]:
        """Wear the outfit's categories together, or go back to one at a time."""
        pipe = self.session.pipeline
        worn = pipe.set_outfit(None if pipe.outfit else self.outfit)
        log.info("outfit: %s", " + ".join(worn) if worn else f"off ({pipe.category} only)")
        return worn

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
                log.info("accessory: %s", pipe.next_accessory(+1).title)
            elif ch == "p" or key in _LEFT:
                log.info("accessory: %s", pipe.next_accessory(-1).title)
            elif ch == "c":
                log.info("category: %s (%s)", pipe.cycle_category(), self.session.backend_description())
            elif ch == "o":
                self.toggle_outfit()
            elif ch == "m":
                self.state.mirror = not self.state.mirror
            elif ch == "s":
                pipe.smoother.enabled = not pipe.smoother.enabled
                log.info("smoothing %s", "on" if pipe.smoother.enabled else "off")
            elif ch == "h":
                self.state.hud = not self.state.hud
            elif ch == "d":
                self.state.debug = not self.state.debug
            elif ch == "r":
                self.toggle_recording()
            elif ch == " " and out is not None:
                self.screenshot(out)
        except (BackendError, RecorderError, ValueError) as exc:  # keep running on the current selection
            log.error("%s", exc)
        return True

    def render(self, out: Output, screen_scale: float = 1.0, shown_wh: tuple[int, int] | None = None) -> np.ndarray:
        """The picture the window shows: mirrored (when on), HUD, recording indicator; built no
        larger than ``shown_wh`` needs (the picture's on-screen size, None: full size)."""
        # one pass over the frame (reduce, mirror or copy, dimmed when stale) into the display's own
        # buffer; the overlays are drawn in place on it
        view = self.preview.compose(out.composite, mirror=self.state.mirror, dim=out.stale, shown_wh=shown_wh)
        screen_scale *= self.preview.factor  # on-screen pixels per preview pixel
        if self.state.show_keypoints and out.estimate is not None:
            for layer in out.estimate.layers or (out.estimate,):
                if layer.smooth_pts_xy is not None:
                    draw_quad(view, self.preview.view_points(layer.smooth_pts_xy, view.shape[1], self.state.mirror))
        if self.state.hud:
            lines, warning = hud_text(out, self.session, KEY_LINES, debug=self.state.debug,
                                      mirrored=self.state.mirror)
            draw_hud(view, lines, warning, screen_scale=screen_scale)
        if self.recorder is not None:  # shown with or without the HUD
            draw_rec(view, time.monotonic() - self._rec_start, screen_scale=screen_scale)
        return view

    def __call__(self, out: Output) -> bool:
        if self.recorder is not None:
            self.recorder(out)
        if self.window is None:
            self.last_view = self.render(out)
            return True
        h, w = out.composite.shape[:2]
        scale = self.window.update_scale((w, h))
        self.last_view = self.render(out, scale, shown_wh=self.window.shown_size((w, h)))
        key = self.window.show(self.last_view)
        if self.window.closed:
            log.info("window closed: stopping")
            self.state.quit = True
            return False
        return self.handle_key(key, out)

    def close(self) -> None:
        try:
            if self.recorder is not None:
                self._stop_recording()
        finally:
            if self.window is not None:
                self.window.close()


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
    # The source next: a missing camera is told before the models load.
    source = open_source(camera=opts.camera, video=opts.video, size_wh=opts.resolution, fps=opts.fps,
                         realtime=opts.pace, loop=opts.loop)
    session = None
    sinks: list[Any] = []
    try:
        log.info("source: %s", source.describe())
        session = build_session(opts.session)
        fps = source.fps
        if opts.output.keypoints_out:
            sinks.append(KeypointSink(opts.output.keypoints_out))
        if opts.virtual_cam:
            sinks.append(VirtualCamSink(source.size_wh, fps))
        view = LiveView(session, ViewState(mirror=opts.mirror, hud=opts.hud, show_keypoints=opts.output.show_keypoints,
                                           screenshot_dir=opts.screenshot_dir),
                        record_path=opts.record, fps=fps, show_window=opts.display,
                        outfit=opts.session.outfit or None)
        sinks.append(view)
        if opts.record:
            view.toggle_recording()
    except BaseException:
        _close_all(sinks)
        source.close()
        if session is not None:
            session.close()
        raise
    return _run(source, session, sinks, opts.mode)


def _progress(total: int | None, desc: str, fps: float) -> Any:
    from realtime.live.console import ProgressSink

    return ProgressSink(total, desc, fps)


def run_record(opts: RecordOptions) -> LoopReport:
    """``tryon record``: every processed frame of a video / camera written to a file.

    From a file every frame is inferred; from a camera, inference runs asynchronously when
    it is slower than the camera, so the file plays at the camera's speed.
    """
    _check_outputs(opts.output, opts.out)
    if opts.video is not None:
        source: FrameSource = VideoFileSource(opts.video)
    else:
        source = open_source(camera=opts.camera, size_wh=opts.resolution, fps=opts.fps)
    try:
        session = build_session(opts.session)
    except BaseException:
        source.close()
        raise
    log.info("source: %s", source.describe())
    sinks: list[Any] = []
    if opts.output.keypoints_out:
        sinks.append(KeypointSink(opts.output.keypoints_out))
    sinks.append(RecordSink(opts.out, source.fps, hud=session if opts.hud else None,
                            show_keypoints=opts.output.show_keypoints, offline_frames=source.frame_count))
    if opts.progress:
        total = source.frame_count or (int(round(opts.duration * source.fps)) if opts.duration else None)
        if opts.duration and source.frame_count:
            total = min(source.frame_count, int(round(opts.duration * source.fps)))
        sinks.append(_progress(total, f"recording {opts.out.name}", source.fps))
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
    """``tryon demo``: the astronaut portrait under synthetic camera motion, cycling accessories.

    One accessory at a time, then (from ``opts.outfit_at`` seconds, or from the start with
    ``--outfit``) every category together, each cycling through its accessories.
    """
    from skimage.data import astronaut  # public-domain portrait bundled with scikit-image

    _check_outputs(opts.output, opts.out)
    session = build_session(opts.session)
    pipe = session.pipeline
    source = PortraitMotionSource(astronaut(), size_wh=opts.resolution, fps=opts.fps, seconds=opts.seconds)
    schedule = demo_schedule(pipe.catalogue)
    if opts.session.category:  # --category: that category's accessories only (before any outfit)
        schedule = [a for a in schedule if a.category == opts.session.category]
    per = max(1, int(round(opts.switch_every * opts.fps)))
    outfit = opts.session.outfit or tuple(pipe.catalogue)
    outfit_from = 0 if opts.session.outfit else (None if opts.outfit_at is None or len(outfit) < 2
                                                   else int(round(opts.outfit_at * opts.fps)))
    log.info("demo: %d frames at %dx%d, %d accessories, switching every %d frames%s", source.frame_count,
             *source.size_wh, len(schedule), per,
             "" if outfit_from is None or outfit_from >= source.frame_count
             else f", outfit {'+'.join(outfit)} from frame {outfit_from}")

    outfit_step = [-1]

    def on_frame(frame: Any) -> None:
        if outfit_from is not None and frame.index >= outfit_from:
            if not pipe.outfit:
                pipe.set_outfit(outfit)
            step = (frame.index - outfit_from) // per
            if step != outfit_step[0]:  # every category to its next accessory
                outfit_step[0] = step
                for c in pipe.outfit:
                    pipe.select(pipe.catalogue[c][step % len(pipe.catalogue[c])])
            return
        acc = schedule[(frame.index // per) % len(schedule)]
        if acc is not pipe.accessory:
            pipe.select(acc)

    sinks: list[Any] = []
    if opts.output.keypoints_out:
        sinks.append(KeypointSink(opts.output.keypoints_out))
    credit = "demo: synthetic camera motion over the astronaut portrait (public domain, scikit-image)"
    sinks.append(RecordSink(opts.out, source.fps, hud=session if opts.hud else None,
                            show_keypoints=opts.output.show_keypoints, hud_extra=[credit],
                            offline_frames=source.frame_count))
    if opts.progress:
        sinks.append(_progress(source.frame_count, f"rendering {opts.out.name}", source.fps))
    return _run(source, session, sinks, "sync", on_frame=on_frame)


# --------------------------------------------------------------------------------------
# CLI mains
# --------------------------------------------------------------------------------------

def _call(fn: Any, opts: Any, prog: str) -> int:
    """Run a command function in the console context (quiet libraries, logging through the
    progress bars); print its summary; map user-fixable errors to exit 2."""
    from realtime.live.console import console

    try:
        with console():
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
    p = command_parser("tryon live", "Try accessories on live, from a webcam or a video.",
                       ["tryon live", "tryon live --video clip.mp4 --outfit glasses,hat,tie --record out.mp4"],
                       epilog=KEY_HELP + " (or close the window)")
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
    p.add_argument("--virtual-cam", action="store_true",
                   help="send the result to a virtual camera (pip install 'tryon-realtime[virtualcam]'; "
                        "'tryon doctor' checks the set-up)")
    p.add_argument("--record", type=Path, metavar="FILE",
                   help="record the composite (no mirror, no HUD) from the start; r toggles")
    p.add_argument("--screenshot-dir", type=Path, default=Path("."), help="where space saves PNGs")
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
    p = command_parser("tryon record", "Run the try-on on a video or camera and write every frame to a file.",
                       ["tryon record --video clip.mp4 --out tried.mp4 --accessory glasses/aviator",
                        "tryon record --camera 0 --duration 10 --out me.mp4 --outfit glasses,hat"])
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_accessory_args(p)
    _add_model_args(p)
    _add_output_args(p)
    args = p.parse_args(argv)
    _camera_mode(p, args)
    opts = RecordOptions(out=args.out, session=_session_options(args), output=_output_options(args),
                         video=args.video, camera=args.camera, duration=args.duration, resolution=args.resolution,
                         fps=args.fps, hud=args.hud, progress=not args.no_progress)
    return _call(run_record, opts, "tryon record")


def demo_main(argv: list[str] | None = None) -> int:
    """``tryon demo``."""
    p = command_parser("tryon demo", "Render a try-on demo video from scikit-image's astronaut portrait "
                                     "under synthetic camera motion (no webcam, no download).",
                       ["tryon demo --out demo.mp4", "tryon demo --outfit glasses,hat,tie --seconds 5 --out outfit.mp4"])
    p.add_argument("--out", type=Path, default=Path("demo.mp4"), help="output video")
    p.add_argument("--seconds", type=positive_float, default=10.0, help="duration")
    p.add_argument("--fps", type=positive_float, default=30.0, help="frame rate")
    p.add_argument("--resolution", type=parse_resolution, default="1280x720", metavar="WxH", help="frame size")
    p.add_argument("--switch-every", type=positive_float, default=1.5, metavar="S", help="seconds per accessory")
    p.add_argument("--outfit-at", type=float, default=DemoOptions.outfit_at, metavar="S",
                   help="seconds into the demo when every category goes on together (with --outfit: from the "
                        "start; negative: never)")
    p.add_argument("--no-hud", action="store_true", help="no HUD in the video")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_accessory_args(p)
    _add_model_args(p)
    _add_output_args(p)
    args = p.parse_args(argv)
    opts = DemoOptions(out=args.out, session=_session_options(args), output=_output_options(args),
                       seconds=args.seconds, fps=args.fps, resolution=args.resolution, switch_every=args.switch_every,
                       hud=not args.no_hud, outfit_at=None if args.outfit_at < 0 else args.outfit_at,
                       progress=not args.no_progress)
    return _call(run_demo, opts, "tryon demo")
