"""TensorRT backend: two engines (foreground encoder + per-frame graph) run with pycuda buffers.

* Engines are bare serialized TensorRT engines with a JSON sidecar
  (:mod:`realtime.backends.engine_file`): the sidecar is read and checked first
  (:func:`realtime.backends.engine_file.check_engine_header`), so an engine built by another TensorRT
  release (build number included), for another GPU, or for another accessory category is
  refused with the command that rebuilds it, before TensorRT deserialises anything.
* The frame engine's foreground engine is found by metadata in the same folder (same model
  config hash, graph role ``fg``), or passed explicitly.
* Execution: ``execute_async_v3`` with named tensor addresses (``set_tensor_address``), one
  CUDA stream, page-locked host buffers (``pagelocked_empty``).
* Optional CUDA-graph capture of the per-frame work (H2D copy, ``execute_async_v3``, D2H
  copy), replayed with one launch (CUDA driver API through ctypes; pycuda has no stable
  graph API). Falls back to plain execution if capture fails.
* The CUDA context is pycuda's explicit retain of the device's primary context (the one
  torch and the CUDA runtime share), pushed around each call: no ``pycuda.autoinit``.
  :meth:`TensorRTBackend.close` frees every device and page-locked buffer while the context
  is current (pycuda silently skips frees in a detached context), releases the context, and
  pops what pycuda's release leaves pushed, so nothing stays on the thread.
* One TensorRT logger per process (:func:`realtime.backends.trt_version.trt_logger`), shared by
  builder and runtimes.
* TensorRT 10 / 11 differences live in one helper, :class:`realtime.backends.trt_version.TrtApi`
  (used by the builder too).

What runs where, per frame (stated plainly: this backend does *not* keep the frame on the GPU):

=================================================  =======================================
host (CPU)                                          device (GPU)
=================================================  =======================================
capture, face/ROI tracking, crop + resize +         F_f (foreground features): computed
normalise to (1,3,S,S) float32                      once per accessory, never copied back
copy into the page-locked input, H2D copy           the frame engine
D2H copy of the (1,4,S,S) float32 heatmaps          (the engine's ``keypoints`` output is
soft-argmax + quadratic refinement (HeatmapCodec),  written to a scratch device buffer and
smoothing, homography, compositing                  not read: the host decoder refines
                                                    beyond the plain soft-argmax it computes)
=================================================  =======================================

At 448 px that is 2.4 MB up and 3.2 MB down per frame. The CUDA preprocess/composite kernels
(:mod:`realtime.live.native`) take torch CUDA tensors and are not wired into this backend.

``tensorrt`` and ``pycuda`` are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from realtime.artifacts import (BG_INPUT, FEATURES, FG_INPUT, HEATMAPS, ArtifactMeta, ArtifactMismatchError,
                                check_pair, graph_io)
from realtime.backends.base import Backend, ModelInfo, OpenOptions
from realtime.backends.engine_file import EngineFileError, check_engine_header, read_engine_file, read_engine_header
from realtime.backends.trt_version import TensorSpec, TrtApi, import_tensorrt
from realtime.errors import BackendError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Imports, device identity, engine discovery
# --------------------------------------------------------------------------------------

def import_pycuda() -> Any:
    """``pycuda.driver`` (no ``pycuda.autoinit``: contexts are created explicitly)."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        from realtime.backends.trt_install import install_hint

        raise BackendError(f"pycuda is not installed ({exc}); it comes with the TensorRT extras: {install_hint()}"
                           ) from exc
    return cuda


def gpu_identity(device: int = 0) -> tuple[str, str]:
    """``(name, "major.minor")`` of CUDA device ``device`` (via pycuda)."""
    cuda = import_pycuda()
    cuda.init()
    if device >= cuda.Device.count():
        raise BackendError(f"CUDA device {device} requested, {cuda.Device.count()} present")
    dev = cuda.Device(device)
    major, minor = dev.compute_capability()
    return str(dev.name()), f"{major}.{minor}"


def find_fg_engine(frame_path: Path, frame_header: dict[str, Any], *, trt_version: str, gpu_name: str,
                   compute_capability: str) -> Path:
    """The foreground engine that belongs to a frame engine: same folder, same config hash,
    built by this TensorRT for this GPU.

    Raises:
        FileNotFoundError: none found; the message gives the command that builds it.
    """
    want_hash = frame_header.get("artifact", {}).get("config_hash")
    candidates = []
    for path in sorted(frame_path.parent.glob("*.engine")):
        if path == frame_path:
            continue
        try:
            header = read_engine_header(path)
        except (EngineFileError, OSError):
            continue
        art = header.get("artifact", {})
        if art.get("graph") == "fg" and art.get("config_hash") == want_hash:
            candidates.append((path, header))
    for path, header in candidates:
        try:
            check_engine_header(header, str(path), trt_version=trt_version, gpu_name=gpu_name,
                                compute_capability=compute_capability, graph="fg")
        except ArtifactMismatchError as exc:
            log.info("not using %s: %s", path, exc)
            continue
        return path
    source = Path(str(frame_header.get("source_onnx", "DIR/x.onnx")))
    fg_onnx = source.parent / str(frame_header.get("artifact", {}).get("fg_graph", "<fg graph>.onnx"))
    found = f" ({len(candidates)} found but built elsewhere)" if candidates else ""
    raise FileNotFoundError(f"no foreground engine for {frame_path.name} in {frame_path.parent}{found}; build it "
                            f"with: tryon build-engine --onnx {fg_onnx} --out {frame_path.parent}")


def check_engine_pair(frame_path: str | Path, fg_path: str | Path | None, *, trt_version: str, gpu_name: str,
                      compute_capability: str, category: str | None = None
                      ) -> tuple[dict[str, Any], Path, dict[str, Any], ArtifactMeta]:
    """Read and check both engine headers before anything is deserialised.

    Returns:
        ``(frame_header, fg_path, fg_header, frame_meta)``.

    Raises:
        ArtifactMismatchError: an engine does not fit (message says what to rebuild).
    """
    frame_path = Path(frame_path)
    ident = dict(trt_version=trt_version, gpu_name=gpu_name, compute_capability=compute_capability)
    frame_header = read_engine_header(frame_path)
    frame_meta = check_engine_header(frame_header, str(frame_path), graph="frame", category=category, **ident)
    fg_path = Path(fg_path) if fg_path is not None else find_fg_engine(frame_path, frame_header, **ident)
    fg_header = read_engine_header(fg_path)
    fg_meta = check_engine_header(fg_header, str(fg_path), graph="fg", category=category, **ident)
    check_pair(fg_meta, frame_meta, str(fg_path), str(frame_path))
    return frame_header, fg_path, fg_header, frame_meta


def find_frame_engine(folder: Path, category: str | None) -> Path:
    """The single frame engine in ``folder`` (for ``category`` if given), by header."""
    fits = []
    for path in sorted(folder.glob("*.engine")):
        try:
            art = read_engine_header(path).get("artifact", {})
        except (EngineFileError, OSError):
            continue
        if art.get("graph") == "frame" and category in (None, art.get("model_config", {}).get("category")):
            fits.append(path)
    if len(fits) != 1:
        raise BackendError(f"{folder}: {len(fits)} frame engines{' for ' + category if category else ''} "
                           f"({', '.join(p.name for p in fits) or 'none'}); pass the .engine file")
    return fits[0]


# --------------------------------------------------------------------------------------
# The CUDA driver API through ctypes (what pycuda does not wrap)
# --------------------------------------------------------------------------------------

def _libcuda() -> Any:
    return ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")


class CudaDriver:
    """The few driver calls pycuda does not offer: the calling thread's current context, and popping it."""

    def __init__(self) -> None:
        self._lib = _libcuda()

    def current_context(self) -> int:
        """``cuCtxGetCurrent`` as an integer handle (0: none)."""
        ctx = ctypes.c_void_p()
        if self._lib.cuCtxGetCurrent(ctypes.byref(ctx)) != 0:
            return 0
        return int(ctx.value or 0)

    def pop_if_current(self, handle: int) -> bool:
        """``cuCtxPopCurrent`` when ``handle`` is the thread's current context; True if popped.

        pycuda's ``detach()`` of a retained *primary* context pushes it, releases it with
        ``cuDevicePrimaryCtxRelease`` (which does not pop) and leaves it on the thread's stack.
        """
        if not handle or self.current_context() != int(handle):
            return False
        popped = ctypes.c_void_p()
        return self._lib.cuCtxPopCurrent(ctypes.byref(popped)) == 0


def cuda_driver() -> CudaDriver:
    """The driver-API helper (tests replace this function)."""
    return CudaDriver()


class CudaGraph:
    """Capture work enqueued on a stream once, replay it with one launch (CUDA driver API).

    Uses ``cuStreamBeginCapture_v2`` / ``cuStreamEndCapture`` / ``cuGraphInstantiateWithFlags``
    (CUDA >= 11.4) / ``cuGraphLaunch`` from ``libcuda``, on the caller's current context.
    """

    #: CUstreamCaptureMode: CU_STREAM_CAPTURE_MODE_THREAD_LOCAL (cuda.h).
    THREAD_LOCAL = 1

    def __init__(self) -> None:
        self._lib = _libcuda()
        self._graph = ctypes.c_void_p()
        self._exec = ctypes.c_void_p()

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise BackendError(f"CUDA graph: {what} failed with CUresult {rc}")

    def capture(self, stream_handle: int, enqueue: Any) -> None:
        """Run ``enqueue()`` under stream capture and instantiate the graph."""
        stream = ctypes.c_void_p(stream_handle)
        self._check(self._lib.cuStreamBeginCapture_v2(stream, ctypes.c_int(self.THREAD_LOCAL)),
                    "cuStreamBeginCapture")
        try:
            enqueue()
        finally:
            rc = self._lib.cuStreamEndCapture(stream, ctypes.byref(self._graph))
        self._check(rc, "cuStreamEndCapture")
        self._check(self._lib.cuGraphInstantiateWithFlags(ctypes.byref(self._exec), self._graph,
                                                          ctypes.c_ulonglong(0)), "cuGraphInstantiateWithFlags")

    def launch(self, stream_handle: int) -> None:
        self._check(self._lib.cuGraphLaunch(self._exec, ctypes.c_void_p(stream_handle)), "cuGraphLaunch")

    def close(self) -> None:
        if self._exec:
            self._lib.cuGraphExecDestroy(self._exec)
            self._exec = ctypes.c_void_p()
        if self._graph:
            self._lib.cuGraphDestroy(self._graph)
            self._graph = ctypes.c_void_p()


# --------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------

class TensorRTBackend(Backend):
    """Runs a tryon engine pair with TensorRT (>= 10) and pycuda.

    Args:
        frame_path: the per-frame ``.engine``.
        fg_path: its foreground engine (default: found by metadata in the same folder).
        category: requested accessory category (an engine for another is refused).
        device: CUDA device index.
        cuda_graph: capture the per-frame H2D + execute + D2H as a CUDA graph.

    What stays on the host is listed in the module docstring: per frame, the preprocessed
    (1,3,S,S) float32 input goes up and the (1,4,S,S) float32 heatmaps come back.
    """

    _ctx: Any = None

    def __init__(self, frame_path: str | Path, fg_path: str | Path | None = None, category: str | None = None,
                 device: int = 0, cuda_graph: bool = False) -> None:
        trt = import_tensorrt()
        self.api = TrtApi.for_module(trt)
        cuda = import_pycuda()
        gpu_name, cc = gpu_identity(device)
        frame_header, fg_path, fg_header, frame_meta = check_engine_pair(
            frame_path, fg_path, trt_version=self.api.version, gpu_name=gpu_name, compute_capability=cc,
            category=category)
        cfg = frame_meta.config()  # before anything is retained: a bad config leaks nothing
        self.info = ModelInfo(config=cfg, backend="tensorrt", precision=frame_header.get("precision", "fp32"),
                              source=str(frame_path),
                              meta={"frame_header": frame_header, "fg_engine": str(fg_path), "gpu": gpu_name,
                                    "compute_capability": cc, "tensorrt": self.api.version})
        self._cuda = cuda
        self._driver = cuda_driver()
        self._allocs: list[Any] = []  # device buffers
        self._pinned: list[np.ndarray] = []  # page-locked host buffers
        self._graph: CudaGraph | None = None
        self._stream = None
        self._have_fg = False
        self._ctx = cuda.Device(device).retain_primary_context()
        try:
            with self._active():
                self._runtime = trt.Runtime(self.api.logger())
                self._fg_engine = self._deserialize(fg_path)
                self._frame_engine = self._deserialize(Path(frame_path))
                self._fg_context = self._fg_engine.create_execution_context()
                self._frame_context = self._frame_engine.create_execution_context()
                self._stream = cuda.Stream()
                self._bind(cfg, fg_path, Path(frame_path))
                if cuda_graph:
                    self._capture_graph()
        except BaseException:
            self.close()  # release what was created, and the retained context
            raise

    @classmethod
    def from_path(cls, path: str | Path, category: str | None = None, **kwargs: Any) -> "TensorRTBackend":
        """Open a frame ``.engine`` (or a folder holding one frame engine)."""
        path = Path(path)
        if path.is_dir():
            path = find_frame_engine(path, category)
        return cls(path, category=category, **kwargs)

    @classmethod
    def open(cls, path: Path, options: OpenOptions) -> "TensorRTBackend":
        return cls.from_path(path, category=options.category)

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        if self._ctx is None:
            raise BackendError("tensorrt backend: closed")
        self._ctx.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def _deserialize(self, path: Path) -> Any:
        _, blob = read_engine_file(path)
        engine = self._runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise BackendError(f"{path}: TensorRT could not deserialise the engine (see its log above); rebuild it "
                               f"with: tryon build-engine")
        return engine

    def _alloc(self, nbytes: int) -> Any:
        mem = self._cuda.mem_alloc(max(int(nbytes), 1))
        self._allocs.append(mem)
        return mem

    def _pinned_empty(self, spec: TensorSpec) -> np.ndarray:
        arr = self._cuda.pagelocked_empty(spec.shape, spec.dtype)
        self._pinned.append(arr)
        return arr

    def _bind(self, cfg: Any, fg_path: Path, frame_path: Path) -> None:
        """Allocate buffers, check engine I/O against the model config, set tensor addresses."""
        fg_io = {t.name: t for t in self.api.io_tensors(self._fg_engine)}
        frame_io = {t.name: t for t in self.api.io_tensors(self._frame_engine)}
        engines = {"fg": (fg_path, fg_io), "frame": (frame_path, frame_io)}
        for t in graph_io(cfg):
            path, io = engines[t.graph]
            spec = io.get(t.name)
            if spec is None or spec.is_input != t.is_input or spec.shape != t.shape:
                raise ArtifactMismatchError(f"{path}: tensor {t.name!r} is {spec.to_dict() if spec else 'missing'}, "
                                            f"the model config needs {t.mode} {t.shape}; "
                                            f"rebuild with: tryon build-engine")
        if fg_io[FEATURES].dtype != frame_io[FEATURES].dtype:
            raise ArtifactMismatchError(f"{fg_path} writes F_f as {fg_io[FEATURES].dtype}, {frame_path} reads "
                                        f"{frame_io[FEATURES].dtype}; rebuild both from one 'tryon export'")
        self._fg_host = self._pinned_empty(fg_io[FG_INPUT])
        self._fg_dev = self._alloc(self._fg_host.nbytes)
        f_f = fg_io[FEATURES]
        self._ff_dev = self._alloc(int(np.prod(f_f.shape)) * np.dtype(f_f.dtype).itemsize)  # never leaves the GPU
        self._bg_host = self._pinned_empty(frame_io[BG_INPUT])
        self._bg_dev = self._alloc(self._bg_host.nbytes)
        self._hm_host = self._pinned_empty(frame_io[HEATMAPS])
        self._hm_dev = self._alloc(self._hm_host.nbytes)
        self._fg_context.set_tensor_address(FG_INPUT, int(self._fg_dev))
        self._fg_context.set_tensor_address(FEATURES, int(self._ff_dev))
        self._frame_context.set_tensor_address(BG_INPUT, int(self._bg_dev))
        self._frame_context.set_tensor_address(FEATURES, int(self._ff_dev))  # F_f bound directly
        self._frame_context.set_tensor_address(HEATMAPS, int(self._hm_dev))
        for name, spec in frame_io.items():  # every output needs an address: keypoints go to a scratch buffer
            if not spec.is_input and name != HEATMAPS:
                mem = self._alloc(int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize)
                self._frame_context.set_tensor_address(name, int(mem))

    def _enqueue_frame(self) -> None:
        cuda, stream = self._cuda, self._stream
        cuda.memcpy_htod_async(self._bg_dev, self._bg_host, stream)
        self.api.execute(self._frame_context, stream.handle)
        cuda.memcpy_dtoh_async(self._hm_host, self._hm_dev, stream)

    def _capture_graph(self) -> None:
        # One plain run first: TensorRT finishes deferred setup outside the capture
        # (TensorRT developer guide, "CUDA Graphs").
        self._bg_host.fill(0)
        self._enqueue_frame()
        self._stream.synchronize()
        graph = CudaGraph()
        try:
            graph.capture(self._stream.handle, self._enqueue_frame)
        except (BackendError, OSError) as exc:
            graph.close()
            log.warning("CUDA graph capture failed, running without it: %s", exc)
            return
        self._graph = graph

    def set_foreground(self, fg_input: np.ndarray) -> None:
        x = self._check_input(fg_input, 4, "foreground input")
        np.copyto(self._fg_host, x, casting="same_kind")
        with self._active():
            self._cuda.memcpy_htod_async(self._fg_dev, self._fg_host, self._stream)
            self.api.execute(self._fg_context, self._stream.handle)  # writes F_f into the frame input buffer
            self._stream.synchronize()
        self._have_fg = True

    def infer(self, bg_input: np.ndarray) -> np.ndarray:
        if not self._have_fg:
            raise BackendError("tensorrt backend: call set_foreground() before infer()")
        x = self._check_input(bg_input, 3, "background input")
        np.copyto(self._bg_host, x, casting="same_kind")
        with self._active():
            if self._graph is not None:
                self._graph.launch(self._stream.handle)
            else:
                self._enqueue_frame()
            self._stream.synchronize()
        return np.array(self._hm_host, dtype=np.float32, copy=True, order="C")  # host buffer is reused

    def synchronize(self) -> None:
        with self._active():
            self._stream.synchronize()

    def close(self) -> None:
        """Free everything while the context is current, then release the context and leave the thread clean.

        Order matters (pycuda skips a free whose context is no longer alive, silently: pycuda
        issue 305): graph, TensorRT objects, device buffers and page-locked host buffers go
        first, inside one push/pop; then the primary context is detached, and the push that
        pycuda's detach of a primary context leaves behind is popped. Safe to call twice, and
        on a half-built backend.
        """
        ctx = self._ctx
        if ctx is None:
            return
        try:
            ctx.push()
            try:
                if self._graph is not None:
                    self._graph.close()
                    self._graph = None
                for name in ("_fg_context", "_frame_context", "_fg_engine", "_frame_engine", "_runtime"):
                    setattr(self, name, None)  # TensorRT objects go before their memory and context
                if self._stream is not None:
                    self._stream.synchronize()
                    self._stream = None
                for mem in self._allocs:
                    mem.free()
                self._allocs.clear()
                for arr in self._pinned:
                    arr.base.free()  # pagelocked_empty's array base is its HostAllocation
                self._pinned.clear()
            finally:
                self._cuda.Context.pop()
        finally:
            self._ctx = None
            handle = int(getattr(ctx, "handle", 0) or 0)
            ctx.detach()
            self._driver.pop_if_current(handle)
