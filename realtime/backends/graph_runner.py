"""A plain ONNX graph (named float32 inputs -> named outputs) on any of the project's runtimes.

The try-on backends (:class:`realtime.backends.base.Backend`) serve the two-graph try-on
network; an auxiliary network with fixed-shape inputs (the face detector,
``realtime/weights/tryon_face.onnx``) needs only "feed arrays, get arrays". This module is
that path, on the same runtimes and their shared helpers:

* ``openvino`` (the CPU default): the process's one Core
  (:func:`realtime.backends.openvino_backend.shared_core`), fp32, ``threads`` per model;
* ``onnxruntime``: :func:`realtime.backends.onnx_backend.make_session`;
* ``tensorrt``: an fp32 engine built in memory from the ONNX graph on first open
  (:class:`realtime.backends.trt_version.TrtApi`, the process's one TensorRT logger),
  pycuda page-locked buffers, one stream. A small graph builds in seconds.

``auto`` is TensorRT where a CUDA GPU and TensorRT are present, else OpenVINO, else ONNX
Runtime. Runtimes are imported lazily, when a graph is opened.

    runner = open_graph("realtime/weights/tryon_face.onnx", "auto", threads=1)
    outputs = runner.run({"image": x})       # dict name -> float32 array
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from realtime.backends.onnx_backend import onnx_metadata  # noqa: F401  (re-exported: the detector reads its metadata)
from realtime.errors import BackendError

log = logging.getLogger(__name__)

GRAPH_BACKENDS = ("auto", "openvino", "onnxruntime", "tensorrt")


class GraphRunner(ABC):
    """One opened graph. ``inputs``: name -> shape; ``backend``: the runtime's name."""

    backend: str = ""
    inputs: dict[str, tuple[int, ...]]

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; every output by name, float32, C-contiguous (the caller may keep it)."""

    def close(self) -> None:
        """Release runtime resources."""

    def _check(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, shape in self.inputs.items():
            if name not in feeds:
                raise BackendError(f"{self.backend}: input {name!r} missing (graph inputs: {list(self.inputs)})")
            x = np.ascontiguousarray(feeds[name], dtype=np.float32)
            if tuple(x.shape) != tuple(shape):
                raise BackendError(f"{self.backend}: input {name!r} must be {tuple(shape)}, got {tuple(x.shape)}")
            out[name] = x
        return out


class _OpenVinoGraph(GraphRunner):
    backend = "openvino"

    def __init__(self, path: Path, threads: int | None) -> None:
        from realtime.backends.openvino_backend import shared_core

        core = shared_core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with its own text
            raise BackendError(f"OpenVINO cannot compile {path}: {exc}") from exc
        self._request = self._compiled.create_infer_request()
        self.inputs = {p.get_any_name(): tuple(int(d) for d in p.get_shape()) for p in self._compiled.inputs}
        self._outputs = [p.get_any_name() for p in self._compiled.outputs]

    def run(self, feeds):
        res = self._request.infer(self._check(feeds))
        return {name: np.array(res[self._compiled.output(name)], dtype=np.float32, order="C") for name in self._outputs}


class _OrtGraph(GraphRunner):
    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int | None) -> None:
        from realtime.backends.onnx_backend import make_session

        self._session = make_session(path, intra_op_threads=threads)
        self.inputs = {i.name: tuple(int(d) for d in i.shape) for i in self._session.get_inputs()}
        self._outputs = [o.name for o in self._session.get_outputs()]

    def run(self, feeds):
        res = self._session.run(self._outputs, self._check(feeds))
        return {n: np.ascontiguousarray(r, dtype=np.float32) for n, r in zip(self._outputs, res)}


class _TrtGraph(GraphRunner):
    backend = "tensorrt"

    def __init__(self, path: Path, device: int = 0) -> None:
        from realtime.backends.tensorrt_backend import import_pycuda
        from realtime.backends.trt_version import TrtApi, import_tensorrt

        trt = import_tensorrt()
        self.api = api = TrtApi.for_module(trt)
        cuda = self._cuda = import_pycuda()
        cuda.init()
        self._ctx = cuda.Device(device).retain_primary_context()
        self._ctx.push()
        try:
            logger = api.logger()
            builder = trt.Builder(logger)
            plan = api.build_plan(False, "fp32")
            network = builder.create_network(api.network_flags(plan))
            parser = trt.OnnxParser(network, logger)
            if not parser.parse(path.read_bytes()):
                errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
                raise BackendError(f"TensorRT {api.version} cannot parse {path}: {'; '.join(errors)}")
            config = builder.create_builder_config()
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 256 << 20)
            serialized = builder.build_serialized_network(network, config)
            if serialized is None:
                raise BackendError(f"TensorRT {api.version} failed to build an engine from {path}")
            self._engine = trt.Runtime(logger).deserialize_cuda_engine(bytes(serialized))
            self._context = self._engine.create_execution_context()
            self._stream = cuda.Stream()
            self._host, self._dev = {}, {}
            specs = api.io_tensors(self._engine)
            for spec in specs:
                self._host[spec.name] = cuda.pagelocked_empty(spec.shape, spec.dtype)
                self._dev[spec.name] = cuda.mem_alloc(max(1, self._host[spec.name].nbytes))
                self._context.set_tensor_address(spec.name, int(self._dev[spec.name]))
            self.inputs = {s.name: s.shape for s in specs if s.is_input}
            self._outputs = [s.name for s in specs if not s.is_input]
        finally:
            cuda.Context.pop()

    def run(self, feeds):
        feeds = self._check(feeds)
        cuda, stream = self._cuda, self._stream
        self._ctx.push()
        try:
            for name, x in feeds.items():
                np.copyto(self._host[name], x, casting="same_kind")
                cuda.memcpy_htod_async(self._dev[name], self._host[name], stream)
            self.api.execute(self._context, stream.handle)
            for name in self._outputs:
                cuda.memcpy_dtoh_async(self._host[name], self._dev[name], stream)
            stream.synchronize()
        finally:
            cuda.Context.pop()
        return {n: np.array(self._host[n], dtype=np.float32, order="C") for n in self._outputs}

    def close(self) -> None:
        if self._ctx is None:
            return
        self._ctx.push()
        try:
            for mem in self._dev.values():
                mem.free()
            self._dev.clear()
            self._context = self._engine = None
        finally:
            self._cuda.Context.pop()
            self._ctx.detach()
            self._ctx = None


def _cuda_available() -> bool:
    try:
        import tensorrt  # noqa: F401
        import pycuda.driver as cuda

        cuda.init()
        return cuda.Device.count() > 0
    except Exception:  # no TensorRT, no pycuda, no driver, no GPU: all mean "not here"
        return False


def open_graph(path: str | Path, backend: str = "auto", threads: int | None = None) -> GraphRunner:
    """Open the ONNX graph ``path`` with ``backend`` (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        BackendError: unknown backend, runtime missing, or the graph does not load.
    """
    path = Path(path)
    if backend not in GRAPH_BACKENDS:
        raise BackendError(f"unknown graph backend {backend!r}; expected one of {', '.join(GRAPH_BACKENDS)}")
    if not path.is_file():
        raise FileNotFoundError(f"ONNX graph not found: {path}")
    if backend == "auto":
        from realtime.backends.resolver import openvino_available

        backend = "tensorrt" if _cuda_available() else "openvino" if openvino_available() else "onnxruntime"
    if backend == "tensorrt":
        return _TrtGraph(path)
    if backend == "openvino":
        return _OpenVinoGraph(path, threads)
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise BackendError("graph backend 'onnxruntime' needs the onnxruntime package: pip install onnxruntime") from exc
    return _OrtGraph(path, threads)
