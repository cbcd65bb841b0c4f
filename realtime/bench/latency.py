"""``tryon bench``: per-stage latency of the live pipeline, optimised vs naive; async rates;
steadiness (``--stability``, :mod:`realtime.bench.stability`); memory soak (``--soak N``).

Latency (:func:`run_bench`). The REAL pipeline (:class:`realtime.live.pipeline.TryOnPipeline`)
runs on frames held in memory: the scikit-image astronaut under synthetic camera motion
rendered at the requested resolution, or the frames of a video file decoded up front.
Frames are kept as JPEG bytes (quality :data:`JPEG_QUALITY`), the way a USB webcam
delivers 720p/1080p (MJPG), so the capture stage costs what a camera costs the CPU.
Each frame goes through two pipelines, interleaved frame by frame (alternating which goes
first) so that both see the same moments of a shared machine, and the ratios come from
the same run:

* **optimised**, the live app's: accessory encoded once (cached F_f), per-frame network
  path, native C++ crop + normalise and warp + composite where they win
  (:mod:`realtime.live.native`), composite restricted to the accessory's footprint;
* **naive**: the full network every frame (``Backend.infer_full`` re-encodes the
  accessory), the OpenCV/NumPy reference preprocess, the full-frame float composite
  (:func:`realtime.geometry.composite_reference`). Both synchronous.

Stages and what each timing includes (:data:`STAGE_NOTES`). After the timed frames, the
async mode (:func:`run_async`) drives the optimised pipeline from the same frames paced
at 30 fps like a camera (:class:`realtime.live.capture.RealtimePacer`), with inference on a
worker thread: display FPS vs inference Hz.

Untrained weights (no trained model for a category) place the accessory at random, often
degenerate, quads, so the composite would be skipped and the decode would see flat
heatmaps. Then (``--placement auto``) the network still runs in full, but its output is
replaced, after it is computed, by Gaussian heatmaps at a canonical placement in the crop
(:data:`CANONICAL_QUADS`), so decode, smoothing and composite see a trained-like output.

Results: ``--json OUT`` writes the report and a Markdown table beside it (``OUT.md``);
``--out-dir DIR`` names them ``<kind>_<date>_<hardware>.json/.md`` (kind ``bench``, ``stability``,
``smoothing_sweep`` or ``soak``; the sweep's plot is ``smoothing_sweep_<date>.png``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from realtime.accessories import Accessory
from realtime.backends.base import Backend, ModelInfo
from realtime.backends.resolver import ModelResolver
from realtime.bench.peer import PEER_NOTE, PEER_STAGES
from realtime.bench.report import environment, fmt, run_context_line
from realtime.codec import HeatmapCodec
from realtime.geometry import DegenerateQuadError, composite_reference
from realtime.live.capture import Frame, GeneratedSource, PortraitMotionSource, RealtimePacer
from realtime.live.display import PreviewBuffer
from realtime.live.pipeline import FrameLoop, Output, StageTimes, TryOnPipeline
from realtime.live.render import Compositor, draw_hud, mirror
from realtime.preprocess import foreground_input
from realtime.procedural import bundled_accessories
from realtime.sysinfo import summarize_ms, time_calls

log = logging.getLogger(__name__)

#: Per-frame stages of the report, in pipeline order.
BENCH_STAGES: tuple[str, ...] = ("capture", "roi", "preprocess", "infer", "decode", "smooth", "composite",
                                 "display")
#: What each timing includes (printed with every report).
STAGE_NOTES: dict[str, str] = {
    "capture": "cv2.imdecode of the frame's in-memory JPEG (a MJPG webcam's decode; done on the capture "
               "thread in the app)",
    "roi": "face tracker update (the face detector's window search every 5th frame, every 30th once the network "
           "confirms the face; the full-frame search when lost) and the crop transform",
    "preprocess": "crop + resize + BGR->RGB + ImageNet normalise -> (1, 3, S, S) float32 (optimised: native "
                  "fused kernel; naive: cv2.warpAffine + cvtColor + NumPy)",
    "infer": "backend.infer + backend.synchronize: host input -> heatmaps as host float32 (includes any H2D/D2H); "
             "naive: infer_full, i.e. the accessory's foreground encoder runs again every frame",
    "decode": "finite check + soft-argmax + sub-pixel refinement + crop -> frame mapping",
    "smooth": "confidence gate + One Euro filter on the quad",
    "composite": "homography + warp + alpha composite (optimised: in place on the decoded frame, footprint-only "
                 "uint8, native kernel, as the live loop's synchronous path; naive: onto a copy of the frame, "
                 "full-frame float32)",
    "display": "the CPU work of showing the frame, the window's own blit not included (optimised: the live "
               "window's one pass, mirror into a reused buffer + HUD on its panel, BGR as cv2.imshow takes it; "
               "naive: cv2.flip into a new array + HUD + BGR->RGB conversion, two full passes)",
    "encode": "JPEG encode (quality 90) of the composite: what recording / streaming a frame costs; NOT part "
              "of the end-to-end figures",
    "encode_fg": "foreground (accessory) encoder: once per accessory switch in the optimised pipeline, every "
                 "frame inside the naive pipeline's infer",
    "end_to_end": "wall time of one whole frame, capture to display (sync: every frame inferred); FPS = "
                  "1000 / mean",
}
#: JPEG quality of the in-memory frames (a webcam's MJPG is typically 80-95).
JPEG_QUALITY = 90
#: Canonical accessory placements in the network crop, (centre x, centre y, width, height)
#: as fractions of the crop side, matching the crop framing of :data:`realtime.framing.ROI_CONFIGS`
#: (glasses across the eyes just above the crop centre; hat on the crown; tie from the
#: collar down the chest).
CANONICAL_QUADS: dict[str, tuple[float, float, float, float]] = {
    "glasses": (0.5, 0.47, 0.48, 0.18),
    "hat": (0.5, 0.24, 0.55, 0.3),
    "tie": (0.5, 0.56, 0.12, 0.42),
}
DEFAULT_CATEGORIES = ("glasses", "tie")
DEFAULT_RESOLUTIONS = ((1280, 720), (1920, 1080))
#: Frame rate of the synthetic camera and of the async run's pacer.
CAMERA_FPS = 30.0


# --------------------------------------------------------------------------------------
# Frames held in memory
# --------------------------------------------------------------------------------------

def synthetic_jpegs(size_wh: tuple[int, int], count: int, fps: float = CAMERA_FPS,
                    noise_sigma: float = 2.0) -> list[bytes]:
    """The astronaut portrait under synthetic camera motion, as in-memory JPEG frames."""
    from skimage.data import astronaut  # public-domain portrait bundled with scikit-image

    src = PortraitMotionSource(astronaut(), size_wh=size_wh, fps=fps, seconds=count / fps, noise_sigma=noise_sigma)
    return [encode_jpeg(src.read().image) for _ in range(count)]


def video_jpegs(path: str | Path, size_wh: tuple[int, int] | None, count: int) -> tuple[list[bytes], float]:
    """Up to ``count`` frames of a video file (resized to ``size_wh`` when given), decoded up
    front and kept as JPEG bytes; returns (frames, the file's fps).

    Raises:
        FileNotFoundError, ValueError: no such file / not decodable (message names it).
    """
    from realtime.live.capture import VideoFileSource

    src = VideoFileSource(path)
    try:
        out = []
        while len(out) < count:
            frame = src.read()
            if frame is None:
                break
            img = frame.image
            if size_wh is not None and (img.shape[1], img.shape[0]) != tuple(size_wh):
                img = cv2.resize(img, size_wh, interpolation=cv2.INTER_AREA)
            out.append(encode_jpeg(img))
        fps = src.fps
    finally:
        src.close()
    if not out:
        raise ValueError(f"video {path}: no frame could be decoded")
    return out, fps


def encode_jpeg(image_bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of a BGR frame.

    Raises:
        RuntimeError: OpenCV could not encode it.
    """
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"cv2.imencode failed on a {image_bgr.shape} frame")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """BGR frame from JPEG bytes."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


# --------------------------------------------------------------------------------------
# Backend wrapper, reference compositor
# --------------------------------------------------------------------------------------

def canonical_heatmaps(category: str, info: ModelInfo) -> np.ndarray:
    """(1, 4, S, S) float32 Gaussian heatmaps at the category's canonical quad."""
    cx, cy, w, h = (v * (info.input_size - 1) for v in CANONICAL_QUADS[category])
    quad = np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2], [cx + w / 2, cy + h / 2],
                     [cx - w / 2, cy + h / 2]])
    return HeatmapCodec(info.config.codec).encode(quad, (info.input_size, info.input_size))[None]


class BenchBackend(Backend):
    """Wraps a backend for the benchmark: synchronises the device inside ``infer``; the
    naive variant (``full``) runs the whole network (``infer_full``) every frame; with
    ``heatmaps`` the network's output is replaced, after it has been computed, by fixed
    heatmaps (a canonical placement for untrained weights).

    Args:
        inner: the real backend.
        full: re-encode the accessory on every ``infer`` (the naive pipeline).
        heatmaps: (1, 4, S, S) output to return instead of the network's, or None.
    """

    def __init__(self, inner: Backend, full: bool = False, heatmaps: np.ndarray | None = None) -> None:
        self.inner, self.full, self.heatmaps = inner, full, heatmaps
        self._substitutes: dict[tuple[int, ...], np.ndarray] = {}
        self.info = inner.info
        self._fg: np.ndarray | None = None

    def set_foreground(self, fg_input: np.ndarray) -> None:
        self._fg = fg_input
        self.inner.set_foreground(fg_input)

    def infer(self, bg_input: np.ndarray) -> np.ndarray:
        if self.full:
            out = self.inner.infer_full(bg_input, self._fg)
        else:
            out = self.inner.infer(bg_input)
        self.inner.synchronize()
        if self.heatmaps is None:
            return out
        # The substitute takes the network output's memory layout (strides), so the decode is
        # timed on what the product decodes (a channels-last output once made it 6-11x slower).
        sub = self._substitutes.get(out.strides)
        if sub is None:
            sub = self._substitutes[out.strides] = np.empty_like(out)  # order "K": same strides
            sub[...] = self.heatmaps
        return sub

    def synchronize(self) -> None:
        self.inner.synchronize()


class ReferenceCompositor(Compositor):
    """The naive composite: full-frame float32 warp + blend (:func:`composite_reference`)."""

    def draw(self, frame: np.ndarray, acc: Accessory, pts_xy: np.ndarray) -> bool:
        try:
            mat = self.frame_from_fg(acc, pts_xy)
        except DegenerateQuadError:
            self.skipped += 1
            return False
        frame[...] = composite_reference(frame, self.prepared(acc), mat)
        return True


def display_frame_naive(composite: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """The display before issue 14 (the naive pipeline's): mirror into a new array, HUD,
    BGR -> RGB into another: two full-frame passes."""
    view = mirror(composite)
    draw_hud(view, lines)
    return cv2.cvtColor(view, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------------------
# Latency benchmark
# --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What :func:`run_bench` measures.

    Attributes:
        frames: timed frames per (category, resolution), each through both pipelines.
        warmup: untimed frames first (allocations, caches, the first detection).
        naive: also run the naive pipeline (and report ratios).
        async_seconds: length of the async run (0 = skip it).
        placement: ``auto`` (canonical when the weights are untrained), ``network`` or
            ``canonical`` (see the module docstring).
        prefer_native: the optimised pipeline's native kernels (None = measured default).
        source: ``synthetic`` or a video file path.
        peer: time MediaPipe FaceMesh + a glasses warp on the same frames, interleaved
            (:mod:`realtime.bench.peer`): ``on`` (an error without the teacher environment),
            ``auto`` (when it exists; else the report says why not) or ``off``.
        peer_venv: the teacher environment (None: ``$TEACHER_VENV`` or ``.venv-teacher``).
    """

    frames: int = 100
    warmup: int = 10
    naive: bool = True
    async_seconds: float = 10.0
    placement: str = "auto"
    prefer_native: bool | None = None
    source: str = "synthetic"
    peer: str = "off"
    peer_venv: str | None = None

    def __post_init__(self) -> None:
        if self.peer not in ("auto", "on", "off"):
            raise ValueError(f"peer must be auto, on or off, got {self.peer!r}")
        if self.frames < 1 or self.warmup < 0:
            raise ValueError(f"frames must be >= 1 and warmup >= 0, got {self.frames}, {self.warmup}")
        if self.placement not in ("auto", "network", "canonical"):
            raise ValueError(f"placement must be auto, network or canonical, got {self.placement!r}")
        if self.async_seconds < 0:
            raise ValueError(f"async_seconds must be >= 0, got {self.async_seconds}")


class _Variant:
    """One pipeline of the comparison and its samples."""

    def __init__(self, name: str, pipeline: TryOnPipeline, backend: BenchBackend, hud: Sequence[str]) -> None:
        self.name, self.pipeline, self.backend, self.hud = name, pipeline, backend, list(hud)
        self.optimised = not backend.full
        self.preview = PreviewBuffer()
        self.samples: dict[str, list[float]] = {s: [] for s in (*BENCH_STAGES, "encode", "end_to_end")}
        self.drawn = 0
        self.footprints: list[tuple[float, float]] = []

    def step(self, jpeg: bytes, index: int, fps: float, record: bool) -> None:
        times = StageTimes()
        t0 = time.perf_counter()
        with times.stage("capture"):
            image = decode_jpeg(jpeg)
        est = self.pipeline.estimate(Frame(image, index, index / fps))
        skipped = self.pipeline.compositor.skipped
        # optimised: the live loop's synchronous path (composite in place on the decoded frame,
        # the live window's one-pass preview); naive: a frame copy and the two-pass display
        composite = self.pipeline.render(image, est, times, in_place=self.optimised)
        with times.stage("display"):
            if self.optimised:
                self.preview.compose(composite, mirror=True, hud=(self.hud, None))
            else:
                display_frame_naive(composite, self.hud)
        e2e = (time.perf_counter() - t0) * 1e3
        with times.stage("encode"):
            encode_jpeg(composite)
        if not record:
            return
        ms = {**est.times_ms, **times.ms}
        for stage in BENCH_STAGES:
            self.samples[stage].append(ms.get(stage, 0.0))  # a stage that did not run (no face) took 0 ms
        self.samples["encode"].append(ms["encode"])
        self.samples["end_to_end"].append(e2e)
        if est.visible and est.smooth_pts_xy is not None and self.pipeline.compositor.skipped == skipped:
            self.drawn += 1
            span = est.smooth_pts_xy.max(axis=0) - est.smooth_pts_xy.min(axis=0)
            self.footprints.append((float(span[0]), float(span[1])))

    def summary(self) -> dict[str, Any]:
        stats = {k: summarize_ms(np.asarray(v) / 1e3) for k, v in self.samples.items()}
        n = max(1, len(self.samples["end_to_end"]))
        e2e = np.asarray(self.samples["end_to_end"])
        fp = np.asarray(self.footprints) if self.footprints else np.zeros((0, 2))
        return {"stages": stats, "fps": float(1e3 / e2e.mean()) if e2e.size else float("nan"),
                "inference": inference_budget(self.samples["infer"], self.samples["end_to_end"]),
                "drawn_frac": self.drawn / n,
                "footprint_px": [round(float(v), 1) for v in fp.mean(axis=0)] if len(fp) else None}


def model_info(backend: Backend, untrained: bool, description: str) -> dict[str, Any]:
    """What a report says about the model: backend, precision, source, config, trained or not."""
    info = backend.info
    cfg = info.config
    return {"description": description, "backend": info.backend, "precision": info.precision,
            "source": info.source, "untrained": untrained, "category": cfg.category, "input_size": cfg.input_size,
            "width_mult": cfg.width_mult, "decoder_blocks": list(cfg.decoder_blocks), "fusion": cfg.fusion,
            "config_hash": cfg.hash()}


def bench_one(resolver: ModelResolver, category: str, jpegs: Sequence[bytes], fps: float,
              settings: BenchSettings, accessory: Accessory | None = None, peer: Any = None) -> dict[str, Any]:
    """Optimised vs naive pipeline on one category and one set of frames (and the peer, a
    :class:`realtime.bench.peer.FaceMeshPeer` on the same frames, interleaved, when given).

    Returns:
        {"category", "resolution", "model", "placement", "optimised", "naive", "ratios",
        "encode_fg", "peer"} (``naive``/``ratios`` absent when ``settings.naive`` is False,
        ``peer`` without a peer).
    """
    from tqdm import tqdm

    inner = resolver(category)
    untrained = resolver.untrained(category)
    canonical = settings.placement == "canonical" or (settings.placement == "auto" and untrained)
    heatmaps = canonical_heatmaps(category, inner.info) if canonical else None
    acc = accessory or bundled_accessories(category)[0]
    first = decode_jpeg(jpegs[0])
    hud = [f"display 30.0 fps | inference 15.0 Hz, 50 ms | {resolver.describe(category)}",
           f"{acc.name} (1/1) | smoothing on | conf 0.80"]

    def make(name: str, full: bool, prefer_native: bool | None) -> _Variant:
        backend = BenchBackend(inner, full=full, heatmaps=heatmaps)
        pipe = TryOnPipeline(lambda _c: backend, {category: [acc]}, prefer_native=prefer_native)
        if full:
            pipe.compositor = ReferenceCompositor()
        return _Variant(name, pipe, backend, hud)

    variants = [make("optimised", False, settings.prefer_native)]
    if settings.naive:
        variants.append(make("naive", True, False))
    total = settings.warmup + settings.frames
    desc = f"bench {category} {first.shape[1]}x{first.shape[0]}"
    steps: list[Any] = list(variants)
    peer_samples: dict[str, list[float]] = {k: [] for k in PEER_STAGES}
    peer_found = [0]
    if peer is not None:
        def peer_step(i: int) -> None:
            reply = peer.step(i % len(jpegs))
            if i >= settings.warmup:
                for k in PEER_STAGES:
                    peer_samples[k].append(reply["ms"][k])
                peer_found[0] += bool(reply["found"])
        steps.append(peer_step)
    for i in tqdm(range(total), desc=desc, leave=False, unit="frame"):
        order = steps[i % len(steps):] + steps[:i % len(steps)]  # interleaved, rotating who goes first
        for v in order:
            if isinstance(v, _Variant):
                v.step(jpegs[i % len(jpegs)], i, fps, record=i >= settings.warmup)
            else:
                v(i)
    fg, _ = foreground_input(acc.rgba, inner.info.input_size)
    encode_fg = summarize_ms(time_calls(lambda: (inner.set_foreground(fg), inner.synchronize()),
                                        iters=max(3, min(20, settings.frames // 5)), warmup=1))
    out: dict[str, Any] = {
        "category": category, "resolution": f"{first.shape[1]}x{first.shape[0]}", "accessory": acc.name,
        "model": model_info(inner, untrained, resolver.describe(category)),
        "placement": "canonical (untrained weights: network output replaced after it is computed)"
        if canonical else "network", "encode_fg": encode_fg}
    for v in variants:
        out[v.name] = v.summary()
    if settings.naive:
        opt, nai = out["optimised"]["stages"], out["naive"]["stages"]
        out["ratios"] = {k: _ratio(opt[k]["p50"], nai[k]["p50"]) for k in (*BENCH_STAGES, "end_to_end")}
        out["ratios"]["fps"] = _ratio(out["optimised"]["fps"], out["naive"]["fps"])
    if peer is not None:
        stages = {k: summarize_ms(np.asarray(v) / 1e3) for k, v in peer_samples.items()}
        e2e = np.asarray(peer_samples["end_to_end"])
        out["peer"] = {"stages": stages, "fps": float(1e3 / e2e.mean()), "found_frac": peer_found[0] / len(e2e),
                       "versions": {k: v for k, v in peer.info.items() if k != "ready"}, "note": PEER_NOTE,
                       "ratio_e2e_p50": _ratio(out["optimised"]["stages"]["end_to_end"]["p50"],
                                               stages["end_to_end"]["p50"])}
    return out


def inference_budget(infer_ms: Sequence[float], e2e_ms: Sequence[float]) -> dict[str, float] | None:
    """What inference costs in synchronous frames (per-frame samples; 0 where it did not run):
    the fraction of frames it ran on, its mean where it ran, its share of the frame time, the
    frame rate it alone allows, and what everything else takes a frame."""
    infer, e2e = np.asarray(infer_ms, np.float64), np.asarray(e2e_ms, np.float64)
    ran = infer[infer > 0]
    if not ran.size or not e2e.size:
        return None
    return {"ran_frac": float(ran.size / infer.size), "infer_ms": float(ran.mean()),
            "infer_share": float(infer.sum() / e2e.sum()), "infer_cap_fps": float(1e3 / ran.mean()),
            "rest_ms": float((e2e - infer).mean())}


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 and np.isfinite(a) and np.isfinite(b) else float("nan")


# --------------------------------------------------------------------------------------
# Async mode
# --------------------------------------------------------------------------------------

def run_async(resolver: ModelResolver, category: str, jpegs: Sequence[bytes], seconds: float,
              fps: float = CAMERA_FPS, placement: str = "auto", prefer_native: bool | None = None,
              accessory: Accessory | None = None) -> dict[str, Any]:
    """The optimised pipeline in async mode on frames paced at ``fps`` like a camera.

    The pacer thread releases frame k at ``start + k / fps`` and decodes it (the capture
    thread's work); the loop composites every new frame with the newest finished
    inference while a worker thread infers on the newest frame; the display sink does the
    display stage's work. Display FPS = frames shown / wall time; inference Hz = finished
    inferences / wall time.
    """
    inner = resolver(category)
    untrained = resolver.untrained(category)
    canonical = placement == "canonical" or (placement == "auto" and untrained)
    backend = BenchBackend(inner, heatmaps=canonical_heatmaps(category, inner.info) if canonical else None)
    acc = accessory or bundled_accessories(category)[0]
    pipe = TryOnPipeline(lambda _c: backend, {category: [acc]}, prefer_native=prefer_native)
    count = max(1, int(round(seconds * fps)))
    source = RealtimePacer(GeneratedSource(lambda i: decode_jpeg(jpegs[i % len(jpegs)]), fps=fps, count=count,
                                           name="in-memory JPEG"))
    display_ms: list[float] = []
    preview = PreviewBuffer()

    def sink(out: Output) -> None:
        if out.stale:
            return
        t0 = time.perf_counter()
        preview.compose(out.composite, hud=([f"display {out.display_fps:5.1f} fps | inference "
                                              f"{out.inference_hz:5.1f} Hz"], None))
        display_ms.append((time.perf_counter() - t0) * 1e3)

    pipe.estimate(Frame(decode_jpeg(jpegs[0]), 0, 0.0))  # warm-up outside the timed run
    pipe.reset()
    try:
        report = FrameLoop(source, pipe, [sink], mode="async").run()
    finally:
        source.close()
    summary = report.stats.summary()
    return {"category": category, "source_fps": fps, "seconds": seconds, "frames_released": count,
            "frames_shown": report.frames_out, "inferences": report.inferences, "wall_s": report.wall_s,
            "display_fps": report.display_fps, "inference_hz": report.inference_hz,
            "infer_ms": summary.get("infer"), "composite_ms": summary.get("composite"),
            "display_ms": summarize_ms(np.asarray(display_ms) / 1e3)}


# --------------------------------------------------------------------------------------
# The whole report
# --------------------------------------------------------------------------------------

def run_bench(resolver: ModelResolver, categories: Sequence[str], resolutions: Sequence[tuple[int, int]],
              settings: BenchSettings, threads: int) -> dict[str, Any]:
    """Latency benchmark over categories x resolutions (+ the async run of each).

    Returns:
        The JSON-ready report (see :func:`to_markdown` for its layout).
    """
    report: dict[str, Any] = {"kind": "bench", **environment(threads), "settings": dataclasses.asdict(settings),
                              "notes": STAGE_NOTES, "runs": []}
    for size_wh in resolutions:
        count = settings.warmup + settings.frames
        if settings.source == "synthetic":
            jpegs, fps = synthetic_jpegs(size_wh, count), CAMERA_FPS
        else:
            jpegs, fps = video_jpegs(settings.source, size_wh, count)
        peer = _start_peer(settings, jpegs, report)
        try:
            for category in categories:
                run = bench_one(resolver, category, jpegs, fps, settings, peer=peer)
                if settings.async_seconds > 0:
                    run["async"] = run_async(resolver, category, jpegs, settings.async_seconds,
                                             placement=settings.placement, prefer_native=settings.prefer_native)
                report["runs"].append(run)
                log.info("%s", _run_line(run))
        finally:
            if peer is not None:
                peer.close()
    report["load_avg_end"] = list(os.getloadavg())
    return report


def _start_peer(settings: BenchSettings, jpegs: Sequence[bytes], report: dict[str, Any]) -> Any:
    """The FaceMesh peer on these frames, or None (``report["peer"]`` says why not).

    Raises:
        PeerUnavailable: ``peer="on"`` without the teacher environment.
    """
    if settings.peer == "off":
        report["peer"] = {"measured": False, "reason": "--peer off"}
        return None
    from realtime.bench.peer import FaceMeshPeer, PeerUnavailable

    try:
        peer = FaceMeshPeer(jpegs, bundled_accessories("glasses")[0], venv=settings.peer_venv)
    except PeerUnavailable as exc:
        if settings.peer == "on":
            raise
        log.warning("peer not measured: %s", exc)
        report["peer"] = {"measured": False, "reason": str(exc)}
        return None
    report["peer"] = {"measured": True, **{k: v for k, v in peer.info.items() if k != "ready"}}
    return peer


def _run_line(run: dict[str, Any]) -> str:
    opt = run["optimised"]
    line = f"{run['category']} {run['resolution']}: optimised {opt['fps']:.1f} fps"
    if "naive" in run:
        line += f", naive {run['naive']['fps']:.1f} fps (x{run['ratios']['fps']:.2f})"
    if "peer" in run:
        line += f"; peer {run['peer']['fps']:.1f} fps (per-frame path / peer x{run['peer']['ratio_e2e_p50']:.2f})"
    if "async" in run:
        a = run["async"]
        line += f"; async display {a['display_fps']:.1f} fps, inference {a['inference_hz']:.1f} Hz"
    return line


def to_markdown(report: dict[str, Any]) -> str:
    """The latency report as Markdown: per-stage table per run, ratios, async rates."""
    s = report["settings"]
    nat = report["native"]
    lines = [f"# Pipeline latency — {report['date']}", "", run_context_line(report) + ".", "",
             f"Native kernels: {nat['reason']} (CPU rows {nat['cpu_path'] or 'n/a'}; preprocess native: "
             f"{nat['preprocess']}, composite native: {nat['composite']}, {nat['threads']} thread).",
             f"Source: {s['source']} frames held in memory as JPEG q{JPEG_QUALITY}; {s['warmup']} warm-up + "
             f"{s['frames']} timed frames per run; optimised and naive pipelines interleaved frame by frame "
             "(alternating order), ratios from the same run. Shared CPU: absolute numbers are noisy, ratios less so. "
             "capture, roi, decode, smooth and display run the same code in both pipelines: their ratios show the "
             "noise (and the after-effects of the naive composite's full-frame float temporaries on the caches).",
             ""]
    for run in report["runs"]:
        m = run["model"]
        lines += [f"## {run['category']} at {run['resolution']}", "",
                  f"Model: {m['description']}; backend {m['backend']} {m['precision']}, input {m['input_size']}, "
                  f"width x{m['width_mult']}, config {m['config_hash']}. Placement: {run['placement']}. "
                  f"Accessory {run['accessory']}; drawn on {run['optimised']['drawn_frac']:.0%} of frames, "
                  f"footprint ~{run['optimised']['footprint_px']} px (w, h).", ""]
        has_naive = "naive" in run
        head = "| stage | optimised p50 / p95 / p99 (ms) |"
        sep = "|---|---|"
        if has_naive:
            head += " naive p50 / p95 / p99 (ms) | optimised / naive (p50) |"
            sep += "---|---|"
        lines += [head, sep]
        for stage in (*BENCH_STAGES, "end_to_end"):
            o = run["optimised"]["stages"][stage]
            row = f"| {stage} | {fmt(o['p50'])} / {fmt(o['p95'])} / {fmt(o['p99'])} |"
            if has_naive:
                n = run["naive"]["stages"][stage]
                row += f" {fmt(n['p50'])} / {fmt(n['p95'])} / {fmt(n['p99'])} | **{fmt(run['ratios'][stage])}** |"
            lines.append(row)
        o = run["optimised"]["stages"]["encode"]
        lines.append(f"| (encode, not in e2e) | {fmt(o['p50'])} / {fmt(o['p95'])} / {fmt(o['p99'])} |"
                     + (" | |" if has_naive else ""))
        e = run["encode_fg"]
        lines.append(f"| (encode_fg, once per accessory) | {fmt(e['p50'])} / {fmt(e['p95'])} / {fmt(e['p99'])} |"
                     + (" inside infer | |" if has_naive else ""))
        fps = f"End-to-end: optimised **{fmt(run['optimised']['fps'], 1)} fps**"
        if has_naive:
            fps += f", naive {fmt(run['naive']['fps'], 1)} fps: x{fmt(run['ratios']['fps'])} the frame rate"
        lines += ["", fps + "."]
        budget = run["optimised"].get("inference")
        if budget is not None:
            lines.append(f"Inference alone (on {budget['ran_frac']:.0%} of the frames): {fmt(budget['infer_ms'], 1)} ms "
                         f"mean where it ran, {budget['infer_share']:.0%} of the frame time: it caps the synchronous "
                         f"rate at **{fmt(budget['infer_cap_fps'], 1)} fps**; everything but inference takes "
                         f"{fmt(budget['rest_ms'], 1)} ms a frame (mean).")
        if "peer" in run:
            pr = run["peer"]
            st = pr["stages"]
            lines.append(f"Peer, MediaPipe FaceMesh + glasses warp on the same frames, interleaved (mediapipe "
                         f"{pr['versions'].get('mediapipe')}): end to end p50 **{fmt(st['end_to_end']['p50'])} ms** "
                         f"(capture {fmt(st['capture']['p50'])}, landmarks {fmt(st['landmarks']['p50'])}, composite "
                         f"{fmt(st['composite']['p50'])}, display {fmt(st['display']['p50'])}), "
                         f"{fmt(pr['fps'], 1)} fps, face found on {pr['found_frac']:.0%} of frames. "
                         f"**Per-frame path / peer (p50): x{fmt(pr['ratio_e2e_p50'])}** (issue 14's target <= 1.5 at "
                         f"720p, glasses).")
        if "async" in run:
            a = run["async"]
            lines.append(f"Async (source paced at {a['source_fps']:g} fps for {a['seconds']:g} s, inference on a "
                         f"worker thread): display **{fmt(a['display_fps'], 1)} fps** ({a['frames_shown']} of "
                         f"{a['frames_released']} frames shown), inference **{fmt(a['inference_hz'], 1)} Hz** "
                         f"(infer p50 {fmt((a['infer_ms'] or {}).get('p50'), 1)} ms).")
        lines.append("")
    peer = report.get("peer")
    if peer is not None and not peer.get("measured"):
        lines += [f"Peer (MediaPipe FaceMesh + glasses warp): **not measured**: {peer['reason']}.", ""]
    lines += ["## What each timing includes", ""]
    lines += [f"* **{k}**: {v}" for k, v in report["notes"].items()]
    if peer is not None and peer.get("measured"):
        lines.append(f"* **peer**: {PEER_NOTE}")
    return "\n".join(lines) + "\n"


