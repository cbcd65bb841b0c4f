"""OpenVINO backend (CPU): the exported foreground graph once per accessory, the per-frame graph every frame.

The default runtime on a CPU (:mod:`realtime.backends.resolver`). It reads the same fp32 ONNX pair as
:class:`realtime.backends.onnx_backend.OnnxBackend` (same metadata and I/O checks) and
compiles each graph for OpenVINO's CPU plugin with a latency hint and a fixed thread count.

**Precision** (:func:`choose_precision`). The per-frame graph runs in bf16 only when both

* the CPU computes bf16 natively (OpenVINO reports ``BF16`` among the CPU's optimisation
  capabilities: AMX or AVX512_BF16), and
* the model passed a keypoint check of bf16 against fp32, measured at export/ship time on
  held-out inputs and stored in the frame graph's metadata
  (:attr:`realtime.artifacts.ArtifactMeta.bf16_check`, written by
  :func:`bf16_keypoint_check`: p99 keypoint error <= :data:`BF16_TOLERANCE_P99_PX`).

Otherwise fp32, and the log says which condition failed. The foreground graph always runs
in fp32 (once per accessory: its cost does not matter, its features feed every frame). The
precision-sensitive tail — the soft-argmax decode — runs on the host in float32
(:mod:`realtime.codec`) whatever the network's precision. OpenVINO would pick bf16 by itself
on an AMX CPU, so fp32 is always requested explicitly.

``OpenVinoBackend.from_path`` accepts a per-frame ``.onnx``, an export folder, or a tryon
checkpoint (``.pt``), which is exported once into the user cache
(:mod:`realtime.backends.export_cache`). ``openvino`` is imported lazily, never at package
import.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from realtime.artifacts import BG_INPUT, FEATURES, FG_INPUT, HEATMAPS, ArtifactMismatchError, check_meta, check_pair
from realtime.backends.base import Backend, ModelInfo, OpenOptions, as_heatmaps
from realtime.backends.onnx_backend import check_graph_io, find_frame_graph, foreground_graph_path, read_onnx_meta
from realtime.errors import BackendError

log = logging.getLogger(__name__)

#: The bf16 check passes when the p99 keypoint error of bf16 vs fp32 is at most this, in
#: pixels at network resolution (issue 14's target: within 0.5 px of fp32 at p99).
BF16_TOLERANCE_P99_PX = 0.5
#: What a requested precision may be: ``auto`` (bf16 where :func:`choose_precision` allows).
PRECISION_CHOICES = ("auto", "fp32", "bf16")
#: What every graph is compiled with (plus the thread count and the precision). Measured on the
#: 2-core AMD EPYC (benchmarks/results/cpu_runtimes_*): no other CPU setting (no hint,
#: denormals, pinning, TBB partitioner, execution mode) moved the glasses model by more than
#: 1 %; the graphs are exported with static shapes, so there is nothing to reshape.
COMPILE_PROPERTIES: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
#: OpenVINO element type names -> this project's precision names.
_OV_PRECISION = {"bf16": "bf16", "f32": "fp32", "f16": "fp16"}


def import_openvino() -> Any:
    """The ``openvino`` module.

    Raises:
        BackendError: not installed (the message says how to install it).
    """
    try:
        import openvino
    except ImportError as exc:
        raise BackendError("the OpenVINO backend needs the 'openvino' package: pip install 'tryon-realtime[openvino]' "
                           "(or pip install openvino), or use --backend onnxruntime / torch") from exc
    return openvino


@functools.lru_cache(maxsize=1)
def shared_core() -> Any:
    """The process's one ``openvino.Core``: every backend compiles with it, so OpenVINO's device
    plugins are loaded once and stay loaded for the life of the process (OpenVINO unloads a
    plugin when the last Core using it goes; a process that created and dropped Cores per
    model crashed in the test suite on a later SIGINT)."""
    return import_openvino().Core()


def cpu_capabilities(core: Any) -> list[str]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU plugin (e.g. FP32, BF16, INT8)."""
    return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def cpu_name(core: Any) -> str:
    """The CPU's name as OpenVINO reports it."""
    return str(core.get_property("CPU", "FULL_DEVICE_NAME"))


@dataclass(frozen=True)
class PrecisionChoice:
    """The per-frame graph's precision and why."""

    precision: str
    reason: str
    fallback: bool = False  # bf16 was possible on this CPU but the model's check did not allow it


def choose_precision(requested: str, bf16_check: dict[str, Any], cpu_has_bf16: bool, source: str) -> PrecisionChoice:
    """Pick the per-frame precision from the request, the CPU and the stored keypoint check.

    Args:
        requested: ``auto``, ``fp32`` or ``bf16`` (bf16 forces it past the keypoint check,
            not past the hardware).
        bf16_check: the frame graph's :attr:`ArtifactMeta.bf16_check`.
        cpu_has_bf16: whether the CPU computes bf16 natively.
        source: the frame graph (named in messages).

    Raises:
        BackendError: bf16 requested on a CPU without bf16, or an unknown request.
    """
    if requested not in PRECISION_CHOICES:
        raise BackendError(f"openvino backend: precision must be one of {', '.join(PRECISION_CHOICES)}, "
                           f"got {requested!r}")
    if requested == "fp32":
        return PrecisionChoice("fp32", "fp32 requested")
    if not cpu_has_bf16:
        if requested == "bf16":
            raise BackendError("openvino backend: bf16 requested but this CPU has no native bf16 "
                               "(no BF16 in OpenVINO's CPU capabilities: needs AMX or AVX512_BF16); use fp32 or auto")
        return PrecisionChoice("fp32", "this CPU has no native bf16 (AMX / AVX512_BF16)")
    if requested == "bf16":
        return PrecisionChoice("bf16", "bf16 requested (the stored keypoint check is not consulted)")
    if not bf16_check.get("measured"):
        why = bf16_check.get("reason", "never run")
        return PrecisionChoice("fp32", f"{source}: no bf16 keypoint check in its metadata ({why}); re-export on a "
                                       f"bf16 CPU to measure it: tryon export --checkpoint CKPT --out DIR", True)
    p99, tol = float(bf16_check.get("p99_px", float("inf"))), float(bf16_check.get("tolerance_p99_px", 0.0))
    if not bf16_check.get("passed") or not p99 <= tol:
        return PrecisionChoice("fp32", f"{source}: the model FAILED its bf16 keypoint check (p99 {p99:.3f} px, "
                                       f"max {float(bf16_check.get('max_px', float('nan'))):.3f} px > "
                                       f"{tol} px vs fp32)", True)
    return PrecisionChoice("bf16", f"bf16 keypoint check passed (p99 {p99:.3f} px <= {tol} px vs fp32, "
                                   f"{bf16_check.get('samples', '?')} samples)")


class OpenVinoBackend(Backend):
    """Runs the exported fp32 graphs with OpenVINO on the CPU.

    Args:
        frame_path: the fp32 per-frame ``.onnx`` graph.
        fg_path: its foreground graph (default: the sibling named in its metadata).
        category: requested accessory category (refused if the graphs were built for another).
        threads: OpenVINO inference threads (None: :func:`realtime.backends.resolver.default_threads`).
        precision: ``auto``, ``fp32`` or ``bf16`` for the per-frame graph (:func:`choose_precision`).
        cpu_has_bf16: override the CPU capability probe (tests; None: ask OpenVINO).
        properties: OpenVINO compile properties on top of :data:`COMPILE_PROPERTIES` for both
            graphs (a value of None removes that property), e.g. ``{"CACHE_DIR": ...}``;
            ``benchmarks/cpu_runtimes.py`` compares the settings with them.
    """

    def __init__(self, frame_path: str | Path, fg_path: str | Path | None = None, category: str | None = None,
                 threads: int | None = None, precision: str = "auto", cpu_has_bf16: bool | None = None,
                 properties: dict[str, Any] | None = None) -> None:
        frame_path = Path(frame_path)
        if not frame_path.is_file():
            raise FileNotFoundError(f"ONNX graph not found: {frame_path}")
        frame_meta = check_meta(read_onnx_meta(frame_path), str(frame_path), graph="frame", category=category)
        if frame_meta.precision != "fp32":
            raise ArtifactMismatchError(f"{frame_path}: a {frame_meta.precision} graph; OpenVINO runs the fp32 graph "
                                        f"and chooses its own inference precision. Pass the _fp32.onnx file")
        fg_path = foreground_graph_path(frame_path, frame_meta, fg_path)
        fg_meta = check_meta(read_onnx_meta(fg_path), str(fg_path), graph="fg", category=category)
        check_pair(fg_meta, frame_meta, str(fg_path), str(frame_path))
        if threads is None:
            from realtime.backends.resolver import default_threads

            threads = default_threads()
        self.core = shared_core()
        has_bf16 = "BF16" in cpu_capabilities(self.core) if cpu_has_bf16 is None else bool(cpu_has_bf16)
        self.choice = choose_precision(precision, frame_meta.bf16_check, has_bf16, frame_path.name)
        (log.warning if self.choice.fallback else log.info)(
            "openvino: %s runs in %s: %s", frame_path.name, self.choice.precision.upper(), self.choice.reason)
        self.threads = int(threads)
        self.properties = dict(properties or {})
        self.fg_compiled = self._compile(fg_path, "fp32")
        self.frame_compiled = self._compile(frame_path, self.choice.precision)
        cfg = frame_meta.config()
        check_graph_io(cfg, frame_path, fg_path, {**self._io(self.fg_compiled, fg_path),
                                                  **self._io(self.frame_compiled, frame_path)})
        self._fg_request = self.fg_compiled.create_infer_request()
        self._request = self.frame_compiled.create_infer_request()
        # what the plugin actually compiled (it ignores a bf16 hint on a CPU without bf16)
        compiled_precision = _OV_PRECISION.get(
            self.frame_compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(), self.choice.precision)
        self.info = ModelInfo(config=cfg, backend="openvino", precision=compiled_precision, source=str(frame_path),
                              meta={"frame": frame_meta.to_dict(), "fg_path": str(fg_path), "threads": self.threads,
                                    "precision_reason": self.choice.reason})
        self._f_f: np.ndarray | None = None

    def compile_config(self, precision: str) -> dict[str, Any]:
        """The properties a graph of ``precision`` is compiled with."""
        config = {**COMPILE_PROPERTIES, "INFERENCE_NUM_THREADS": self.threads,
                  "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
        for key, value in self.properties.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        return config

    def _compile(self, path: Path, precision: str) -> Any:
        try:
            return self.core.compile_model(self.core.read_model(str(path)), "CPU", self.compile_config(precision))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise BackendError(f"openvino cannot compile {path}: {exc}") from exc

    @staticmethod
    def _io(compiled: Any, path: Path) -> dict[tuple[Path, str, str], tuple[list[int], str]]:
        out = {}
        for kind, ports in (("input", compiled.inputs), ("output", compiled.outputs)):
            for port in ports:
                etype = "tensor(float)" if port.get_element_type().get_type_name() == "f32" else \
                    f"tensor({port.get_element_type().get_type_name()})"
                for name in port.get_names():
                    out[(path, kind, name)] = ([int(d) for d in port.get_shape()], etype)
        return out

    @classmethod
    def from_path(cls, path: str | Path, category: str | None = None, precision: str = "auto",
                  threads: int | None = None, **kwargs: Any) -> "OpenVinoBackend":
        """Open a per-frame ``.onnx``, an export folder, or a checkpoint (exported once into the user cache)."""
        path = Path(path)
        if path.suffix in (".pt", ".pth"):
            from realtime.backends.export_cache import cached_export

            path = cached_export(path, finish_export)
        elif path.is_dir():
            path = find_frame_graph(path, category, "fp32")
        return cls(path, category=category, precision=precision, threads=threads, **kwargs)

    @classmethod
    def open(cls, path: Path, options: OpenOptions) -> "OpenVinoBackend":
        return cls.from_path(path, category=options.category, precision=options.precision, threads=options.threads)

    def set_foreground(self, fg_input: np.ndarray) -> None:
        x = self._check_input(fg_input, 4, "foreground input")
        self._fg_request.infer({FG_INPUT: x})
        self._f_f = np.array(self._fg_request.get_tensor(FEATURES).data, dtype=np.float32, copy=True)

    def infer(self, bg_input: np.ndarray) -> np.ndarray:
        if self._f_f is None:
            raise BackendError("openvino backend: call set_foreground() before infer()")
        x = self._check_input(bg_input, 3, "background input")
        self._request.infer({BG_INPUT: x, FEATURES: self._f_f})
        # the request's output memory is reused by the next call: copy (C-contiguous float32)
        return as_heatmaps(np.array(self._request.get_tensor(HEATMAPS).data, copy=True))

    def close(self) -> None:
        self._f_f = None


def bf16_keypoint_check(frame_path: str | Path, pairs: Sequence[tuple[np.ndarray, np.ndarray]], threads: int = 1,
                        cpu_has_bf16: bool | None = None, tolerance_p99_px: float = BF16_TOLERANCE_P99_PX
                        ) -> dict[str, Any]:
    """Decoded keypoints of the per-frame graph in bf16 vs fp32 (OpenVINO, same F_f) on ``pairs``.

    Stored in the frame graph's metadata (:attr:`ArtifactMeta.bf16_check`) by ``tryon export``
    and by the first-use export. On a CPU without native bf16 nothing can be measured
    (OpenVINO would silently run fp32): the result says so (``measured: False``) and the
    backend keeps fp32 for this model on every CPU until it is re-exported on a bf16 one.

    Returns:
        ``{"measured", "passed", "p99_px", "max_px", "mean_px", "samples", "tolerance_p99_px",
        "cpu", "openvino"}`` (or ``{"measured": False, "reason", "cpu"}``).
    """
    from realtime.backends.graph_export import KeypointErrorStats, compare_keypoints

    ov = import_openvino()
    core = shared_core()
    has_bf16 = "BF16" in cpu_capabilities(core) if cpu_has_bf16 is None else bool(cpu_has_bf16)
    if not has_bf16:
        return {"measured": False, "reason": f"measured on a CPU without native bf16 ({cpu_name(core)})",
                "cpu": cpu_name(core)}
    backends = {p: OpenVinoBackend(frame_path, threads=threads, precision=p, cpu_has_bf16=True)
                for p in ("fp32", "bf16")}
    if backends["bf16"].info.precision != "bf16":  # the plugin did not honour the hint: nothing measured
        return {"measured": False, "reason": f"OpenVINO compiled the bf16 request as {backends['bf16'].info.precision}",
                "cpu": cpu_name(core)}
    pts, _ = compare_keypoints(None, backends, list(pairs))
    stats = KeypointErrorStats.between(pts["bf16"], pts["fp32"])
    return {"measured": True, "passed": bool(stats.p99_px <= tolerance_p99_px), "p99_px": round(stats.p99_px, 4),
            "max_px": round(stats.max_px, 4), "mean_px": round(stats.mean_px, 4), "samples": len(pairs),
            "tolerance_p99_px": tolerance_p99_px, "cpu": cpu_name(core), "openvino": ov.__version__}


def finish_export(graphs: Any, net: Any, pairs: list, described: str) -> dict[str, Any]:
    """The first-use export's check (:func:`realtime.backends.export_cache.cached_export`):
    OpenVINO fp32 must reproduce PyTorch (decoded keypoints within ``FP32_TOLERANCE_PX``), then
    the bf16 keypoint check is stored in the frame graph's metadata.

    Raises:
        BackendError: OpenVINO does not reproduce the checkpoint (the numbers, and the full check to run).
    """
    from realtime.backends.graph_export import FP32_TOLERANCE_PX, KeypointErrorStats, compare_keypoints, update_meta

    backend = OpenVinoBackend(graphs.frame_path, threads=1, precision="fp32")
    pts, _ = compare_keypoints(net, {"openvino_fp32": backend}, pairs)
    backend.close()
    stats = KeypointErrorStats.between(pts["openvino_fp32"], pts["torch"])
    source = graphs.frame_meta.source_checkpoint
    if stats.max_px > FP32_TOLERANCE_PX:
        raise BackendError(f"the OpenVINO export of {source} does not reproduce it: keypoints differ by up to "
                           f"{stats.max_px:.4f} px (> {FP32_TOLERANCE_PX} px) on {described}; run the full check "
                           f"with: tryon export --checkpoint {source} --out DIR")
    check = bf16_keypoint_check(graphs.frame_path, pairs, threads=1)
    update_meta(graphs.frame_path, bf16_check=check)
    return {"openvino_fp32_vs_torch": stats.__dict__, "bf16_check": check}
