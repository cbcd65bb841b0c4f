"""The frame pipeline: small stages chained in order, with per-stage timing.

    capture -> ROI -> preprocess -> infer -> decode -> smooth -> warp/composite -> display/record

=================  ==========================================================================
stage              what it does (where)
=================  ==========================================================================
capture            newest camera frame / next file frame (:mod:`realtime.live.capture`)
roi                detect / follow / smooth the face, square crop (:mod:`realtime.live.tracking`)
preprocess         crop -> RGB -> (1, 3, S, S) float32 (:func:`realtime.live.native.preprocess_crop`)
infer              backend.infer with the cached accessory features F_f (:mod:`realtime.backends`)
decode             soft-argmax (:meth:`realtime.codec.HeatmapCodec.decode`), crop -> frame px
smooth             confidence gate + One Euro filter (:mod:`realtime.live.smoothing`)
propagate          async mode only: the keypoints carried to the displayed frame (:mod:`realtime.live.propagation`)
composite          homography + warp + alpha blend, footprint only (:mod:`realtime.live.render`)
display / record   mirror + HUD + window, video writer, keypoint log (:mod:`realtime.live.app`)
=================  ==========================================================================

The two per-pixel stages (preprocess, composite) run the native C++ kernels of
:mod:`realtime.live.native` where they win on this CPU, and their OpenCV/NumPy references
otherwise (``TryOnPipeline(prefer_native=False)`` forces the references, ``True`` the
kernels, None takes :data:`realtime.live.native.PREFER_NATIVE`; ``$TRYON_NATIVE_LIB=off``
disables the library process-wide). Both agree within one grey level (tests/realtime/test_native.py).

:class:`TryOnPipeline` holds the stateful stages (``reset()`` replays from scratch) and
the accessory catalogue; the accessory is encoded once (``Backend.set_foreground``) and
again only when it changes. :class:`FrameLoop` drives a source through it either
synchronously (every frame inferred) or, when inference is slower than the camera,
asynchronously (:class:`AsyncEstimator`): a worker thread infers on the newest frame
while every camera frame is composited with the latest keypoints, so the display keeps
the camera's frame rate. Those keypoints were inferred on an older frame (one inference
period behind: 0.1-2 s on a CPU); unpropagated, the accessory trails a moving face by that
much. So the async path carries them to the displayed frame (:func:`carry_estimate`): the
main thread measures the image motion of the accessory's surroundings from frame to frame
(:class:`realtime.live.propagation.MotionPropagator`: optical flow on a small grey cut-out,
a RANSAC similarity, the ``propagate`` stage) and applies the motion accumulated since the
estimate's frame. Where the motion is unknown (too few features, an implausible step, an
estimate older than the history) the keypoints are drawn as inferred, as before; the
keypoint log says which (``propagated``). The trade-off: about 0.7 ms of CPU a frame on the
main thread at 720p, which on a loaded 2-core CPU costs the worker a sixth of its inference
rate (GIL and cores shared; benchmarks/propagation.py), and a similarity cannot follow a head
that turns out of plane (the next inference corrects it). What propagation cannot remove
is the estimate's own error: the worker's crop is still placed from the previous
inference, so at 1-2 Hz a fast pan leaves the face off-centre in it. Sync mode infers
every frame and never propagates.

:class:`StageTimes` / :class:`StageStats` time the stages for the HUD, the keypoint log
and the benchmark.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from realtime.accessories import Accessory
from realtime.backends.base import Backend
from realtime.codec import HeatmapCodec
from realtime.config import CATEGORIES
from realtime.errors import BackendError
from realtime.framing import Roi, RoiConfig, roi_config
from realtime.geometry import warp_points
from realtime.live import native
from realtime.live.capture import Frame, FrameSource
from realtime.live.propagation import MotionPropagator, PropagationConfig
from realtime.live.render import Compositor
from realtime.live.detectors import FaceDetector
from realtime.live.smoothing import QuadSmoother, SmoothingConfig, quad_to_params
from realtime.live.tracking import REASON_SEARCHING, RoiTracker
from realtime.preprocess import foreground_input
from realtime.sysinfo import summarize_ms

log = logging.getLogger(__name__)

#: Stage names in pipeline order (``encode_fg`` appears only when the accessory changed).
STAGES: tuple[str, ...] = ("encode_fg", "roi", "preprocess", "infer", "decode", "smooth", "composite")
#: Async mode is chosen when one inference takes longer than this fraction of a frame period.
ASYNC_THRESHOLD = 0.8
#: Frames whose stage timings :class:`StageStats` keeps by default (100 s at 30 fps). A
#: sliding window, so a session of any length uses bounded memory: unbounded lists grew
#: the process by 0.18 MiB per 1000 frames in ``tryon bench --soak 20000``
#: (benchmarks/results/soak_*.md).
STATS_WINDOW = 3000
#: Outfit mode composites its categories in this order: the tie under the chin, then the
#: glasses, then the hat over both (a brim covers the top of a frame, never the reverse).
OUTFIT_ORDER: tuple[str, ...] = ("tie", "glasses", "hat")


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------

class StageTimes:
    """Wall-clock milliseconds per stage for one frame."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block and add it to ``ms[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - t0) * 1e3

    @property
    def total(self) -> float:
        return sum(self.ms.values())


class StageStats:
    """Collects :class:`StageTimes` over the most recent frames; p50 / p95 per stage.

    Args:
        window: samples kept per stage (the newest); None keeps all (benchmarks only:
            memory grows with every frame).
    """

    def __init__(self, window: int | None = STATS_WINDOW) -> None:
        self.window = window
        self.samples: dict[str, collections.deque[float]] = collections.defaultdict(
            lambda: collections.deque(maxlen=window))

    def add(self, ms: Mapping[str, float]) -> None:
        for name, value in ms.items():
            self.samples[name].append(value)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {p50, p95, p99, mean, n}} in ms, stages in pipeline order."""
        names = [s for s in STAGES if s in self.samples] + [s for s in self.samples if s not in STAGES]
        return {n: summarize_ms(np.asarray(self.samples[n]) / 1e3) for n in names}

    def table(self) -> str:
        """Plain-text table for logs."""
        rows = [f"{'stage':<12}{'p50 ms':>9}{'p95 ms':>9}{'n':>7}"]
        for name, s in self.summary().items():
            rows.append(f"{name:<12}{s['p50']:>9.2f}{s['p95']:>9.2f}{s['n']:>7d}")
        return "\n".join(rows)


class RateMeter:
    """Events per second over a sliding window (for the HUD's FPS and inference Hz)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._t: collections.deque[float] = collections.deque()

    def tick(self, t: float | None = None) -> None:
        t = time.monotonic() if t is None else t
        self._t.append(t)
        while len(self._t) > 2 and t - self._t[0] > self.window_s:
            self._t.popleft()

    @property
    def rate(self) -> float:
        if len(self._t) < 2 or self._t[-1] <= self._t[0]:
            return 0.0
        return (len(self._t) - 1) / (self._t[-1] - self._t[0])


# --------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------

STATUS_OK = "ok"
STATUS_NO_FACE = REASON_SEARCHING
#: Drawn nothing although a face is followed: the confidence gate is closed.
STATUS_LOW_CONFIDENCE = "network confidence too low to draw"
STATUS_NON_FINITE = "non-finite network output (holding the last pose)"


@dataclass(frozen=True)
class Estimate:
    """Everything the pipeline inferred for one frame (before compositing).

    Attributes:
        frame_index, timestamp: the frame it was computed on.
        accessory: the accessory it places.
        roi: the crop used (None when nobody was found).
        raw_pts_xy: (4, 2) decoded keypoints in frame pixels (None: no face / non-finite).
        smooth_pts_xy: (4, 2) after the smoothing stage (the raw ones when it is off).
        confidence: weakest corner's heatmap peak (None when nothing was decoded).
        visible: draw the accessory: the confidence gate is open and the network has
            confirmed the detection (presence check).
        status: ``ok`` when drawn, else why not: ``no face``, the tracker's reason
            (:data:`realtime.live.tracking.REASON_CHECKING` / ``REASON_REJECTED`` /
            ``REASON_LEFT``), :data:`STATUS_LOW_CONFIDENCE` or the non-finite message.
        times_ms: per-stage latency.
        layers: outfit mode: the newest estimate of every category worn, in
            :data:`OUTFIT_ORDER` (this estimate is the one of the category being edited).
        propagated: async mode only (None otherwise): True when the keypoints were carried
            from ``frame_index`` to the displayed frame by the measured image motion
            (:mod:`realtime.live.propagation`), False when they are drawn as inferred
            (tracking failed, or the motion chain broke since that frame). The keypoint log
            writes it as ``propagated``; sync mode's records are unchanged.
    """

    frame_index: int
    timestamp: float
    accessory: Accessory
    roi: Roi | None
    raw_pts_xy: np.ndarray | None
    smooth_pts_xy: np.ndarray | None
    confidence: float | None
    visible: bool
    status: str
    times_ms: dict[str, float] = field(default_factory=dict)
    layers: tuple["Estimate", ...] = ()
    propagated: bool | None = None

    def record(self, frame: Frame | None = None, extra_ms: Mapping[str, float] | None = None) -> dict[str, Any]:
        """JSON-ready dict for the keypoint log (``frame``: the output frame, when it differs)."""
        def pts(a: np.ndarray | None) -> list[list[float]] | None:
            return None if a is None else [[round(float(x), 3), round(float(y), 3)] for x, y in a]

        index, timestamp = (self.frame_index, self.timestamp) if frame is None else (frame.index, frame.timestamp)
        out = {
            "frame": index, "timestamp": round(timestamp, 6), "inferred_frame": self.frame_index,
            "accessory": self.accessory.name, "category": self.accessory.category,
            "raw": pts(self.raw_pts_xy), "smoothed": pts(self.smooth_pts_xy),
            "confidence": None if self.confidence is None else round(float(self.confidence), 5),
            "visible": bool(self.visible), "status": self.status,
            "latency_ms": {k: round(v, 3) for k, v in {**self.times_ms, **(extra_ms or {})}.items()},
        }
        if self.propagated is not None:
            out["propagated"] = self.propagated
        if self.layers:
            out["layers"] = [layer.record() for layer in self.layers]
        return out


# --------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------

class TryOnPipeline:
    """Stateful stages ROI -> ... -> composite for one person, with an accessory catalogue.

    Args:
        backend_for: ``category -> Backend`` (e.g. :class:`realtime.backends.resolver.ModelResolver`);
            called when a category is first used.
        catalogue: accessories, either a list (grouped by their category) or a mapping
            ``category -> list``. Categories without accessories are skipped.
        category: starting category (default: the first one that has accessories).
        smoothing: :class:`SmoothingConfig` for the keypoint filter and gate.
        roi_configs: per-category :class:`RoiConfig` overrides.
        detector: face detector shared by all categories (default: the registry's default,
            :func:`realtime.live.detectors.make_detector`).
        prefer_native: native C++ preprocess and composite kernels: True, False (the
            OpenCV/NumPy references) or None (the measured default, see
            :data:`realtime.live.native.PREFER_NATIVE`).

    Outfit mode (:meth:`set_outfit`): several categories worn at once, each with its own
    model, tracker, smoother and current accessory (one single-category pipeline per
    layer); :meth:`render` composites them in :data:`OUTFIT_ORDER`. The selection methods
    then act on the category being edited (``cycle_category`` goes round the outfit).

    Thread safety: :meth:`estimate` and the selection methods hold one lock, so a key
    press can switch accessories while a worker thread infers; :meth:`render` needs no
    lock (it reads only the estimate it is given).
    """

    def __init__(self, backend_for: Callable[[str], Backend],
                 catalogue: Sequence[Accessory] | Mapping[str, Sequence[Accessory]], category: str | None = None,
                 smoothing: SmoothingConfig | None = None, roi_configs: Mapping[str, RoiConfig] | None = None,
                 detector: FaceDetector | None = None, prefer_native: bool | None = None) -> None:
        items = catalogue.items() if isinstance(catalogue, Mapping) else \
            [(c, [a for a in catalogue if a.category == c]) for c in CATEGORIES]
        self.catalogue: dict[str, list[Accessory]] = {c: list(a) for c, a in items if a}
        if not self.catalogue:
            raise ValueError("no accessories to show")
        for cat, accs in self.catalogue.items():
            wrong = [a.name for a in accs if a.category != cat]
            if wrong:
                raise ValueError(f"accessories {wrong} listed under category {cat!r}")
        self.backend_for = backend_for
        self.roi_configs = {c: (roi_configs or {}).get(c) or roi_config(c) for c in CATEGORIES}
        self.smoother = QuadSmoother(smoothing)
        self.prefer_native = prefer_native
        self.compositor = Compositor(prefer_native)
        self._detector = detector
        self._lock = threading.RLock()
        self._index = {c: 0 for c in self.catalogue}
        self._encoded: dict[int, Accessory] = {}  # id(backend) -> accessory whose F_f it holds
        self._warned_non_finite = False
        # accessory, its init quad, that quad's angle (degrees: the upright reference of the roll)
        self._acc_quad: tuple[Accessory | None, np.ndarray | None, float] = (None, None, 0.0)
        self.tracker: RoiTracker | None = None
        self.category = ""
        self.outfit: tuple[str, ...] = ()
        self._layers: dict[str, TryOnPipeline] = {}
        self._latest: dict[str, Estimate] = {}
        self._turn = 0
        self.select_category(category or next(iter(self.catalogue)))

    # ------------------------------------------------------------------ selection
    @property
    def accessory(self) -> Accessory:
        """The accessory being tried on."""
        return self.catalogue[self.category][self._index[self.category]]

    def selected_index(self, category: str) -> int:
        """Index of the accessory selected in ``category``'s catalogue list."""
        return self._index[category]

    @property
    def backend(self) -> Backend:
        """The backend of the current category."""
        return self._backend

    def select_category(self, category: str) -> None:
        """Switch to ``category`` (its model, crop framing and accessories).

        Raises:
            ValueError: no accessories of that category.
            BackendError: its model cannot be opened or serves another category.
        """
        with self._lock:
            if category not in self.catalogue:
                raise ValueError(f"no accessories of category {category!r}; have {', '.join(self.catalogue)}")
            backend = self.backend_for(category)
            if backend.info.category != category:
                raise BackendError(f"{backend.info.source}: model for category {backend.info.category!r}, "
                                   f"needed {category!r}")
            self._backend, self.category = backend, category
            self.codec = HeatmapCodec(backend.info.config.codec)
            self.input_size = backend.info.input_size
            cfg = self.roi_configs[category]
            if self.tracker is None:
                self.tracker = RoiTracker(cfg, self.input_size, self._detector)
            else:
                self.tracker.set_config(cfg, self.input_size)
            self.smoother.reset()

    def cycle_category(self, step: int = 1) -> str:
        """Next category that has accessories (in outfit mode: of the outfit); returns it."""
        with self._lock:
            cats = list(self.outfit or self.catalogue)
            i = cats.index(self.category) if self.category in cats else -step
            self.select_category(cats[(i + step) % len(cats)])
            return self.category

    def set_outfit(self, categories: Sequence[str] | None) -> tuple[str, ...]:
        """Wear ``categories`` together (None / empty: one category at a time, the current one).

        Each category's model is opened now, so a missing one fails here.

        Returns:
            The outfit, in composite order (:data:`OUTFIT_ORDER`).

        Raises:
            ValueError: a category without accessories.
            BackendError: a category's model cannot be opened.
        """
        with self._lock:
            if not categories:
                self.outfit = ()
                self._latest.clear()
                return ()
            missing = [c for c in categories if c not in self.catalogue]
            if missing:
                raise ValueError(f"outfit: no accessories of {', '.join(missing)}; have {', '.join(self.catalogue)}")
            outfit = tuple(c for c in OUTFIT_ORDER if c in categories)
            for c in outfit:
                self._layer(c)
            self.outfit = outfit
            self._latest.clear()
            if self.category not in outfit:
                self.select_category(outfit[-1])
            return outfit

    def _layer(self, category: str) -> "TryOnPipeline":
        """The single-category pipeline wearing ``category`` in the outfit (made once)."""
        sub = self._layers.get(category)
        if sub is None:
            sub = TryOnPipeline(self.backend_for, {category: self.catalogue[category]}, category=category,
                                smoothing=self.smoother.cfg, roi_configs=self.roi_configs, detector=self._detector,
                                prefer_native=self.prefer_native)
            sub._encoded = self._encoded  # one record of what each (shared) backend holds
            sub.compositor = self.compositor
            self._layers[category] = sub
        return sub

    def next_accessory(self, step: int = 1) -> Accessory:
        """Next (``step`` = 1) / previous (-1) accessory of the current category."""
        with self._lock:
            n = len(self.catalogue[self.category])
            self._index[self.category] = (self._index[self.category] + step) % n
            return self.accessory

    def select(self, accessory: Accessory) -> None:
        """Switch to a catalogue accessory (and its category)."""
        with self._lock:
            if accessory.category != self.category:
                self.select_category(accessory.category)
            self._index[self.category] = next(i for i, a in enumerate(self.catalogue[self.category])
                                              if a is accessory)

    def reset(self) -> None:
        """Forget the person (tracking, smoothing); keeps the selection and cached F_f."""
        with self._lock:
            self.tracker.reset()
            self.smoother.reset()
            for sub in self._layers.values():
                sub.reset()
            self._latest.clear()

    # ------------------------------------------------------------------ stages
    def _ensure_foreground(self, times: StageTimes) -> None:
        acc, backend = self.accessory, self._backend
        if self._encoded.get(id(backend)) is acc:
            return
        with times.stage("encode_fg"):
            fg, _ = foreground_input(acc.rgba, self.input_size)  # (1, 4, S, S)
            backend.set_foreground(fg)
        self._encoded[id(backend)] = acc
        log.debug("encoded accessory %s for %s", acc.name, backend.info.backend)

    def estimate(self, frame: Frame, round_robin: bool = False) -> Estimate:
        """Run ROI -> preprocess -> infer -> decode -> smooth on one frame.

        Outfit mode: every category of the outfit, or with ``round_robin`` (the async
        worker) the next one in turn, the others keeping their newest estimate; the stage
        times are summed over the categories inferred.
        """
        if self.outfit:
            return self._estimate_outfit(frame, round_robin)
        times = StageTimes()
        with self._lock:
            acc = self.accessory
            self._ensure_foreground(times)
            t = frame.timestamp
            with times.stage("roi"):
                roi = self.tracker.update(frame.image, t)
            if roi is None:
                self.smoother.reset()
                return Estimate(frame.index, t, acc, None, None, None, None, False,
                                self.tracker.reason or STATUS_NO_FACE, times.ms)
            with times.stage("preprocess"):
                x = native.preprocess_crop(frame.image, roi.crop_from_frame, self.input_size,
                                           prefer_native=self.prefer_native)  # (1, 3, S, S)
            with times.stage("infer"):
                heatmaps = self._backend.infer(x)  # (1, 4, S, S)
            with times.stage("decode"):
                finite = bool(np.all(np.isfinite(heatmaps)))
                if finite:
                    if self._acc_quad[0] is not acc:
                        self._acc_quad = (acc, acc.init_vertex_xy,
                                          math.degrees(quad_to_params(acc.init_vertex_xy)[2]))
                    dec = self.codec.decode_quad(heatmaps[0], self._acc_quad[1])
                    confidence = dec.confidence
                    raw = roi.to_frame(dec.pts_xy)  # (4, 2) frame px
                    finite = bool(np.all(np.isfinite(raw))) and np.isfinite(confidence)
            if not finite:
                if not self._warned_non_finite:
                    log.warning("the network returned non-finite values (%s): holding the last good pose "
                                "(logged once)", self._backend.info.source)
                    self._warned_non_finite = True
                return Estimate(frame.index, t, acc, roi, None, self.smoother.last, None, self.smoother.visible,
                                STATUS_NON_FINITE, times.ms)
            with times.stage("smooth"):
                out = self.smoother.update(raw, confidence, t)
            gate = self.smoother.cfg
            # The raw quad's roll turns the next crop (through the tracker's dead-band): the smoothed
            # one lags (its cutoff at rest, 0.05 Hz, is for the display), and a late-turning crop fed
            # that lag back into the keypoints.
            # (Given on every frame: the tracker uses it from a confident frame, or while it checks a new
            # detection, whose roll may come from a detector view 15 degrees off.)
            try:
                roll = math.degrees(quad_to_params(raw)[2]) - self._acc_quad[2]
            except ValueError:  # a degenerate quad has no roll
                roll = None
            # Presence: the tracker keeps the face only at its verify level (roi.verify_confidence, the
            # confidence passed here), not at the gate's show level: on a non-face picture left where the
            # face was (the space shuttle of the steadiness script) the shipped glasses model gives
            # 0.31-0.49, which kept the accessory on.
            kept = self.tracker.observe(raw, confident=confidence >= gate.show_confidence, roll_deg=roll,
                                        confidence=confidence)
            if not kept:  # presence check: the network refused the detection, or the face left
                self.smoother.reset()
                return Estimate(frame.index, t, acc, roi, raw, None, confidence, False, self.tracker.reason,
                                times.ms)
            # Hidden from the first frame the network calls absent (not after the gate's hide_frames
            # below hide_confidence): with the face gone the accessory was drawn on 2 of every away
            # segment's frames before the face was dropped on the 3rd.
            visible = out.visible and self.tracker.showing
            status = STATUS_OK if visible else (self.tracker.reason or STATUS_LOW_CONFIDENCE)
            return Estimate(frame.index, t, acc, roi, raw, out.pts_xy, confidence, visible, status, times.ms)

    def _estimate_outfit(self, frame: Frame, round_robin: bool) -> Estimate:
        with self._lock:
            cats = self.outfit
            todo = (cats[self._turn % len(cats)],) if round_robin else cats
            self._turn += 1
            times: dict[str, float] = {}
            for c in todo:
                sub = self._layer(c)
                sub.smoother.enabled = self.smoother.enabled
                sub.select(self.catalogue[c][self.selected_index(c)])
                est = sub.estimate(frame)
                self._latest[c] = est
                for k, v in est.times_ms.items():
                    times[k] = times.get(k, 0.0) + v
            layers = tuple(self._latest[c] for c in cats if c in self._latest)
            primary = self._latest.get(self.category) or self._latest[todo[-1]]
            return dataclasses.replace(primary, times_ms=times, layers=layers)

    def render(self, image: np.ndarray, est: Estimate | None, times: StageTimes | None = None,
               in_place: bool = False) -> np.ndarray:
        """Composite the estimate's accessory (outfit: every layer, in order) onto ``image`` (BGR,
        full resolution): onto a copy, or, with ``in_place``, onto ``image`` itself, so the
        per-frame cost follows the accessory's footprint, not the frame (the caller must own
        ``image``: nothing else may read the uncomposited pixels afterwards)."""
        out = image if in_place else image.copy()
        times = times or StageTimes()
        with times.stage("composite"):
            for layer in (() if est is None else est.layers or (est,)):
                if layer.visible and layer.smooth_pts_xy is not None:
                    self.compositor.draw(out, layer.accessory, layer.smooth_pts_xy)
        return out

    def process(self, frame: Frame, in_place: bool = False) -> tuple[Estimate, np.ndarray]:
        """All stages synchronously: (estimate, composited frame); the estimate's
        ``times_ms`` includes ``composite``. ``in_place``: see :meth:`render`."""
        est = self.estimate(frame)
        times = StageTimes()
        composite = self.render(frame.image, est, times, in_place=in_place)
        est.times_ms.update(times.ms)
        return est, composite


# --------------------------------------------------------------------------------------
# Asynchronous inference
# --------------------------------------------------------------------------------------

class AsyncEstimator:
    """Runs :meth:`TryOnPipeline.estimate` on a worker thread, always on the newest frame.

    ``submit`` replaces any frame still waiting; ``latest`` returns the newest finished
    estimate. An exception in the worker is re-raised by the next ``latest``.
    """

    def __init__(self, pipeline: TryOnPipeline) -> None:
        self.pipeline = pipeline
        self.rate = RateMeter()
        self._cond = threading.Condition()
        self._pending: Frame | None = None
        self._latest: Estimate | None = None
        self._error: BaseException | None = None
        self._stop = False
        self.completed = 0
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                frame, self._pending = self._pending, None
            try:
                est = self.pipeline.estimate(frame, round_robin=True)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._latest = est
                self.completed += 1
                self.rate.tick()
                self._cond.notify_all()

    def submit(self, frame: Frame) -> None:
        with self._cond:
            self._pending = frame
            self._cond.notify_all()

    def latest(self, wait_first_s: float = 0.0) -> Estimate | None:
        """Newest estimate; waits up to ``wait_first_s`` while there is none yet."""
        with self._cond:
            if self._latest is None and wait_first_s > 0:
                self._cond.wait_for(lambda: self._latest is not None or self._error is not None, wait_first_s)
            if self._error is not None:
                raise self._error
            return self._latest

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10.0)


def carry_estimate(est: Estimate, index: int, motion: MotionPropagator) -> Estimate:
    """The estimate (and, in outfit mode, each layer, from its own inferred frame) carried
    to frame ``index`` by the motion ``motion`` measured since; a layer whose motion is
    unknown keeps its keypoints (``propagated=False``). Visibility is never changed: a
    hidden accessory stays hidden."""
    def one(e: Estimate, layers: tuple[Estimate, ...] = ()) -> Estimate:
        mat = motion.carry(e.frame_index, index)
        if mat is None:
            return dataclasses.replace(e, propagated=False, layers=layers)
        moved = [None if p is None else warp_points(mat, p).astype(p.dtype) for p in (e.raw_pts_xy, e.smooth_pts_xy)]
        return dataclasses.replace(e, raw_pts_xy=moved[0], smooth_pts_xy=moved[1], propagated=True, layers=layers)

    return one(est, tuple(one(layer) for layer in est.layers))


def estimate_region(est: Estimate | None) -> list[np.ndarray]:
    """The quads (frame px) whose surroundings the propagation follows: every layer's
    drawn keypoints (the raw ones where nothing is drawn), none without a face."""
    if not isinstance(est, Estimate):
        return []
    quads = []
    for layer in est.layers or (est,):
        if layer.roi is None:
            continue
        q = layer.smooth_pts_xy if layer.smooth_pts_xy is not None else layer.raw_pts_xy
        if q is not None:
            quads.append(q)
    return quads


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------

@dataclass
class Output:
    """One output frame handed to the sinks.

    Attributes:
        frame: the source frame.
        estimate: the keypoints used (from this frame in sync mode; in async mode the
            newest finished inference, carried to this frame where the motion is known,
            :attr:`Estimate.propagated`; None before the first one).
        composite: BGR frame with the accessory (not mirrored, no HUD).
        stale: True when the source delivered nothing new (camera lost): ``frame`` is the
            last good one and sinks that store frames should skip it.
        source_status: the source's status line (``ok``, ``camera lost, retrying``).
        display_fps, inference_hz: measured rates.
        times_ms: per-stage latency of this output (estimate stages + composite).
    """

    frame: Frame
    estimate: Estimate | None
    composite: np.ndarray
    stale: bool = False
    source_status: str = "ok"
    display_fps: float = 0.0
    inference_hz: float = 0.0
    times_ms: dict[str, float] = field(default_factory=dict)


#: A sink receives each output; returning False stops the loop.
Sink = Callable[[Output], "bool | None"]


@dataclass
class LoopReport:
    """What a :class:`FrameLoop` run did."""

    frames_in: int = 0
    frames_out: int = 0
    inferences: int = 0
    #: Async mode: output frames whose keypoints were carried to them by the measured motion.
    propagated: int = 0
    wall_s: float = 0.0
    mode: str = "sync"
    interrupted: bool = False
    stats: StageStats = field(default_factory=StageStats)
    #: One line per file written (filled in by the caller that closes the sinks).
    outputs: list[str] = field(default_factory=list)

    @property
    def display_fps(self) -> float:
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def inference_hz(self) -> float:
        return self.inferences / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.frames_out} frames out of {self.frames_in} in {self.wall_s:.1f} s ({self.mode}): "
                f"display {self.display_fps:.1f} fps, inference {self.inference_hz:.1f} Hz"
                + (" (interrupted)" if self.interrupted else ""))


class FrameLoop:
    """Drives a source through the pipeline into sinks (display, recorder, keypoint log).

    Args:
        source: where frames come from.
        pipeline: the stages.
        sinks: called with every :class:`Output`, in order; a sink returning False stops.
        mode: ``sync`` (every frame inferred), ``async`` (inference on a worker thread,
            display at the source's rate) or ``auto``: async only for a live source whose
            inference (timed on its first frame) exceeds ``ASYNC_THRESHOLD`` frame periods.
        max_frames: stop after this many source frames.
        duration_s: stop after this much source time.
        on_frame: called with each source frame before it is processed (e.g. a demo
            script switching accessories).
        stall_timeout_s: while a live source delivers nothing (camera lost), the sinks get
            a stale output this often, so the window can say so.
        propagate: async mode: carry the newest keypoints to each displayed frame with the
            image motion measured since their frame (:mod:`realtime.live.propagation`;
            a :class:`PropagationConfig` sets its options, False draws them as inferred).
            Sync mode never propagates.
    """

    def __init__(self, source: FrameSource, pipeline: TryOnPipeline, sinks: Sequence[Sink] = (),
                 mode: str = "auto", max_frames: int | None = None, duration_s: float | None = None,
                 on_frame: Callable[[Frame], None] | None = None, stall_timeout_s: float = 0.5,
                 propagate: bool | PropagationConfig = True) -> None:
        if mode not in ("auto", "sync", "async"):
            raise ValueError(f"mode must be auto, sync or async, got {mode!r}")
        self.source, self.pipeline, self.sinks = source, pipeline, list(sinks)
        self.mode, self.max_frames, self.duration_s, self.on_frame = mode, max_frames, duration_s, on_frame
        self.stall_timeout_s = stall_timeout_s
        self.display_rate = RateMeter()
        self.infer_rate = RateMeter()
        self.estimator: AsyncEstimator | None = None
        self.propagate = propagate
        self.motion: MotionPropagator | None = None
        self.stop_requested = False

    def _choose_mode(self, frame: Frame) -> str:
        if self.mode != "auto":
            return self.mode
        if not self.source.live:
            return "sync"
        self.pipeline.estimate(frame)  # warm-up (first call allocates)
        t0 = time.perf_counter()
        self.pipeline.estimate(frame)
        latency = time.perf_counter() - t0
        self.pipeline.reset()
        period = 1.0 / max(self.source.fps, 1e-3)
        mode = "async" if latency > ASYNC_THRESHOLD * period else "sync"
        log.info("inference takes %.0f ms per frame, the source delivers one every %.0f ms: %s mode",
                 latency * 1e3, period * 1e3, mode)
        return mode

    def _emit(self, out: Output, report: LoopReport) -> bool:
        keep_going = True
        for sink in self.sinks:
            if sink(out) is False:
                keep_going = False
        if not out.stale:
            report.frames_out += 1
        return keep_going and not self.stop_requested

    def run(self) -> LoopReport:
        """Process until the source ends, a limit is reached, a sink stops, or Ctrl-C.

        ``KeyboardInterrupt`` ends the loop normally (``report.interrupted``) so callers'
        ``finally`` clauses close recorders; other exceptions propagate.
        """
        report = LoopReport()
        start = time.monotonic()
        last: Output | None = None
        counted: Estimate | None = None
        first_t: float | None = None
        try:
            while not self.stop_requested:
                frame = self.source.read(timeout=self.stall_timeout_s)
                if frame is None:
                    if self.source.ended:
                        break
                    if last is not None:  # live source stalled: tell the sinks, keep the last picture
                        stale = Output(last.frame, last.estimate, last.composite, stale=True,
                                       source_status=self.source.status)
                        if not self._emit(stale, report):
                            break
                    continue
                if first_t is None:
                    first_t = frame.timestamp
                    report.mode = self._choose_mode(frame)
                    if report.mode == "async":
                        self.estimator = AsyncEstimator(self.pipeline)
                        if self.propagate is not False:
                            self.motion = MotionPropagator(self.propagate if isinstance(
                                self.propagate, PropagationConfig) else None)
                if self.duration_s is not None and frame.timestamp - first_t >= self.duration_s:
                    break
                report.frames_in += 1
                if self.on_frame is not None:
                    self.on_frame(frame)
                times = StageTimes()
                if self.estimator is None:
                    est = inferred = self.pipeline.estimate(frame)
                    report.inferences += 1
                    self.infer_rate.tick()
                else:
                    before = self.estimator.completed
                    self.estimator.submit(frame)
                    est = self.estimator.latest(wait_first_s=5.0 if report.inferences == 0 else 0.0)
                    report.inferences += self.estimator.completed - before
                    self.infer_rate = self.estimator.rate
                    inferred = est
                    if self.motion is not None:  # carry the keypoints to this frame
                        with times.stage("propagate"):
                            self.motion.observe(frame.image, frame.index)
                            if isinstance(est, Estimate):  # (a stand-in pipeline's estimates have no keypoints)
                                est = carry_estimate(est, frame.index, self.motion)
                            self.motion.retarget(frame.image, estimate_region(est))
                        report.propagated += bool(getattr(est, "propagated", False))
                # Synchronous: the estimate is done with the frame, so a fresh frame is composited in
                # place; asynchronous: the worker may still read it, so the composite gets a copy.
                in_place = self.estimator is None and self.source.fresh_frames
                composite = self.pipeline.render(frame.image, est, times, in_place=in_place)
                self.display_rate.tick()
                ms = dict(est.times_ms) if est is not None else {}
                ms.update(times.ms)
                # Each inference's stages count once in the statistics, however many frames reuse it.
                report.stats.add(ms if inferred is not None and inferred is not counted else times.ms)
                counted = inferred
                last = Output(frame, est, composite, source_status=self.source.status,
                              display_fps=self.display_rate.rate, inference_hz=self.infer_rate.rate, times_ms=ms)
                if not self._emit(last, report):
                    break
                if self.max_frames is not None and report.frames_in >= self.max_frames:
                    break
        except KeyboardInterrupt:
            log.info("interrupted: stopping")
            report.interrupted = True
        finally:
            if self.estimator is not None:
                report.inferences = max(report.inferences, self.estimator.completed)
                self.estimator.close()
                self.estimator = None
                self.motion = None
            report.wall_s = time.monotonic() - start
        return report
