"""Fakes of ``tensorrt`` (10 / 11) and ``pycuda.driver`` that behave like the real ones where it matters.

They do not share the code's assumptions; each behaviour below is the real library's:

ONNX parser (onnx-tensorrt ``ImporterContext::registerLayer`` and the op importers)
    * no layer for a ``Constant`` node: constants are weights; a CONSTANT layer appears only
      where weights are used as a tensor, and it is unnamed (``(Unnamed Layer* N) [Constant]``);
    * a node's main layer is named after the node, made unique with a counter suffix
      (``<name>_<n>``), so a helper can carry another node's name;
    * helper layers (broadcast unsqueezes, softmax reshapes) are named by a counter
      (``ONNXTRT_unsqueezeTensor_<n>``) or left unnamed (``(Unnamed Layer* N) [Shuffle]``);
    * every tensor has its real dtype (FLOAT, HALF, INT64 for Shape/Slice/Concat/... chains),
      from ONNX type inference.
Builder (``build_serialized_network`` returns None and logs an error, as TensorRT does)
    * weak typing + ``OBEY_PRECISION_CONSTRAINTS``: a layer pinned to float32 whose output is
      not floating point (an INT64 shape layer) fails the build;
    * strongly typed: any layer precision / output type set fails the build;
    * a shape tensor (Resize scales, Reshape shape, ...) computed from a HALF tensor fails.
Enums and deprecations
    * ``NetworkDefinitionCreationFlag.STRONGLY_TYPED == 1`` (NvInfer.h), ``EXPLICIT_BATCH == 0``;
    * ``DataType`` values of NvInferRuntimeBase.h (FLOAT 0, HALF 1, ..., INT64 8);
    * 10.12+: ``BuilderFlag.FP16``, ``ILayer.precision`` and ``set_output_type`` warn
      (DeprecationWarning, "Deprecated in TensorRT 10.12. Superseded by strong typing.");
    * 11: no ``BuilderFlag.FP16`` / ``OBEY_PRECISION_CONSTRAINTS``, no precision setters.
pycuda (``src/cpp/cuda.hpp``)
    * a driver-level context stack and pycuda's own; ``retain_primary_context`` is not pushed;
      ``Context.pop()`` with an empty stack raises;
    * ``detach()`` of a primary context that is not current pushes it, releases it and does
      not pop it: it stays pushed on the thread;
    * allocations (``mem_alloc``, ``pagelocked_empty``, ``Stream``) need a current context and
      remember it; freeing one whose context was detached is silently skipped (a leak); a
      ``Stream`` has no free(): it goes with its last reference;
    * ``pagelocked_empty`` returns an array whose ``base`` is the ``HostAllocation``.
"""

from __future__ import annotations

import enum
import json
import types
import warnings
import weakref
from typing import Any

import numpy as np

# ====================================================================== tensorrt


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32,
       DataType.INT64: np.int64, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT8: np.int8}
#: ONNX TensorProto elem type -> DataType
_FROM_ONNX = {1: DataType.FLOAT, 10: DataType.HALF, 7: DataType.INT64, 6: DataType.INT32, 9: DataType.BOOL,
              2: DataType.UINT8, 3: DataType.INT8, 16: DataType.BF16}

LayerType = enum.Enum("LayerType", [
    "CONVOLUTION", "ACTIVATION", "POOLING", "LRN", "SCALE", "SOFTMAX", "DECONVOLUTION", "CONCATENATION",
    "ELEMENTWISE", "PLUGIN", "UNARY", "PADDING", "SHUFFLE", "REDUCE", "TOPK", "GATHER", "MATRIX_MULTIPLY",
    "RAGGED_SOFTMAX", "CONSTANT", "IDENTITY", "CAST", "PLUGIN_V2", "SLICE", "SHAPE", "PARAMETRIC_RELU", "RESIZE",
    "FILL", "SELECT"])

#: ONNX op -> layer type of its main layer (onnx-tensorrt importers).
_OP_LAYER = {
    "Conv": "CONVOLUTION", "ConvTranspose": "DECONVOLUTION", "BatchNormalization": "SCALE", "Relu": "ACTIVATION",
    "LeakyRelu": "ACTIVATION", "Sigmoid": "ACTIVATION", "Tanh": "ACTIVATION", "HardSigmoid": "ACTIVATION",
    "Add": "ELEMENTWISE", "Sub": "ELEMENTWISE", "Mul": "ELEMENTWISE", "Div": "ELEMENTWISE", "Pow": "ELEMENTWISE",
    "Max": "ELEMENTWISE", "Min": "ELEMENTWISE", "Exp": "UNARY", "Log": "UNARY", "Sqrt": "UNARY", "Abs": "UNARY",
    "Neg": "UNARY", "Softmax": "SOFTMAX", "MaxPool": "POOLING", "AveragePool": "POOLING",
    "GlobalAveragePool": "REDUCE", "GlobalMaxPool": "REDUCE", "ReduceMax": "REDUCE", "ReduceMean": "REDUCE",
    "ReduceSum": "REDUCE", "MatMul": "MATRIX_MULTIPLY", "Gemm": "MATRIX_MULTIPLY", "Concat": "CONCATENATION",
    "Reshape": "SHUFFLE", "Transpose": "SHUFFLE", "Flatten": "SHUFFLE", "Unsqueeze": "SHUFFLE",
    "Squeeze": "SHUFFLE", "Shape": "SHAPE", "Slice": "SLICE", "Tile": "SLICE", "Expand": "SLICE",
    "ConstantOfShape": "FILL", "Resize": "RESIZE", "Cast": "CAST", "Identity": "IDENTITY", "Gather": "GATHER",
    "Pad": "PADDING", "Where": "SELECT",
}
#: Inputs that an importer takes as weights (static parameters) when they are weights.
_STATIC_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "BatchNormalization": (1, 2, 3, 4), "Resize": (1, 2, 3),
                  "Reshape": (1,), "Slice": (1, 2, 3, 4), "Unsqueeze": (1,), "Squeeze": (1,), "Tile": (1,),
                  "Expand": (1,), "ConstantOfShape": (0,), "Pad": (1, 2, 3), "ReduceMax": (1,), "ReduceMean": (1,),
                  "ReduceSum": (1,), "Gather": (1,)}
#: Layer types whose inputs after the first are shape tensors (when they are tensors at all).
_SHAPE_INPUT_LAYERS = ("RESIZE", "SHUFFLE", "SLICE", "FILL", "PADDING")


class FakeTensor:
    def __init__(self, name: str, dtype: DataType, shape: tuple[int, ...] = ()) -> None:
        self.name, self.dtype, self.shape = name, dtype, tuple(shape)


class FakeLayer:
    """An ILayer: ``name``, ``type``, inputs/outputs; precision setters per TensorRT version."""

    def __init__(self, trt: "FakeTrt", name: str, ltype: Any, inputs: list[FakeTensor],
                 outputs: list[FakeTensor]) -> None:
        self._trt = trt
        self.name, self.type = name, ltype
        self._inputs, self._outputs = inputs, outputs
        self._precision: DataType | None = None
        self.output_types: dict[int, DataType] = {}

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, k: int) -> FakeTensor | None:
        return self._inputs[k]

    def get_output(self, k: int) -> FakeTensor:
        return self._outputs[k]

    @property
    def precision(self) -> DataType:
        return self._precision if self._precision is not None else DataType.FLOAT

    @precision.setter
    def precision(self, dtype: DataType) -> None:
        self._trt.deprecated_or_removed("ILayer.precision")
        self._precision = dtype

    @property
    def precision_is_set(self) -> bool:
        return self._precision is not None

    def set_output_type(self, k: int, dtype: DataType) -> None:
        self._trt.deprecated_or_removed("ILayer.set_output_type")
        self.output_types[k] = dtype


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.layers: list[FakeLayer] = []
        self.inputs: list[FakeTensor] = []
        self.outputs: list[FakeTensor] = []

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> FakeLayer:
        return self.layers[i]

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_output(self, i: int) -> FakeTensor:
        return self.outputs[i]

    def layer(self, name: str) -> FakeLayer:
        return next(la for la in self.layers if la.name == name)


class FakeParserError:
    def __init__(self, node: int, name: str, op: str, desc: str) -> None:
        self._node, self._name, self._op, self._desc = node, name, op, desc

    def code(self) -> str:
        return "ErrorCode.UNSUPPORTED_NODE"

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op


class FakeCache:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)

    def serialize(self) -> bytes:
        return self.data + b"|tuned"


class FakeConfig:
    def __init__(self, trt: "FakeTrt") -> None:
        self.trt = trt
        self.flags: set[Any] = set()
        self.pools: dict[Any, int] = {}
        self.cache: FakeCache | None = None

    def set_flag(self, flag: Any) -> None:
        if flag.name in ("FP16", "OBEY_PRECISION_CONSTRAINTS"):
            self.trt.deprecated_or_removed(f"BuilderFlag.{flag.name}")
        self.flags.add(flag)

    def set_memory_pool_limit(self, pool: Any, nbytes: int) -> None:
        self.pools[pool] = nbytes

    def create_timing_cache(self, data: bytes) -> FakeCache:
        self.trt.cache_inputs.append(bytes(data))
        return FakeCache(data)

    def set_timing_cache(self, cache: FakeCache, ignore_mismatch: bool) -> bool:
        ok = self.trt.cache_fits or not cache.data
        if ok:
            self.cache = cache
        return ok

    def get_timing_cache(self) -> FakeCache:
        return self.cache


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


def fake_plan(io: list[dict[str, Any]]) -> bytes:
    """Serialized fake engine: ``io`` = [{"name", "input", "shape", "dtype" (DataType name)}]."""
    return b"FAKEPLAN" + json.dumps(io).encode()


class FakeEngine:
    def __init__(self, trt: "FakeTrt", io: list[dict[str, Any]]) -> None:
        self.trt, self.io = trt, io

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def _get(self, name: str) -> dict[str, Any]:
        return next(t for t in self.io if t["name"] == name)

    def get_tensor_name(self, i: int) -> str:
        return self.io[i]["name"]

    def get_tensor_mode(self, name: str) -> Any:
        return TensorIOMode.INPUT if self._get(name)["input"] else TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._get(name)["shape"])

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self._get(name).get("dtype", "FLOAT")]

    def create_execution_context(self) -> "FakeExecutionContext":
        return FakeExecutionContext(self)


def fake_engine_compute(inputs: dict[str, np.ndarray], outputs: dict[str, tuple[tuple[int, ...], Any]]
                        ) -> dict[str, np.ndarray]:
    """What the fake engines compute: fg: F_f = mean of the RGBA input; frame: heatmaps =
    0.5 * background channel 0 (every heatmap) + mean(F_f); other outputs zero."""
    out = {}
    for name, (shape, dtype) in outputs.items():
        if "foreground" in inputs:
            out[name] = np.full(shape, inputs["foreground"].mean(), dtype)
        elif name == "heatmaps":
            bg, f_f = inputs["background"], inputs["f_f"]
            out[name] = (np.broadcast_to(bg[:, :1] * 0.5, shape) + f_f.astype(np.float32).mean()).astype(dtype)
        else:
            out[name] = np.zeros(shape, dtype)
    return out


class FakeExecutionContext:
    """Runs :func:`fake_engine_compute` on the fake device memory bound by ``set_tensor_address``."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.addresses: dict[str, int] = {}

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.engine._get(name)
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        cuda = self.engine.trt.cuda
        if cuda is None:
            raise RuntimeError("FakeTrt(cuda=...) is needed to execute")
        missing = [t["name"] for t in self.engine.io if t["name"] not in self.addresses]
        if missing:  # TensorRT refuses to enqueue with unbound tensors
            return False
        arrays, outs = {}, {}
        for t in self.engine.io:
            dtype = _NP[DataType[t.get("dtype", "FLOAT")]]
            if t["input"]:
                arrays[t["name"]] = cuda.device_view(self.addresses[t["name"]], t["shape"], dtype).copy()
            else:
                outs[t["name"]] = (tuple(t["shape"]), dtype)
        for name, value in fake_engine_compute(arrays, outs).items():
            cuda.device_view(self.addresses[name], value.shape, value.dtype)[...] = value
        self.engine.trt.executions += 1
        return True


class FakeTrt(types.ModuleType):
    """``FakeTrt("10.3.0.26")`` / ``FakeTrt("10.12.0.36")`` / ``FakeTrt("11.0.0.1")``.

    Knobs: ``parse_errors``, ``build_ok``, ``cache_fits``, ``cuda`` (a :class:`FakeCuda` for execution).
    Records: ``networks``, ``configs``, ``build_errors``, ``loggers``, ``deprecations``, ``cache_inputs``.
    """

    def __init__(self, version: str = "10.3.0.26", parse_errors: list[tuple[int, str]] | None = None,
                 build_ok: bool = True, cache_fits: bool = True, cuda: "FakeCuda | None" = None) -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.parse_errors = parse_errors or []
        self.build_ok = build_ok
        self.cache_fits = cache_fits
        self.cuda = cuda
        self.cache_inputs: list[bytes] = []
        self.networks: list[FakeNetwork] = []
        self.configs: list[FakeConfig] = []
        self.build_errors: list[str] = []
        self.loggers: list[Any] = []
        self.deprecations: list[str] = []
        self.executions = 0
        parts = [int(p) for p in version.split(".")[:2]]
        self.major, self.minor = parts[0], parts[1] if len(parts) > 1 else 0
        fake = self

        self.DataType = DataType
        self.float32, self.float16, self.int64, self.int32 = DataType.FLOAT, DataType.HALF, DataType.INT64, \
            DataType.INT32
        self.LayerType = LayerType
        self.TensorIOMode = TensorIOMode
        self.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                          [("EXPLICIT_BATCH", 0), ("STRONGLY_TYPED", 1)])
        flags = ["TF32", "DEBUG"] + (["FP16", "OBEY_PRECISION_CONSTRAINTS"] if self.major < 11 else [])
        self.BuilderFlag = enum.Enum("BuilderFlag", flags)

        class Logger:
            WARNING = 2

            def __init__(self, severity: int = 2) -> None:
                self.severity = severity
                fake.loggers.append(self)

        class Builder:
            def __init__(self, logger: Any) -> None:
                self.logger = logger

            def create_network(self, flags: int = 0) -> FakeNetwork:
                net = FakeNetwork(flags)
                fake.networks.append(net)
                return net

            def create_builder_config(self) -> FakeConfig:
                cfg = FakeConfig(fake)
                fake.configs.append(cfg)
                return cfg

            def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes | None:
                errors = fake.check_build(network, config)
                if errors or not fake.build_ok:
                    fake.build_errors.extend(errors)
                    return None
                io = [{"name": t.name, "input": True, "shape": list(t.shape), "dtype": t.dtype.name}
                      for t in network.inputs]
                io += [{"name": t.name, "input": False, "shape": list(t.shape), "dtype": t.dtype.name}
                       for t in network.outputs]
                return fake_plan(io)

        class OnnxParser:
            def __init__(self, network: FakeNetwork, logger: Any) -> None:
                self.network = network
                self.errors: list[FakeParserError] = []

            def parse(self, data: bytes, path: str | None = None) -> bool:
                import onnx

                model = onnx.load_from_string(data)
                _parse_into(fake, self.network, model)
                for idx, desc in fake.parse_errors:
                    node = model.graph.node[idx]
                    self.errors.append(FakeParserError(idx, node.name, node.op_type, desc))
                return not self.errors

            @property
            def num_errors(self) -> int:
                return len(self.errors)

            def get_error(self, i: int) -> FakeParserError:
                return self.errors[i]

        class Runtime:
            def __init__(self, logger: Any) -> None:
                self.logger = logger

            def deserialize_cuda_engine(self, blob: bytes) -> FakeEngine | None:
                if not bytes(blob).startswith(b"FAKEPLAN"):
                    return None
                return FakeEngine(fake, json.loads(bytes(blob)[len(b"FAKEPLAN"):]))

        self.Logger, self.Builder, self.OnnxParser, self.Runtime = Logger, Builder, OnnxParser, Runtime

    @staticmethod
    def nptype(dtype: DataType) -> Any:
        return _NP[DataType(dtype)]

    def deprecated_or_removed(self, what: str) -> None:
        """10.12+ warns on the weak-typing setters; 11 has none of them."""
        if self.major >= 11:
            raise AttributeError(f"TensorRT {self.__version__}: {what} was removed (strong typing only)")
        if (self.major, self.minor) >= (10, 12):
            self.deprecations.append(what)
            warnings.warn(f"{what}: Deprecated in TensorRT 10.12. Superseded by strong typing.", DeprecationWarning,
                          stacklevel=3)

    def strongly_typed(self, network: FakeNetwork) -> bool:
        return self.major >= 11 or bool(network.flags & (1 << int(self.NetworkDefinitionCreationFlag.STRONGLY_TYPED)))

    def check_build(self, network: FakeNetwork, config: FakeConfig) -> list[str]:
        errors = []
        typed = self.strongly_typed(network)
        obey = any(f.name == "OBEY_PRECISION_CONSTRAINTS" for f in config.flags)
        floating = (DataType.FLOAT, DataType.HALF)
        for layer in network.layers:
            if typed and (layer.precision_is_set or layer.output_types):
                errors.append(f"{layer.name}: setting layer precision and layer output types is not allowed in a "
                              f"strongly typed network")
            if obey and layer.precision_is_set:
                bad = [t.dtype.name for t in layer._outputs if t.dtype not in floating]
                if bad and layer.precision in floating:
                    errors.append(f"{layer.name} ({layer.type.name}): precision constraint "
                                  f"{layer.precision.name} cannot be met for an output of type {bad[0]}")
        producer = {t.name: la for la in network.layers for t in la._outputs}
        for layer in network.layers:
            if layer.type.name not in _SHAPE_INPUT_LAYERS:
                continue
            for tensor in layer._inputs[1:]:
                stack, seen = [tensor], set()
                while stack:
                    t = stack.pop()
                    if t is None or t.name in seen:
                        continue
                    seen.add(t.name)
                    if t.dtype == DataType.HALF:
                        errors.append(f"{layer.name}: shape tensor input computed from Half tensor {t.name!r}; "
                                      f"shape tensors must be Int32/Int64 (or Float for Resize scales)")
                        break
                    src = producer.get(t.name)
                    if src is not None and src.type.name != "SHAPE":
                        stack.extend(src._inputs)
        return errors


def _parse_into(trt: FakeTrt, network: FakeNetwork, model: Any) -> None:
    """Populate ``network`` from an ONNX model the way onnx-tensorrt does (module docstring)."""
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    g = inferred.graph
    vinfo = {v.name: v for v in [*g.input, *g.value_info, *g.output]}

    def info(name: str) -> tuple[DataType, tuple[int, ...]]:
        v = vinfo.get(name)
        if v is None:
            return DataType.FLOAT, ()
        tt = v.type.tensor_type
        return _FROM_ONNX.get(tt.elem_type, DataType.FLOAT), tuple(d.dim_value for d in tt.shape.dim)

    weights: dict[str, tuple[DataType, tuple[int, ...]]] = {
        t.name: (_FROM_ONNX[t.data_type], tuple(t.dims)) for t in g.initializer}
    tensors: dict[str, FakeTensor] = {}
    for v in g.input:
        if v.name not in weights:
            t = FakeTensor(v.name, *info(v.name))
            tensors[v.name] = t
            network.inputs.append(t)
    names: set[str] = set()
    counter = [0]

    def unique(base: str) -> str:  # generateUniqueName: base, else base_<counter>
        name = base
        while name in names:
            counter[0] += 1
            name = f"{base}_{counter[0]}"
        names.add(name)
        return name

    def unnamed(kind: str) -> str:
        return f"(Unnamed Layer* {len(network.layers)}) [{kind}]"

    def add(name: str, ltype: str, inputs: list[FakeTensor | None], outputs: list[FakeTensor]) -> FakeLayer:
        layer = FakeLayer(trt, name, LayerType[ltype], inputs, outputs)
        network.layers.append(layer)
        for t in outputs:
            tensors[t.name] = t
        return layer

    for node in g.node:
        if node.op_type == "Constant":  # weights, no layer
            t = next(a.t for a in node.attribute if a.name == "value")
            weights[node.output[0]] = (_FROM_ONNX[t.data_type], tuple(numpy_helper.to_array(t).shape))
            continue
        ltype = _OP_LAYER.get(node.op_type, "PLUGIN")
        outs = [FakeTensor(o, *info(o)) for o in node.output]
        ins: list[FakeTensor | None] = []
        for k, name in enumerate(node.input):
            if not name:
                continue
            if name in tensors:
                ins.append(tensors[name])
            elif name in weights:
                if k in _STATIC_INPUTS.get(node.op_type, ()):
                    continue  # taken as a static parameter (setScales, kernel weights, ...)
                const = FakeTensor(unnamed("Constant") + "_output", *weights[name])
                add(unnamed("Constant"), "CONSTANT", [], [const])
                ins.append(const)
        if ltype == "ELEMENTWISE":  # broadcast: a counter-named unsqueeze for a lower-rank operand
            out_rank = len(outs[0].shape)
            for k, t in enumerate(ins):
                if t is not None and len(t.shape) < out_rank:
                    helper_out = FakeTensor(f"{node.name}_unsqueeze{k}", t.dtype, (1,) * (out_rank - len(t.shape))
                                            + t.shape)
                    counter[0] += 1
                    add(unique(f"ONNXTRT_unsqueezeTensor_{counter[0]}"), "SHUFFLE", [t], [helper_out])
                    ins[k] = helper_out
        if ltype == "SOFTMAX":  # reshape in and out around the softmax, unnamed
            src = ins[0]
            flat = FakeTensor(unnamed("Shuffle") + "_output", src.dtype, src.shape)
            add(unnamed("Shuffle"), "SHUFFLE", [src], [flat])
            mid = FakeTensor(f"{node.name}_softmax_out", outs[0].dtype, outs[0].shape)
            add(unique(node.name), "SOFTMAX", [flat], [mid])
            add(unnamed("Shuffle"), "SHUFFLE", [mid], outs)
            continue
        add(unique(node.name), ltype, ins, outs)
    network.outputs.extend(tensors[o.name] for o in g.output if o.name in tensors)


# ====================================================================== pycuda.driver


class _FakeError(RuntimeError):
    pass


class FakeContext:
    """A pycuda ``Context`` from ``retain_primary_context`` (not pushed on creation)."""

    def __init__(self, cuda: "FakeCuda", device: int) -> None:
        self.cuda, self.device = cuda, device
        self.handle = 0xC0DE00 + device
        self.valid = True

    def push(self) -> None:
        if not self.valid:
            raise _FakeError("cannot activate dead context")
        self.cuda.driver_stack.append(self.handle)
        self.cuda.pycuda_stack.append(self)
        self.cuda.pushes += 1

    def detach(self) -> None:
        cuda = self.cuda
        if not self.valid:
            raise _FakeError("context::detach: cannot detach from invalid context")
        current = bool(cuda.pycuda_stack) and cuda.pycuda_stack[-1] is self
        if not current:
            cuda.driver_stack.append(self.handle)  # cuCtxPushCurrent; "pop is implicit in detach" (it is not)
        cuda.retained[self.device] -= 1  # cuDevicePrimaryCtxRelease
        self.valid = False
        while cuda.pycuda_stack and not cuda.pycuda_stack[-1].valid:
            cuda.pycuda_stack.pop()

    def get_device(self) -> "Any":
        return self.cuda.Device(self.device)


class _Ward:
    """Something allocated in a context; freeing it after the context died is skipped (pycuda)."""

    def __init__(self, cuda: "FakeCuda", kind: str) -> None:
        if not cuda.pycuda_stack or not cuda.pycuda_stack[-1].valid:
            raise _FakeError(f"{kind}: no currently active context?")
        self.cuda, self.kind = cuda, kind
        self.context = cuda.pycuda_stack[-1]
        self.freed = False
        cuda.live.append(self)

    def free(self) -> None:
        if self.freed:
            return
        if not self.context.valid:
            self.cuda.skipped_frees.append(self.kind)  # CUDAPP_CATCH_CLEANUP_ON_DEAD_CONTEXT
            return
        self.freed = True
        self.cuda.live.remove(self)


class FakeDeviceAllocation(_Ward):
    def __init__(self, cuda: "FakeCuda", nbytes: int) -> None:
        super().__init__(cuda, "DeviceAllocation")
        self.nbytes = int(nbytes)
        self.ptr = cuda.next_ptr
        cuda.next_ptr += (self.nbytes + 255) // 256 * 256 + 256
        self.data = np.zeros(self.nbytes, np.uint8)
        cuda.memory[self.ptr] = self

    def __int__(self) -> int:
        return self.ptr

    def free(self) -> None:
        super().free()
        if self.freed:
            self.cuda.memory.pop(self.ptr, None)


class FakeHostAllocation(_Ward):
    """Page-locked host memory; ``np.asarray(it)`` is the array, whose ``base`` is this object."""

    def __init__(self, cuda: "FakeCuda", shape: tuple[int, ...], dtype: Any) -> None:
        super().__init__(cuda, "HostAllocation")
        dtype = np.dtype(dtype)
        self._buf = np.zeros(int(np.prod(shape)) * dtype.itemsize, np.uint8)
        self.__array_interface__ = {"shape": tuple(int(s) for s in shape), "typestr": dtype.str,
                                    "data": (self._buf.ctypes.data, False), "version": 3}


class FakeStream:
    """A pycuda ``Stream``: no free(); destroyed when the object goes, in its context (skipped if dead)."""

    def __init__(self, cuda: "FakeCuda") -> None:
        if not cuda.pycuda_stack or not cuda.pycuda_stack[-1].valid:
            raise _FakeError("Stream: no currently active context?")
        self.cuda, self.context = cuda, cuda.pycuda_stack[-1]
        self.handle = 0x5000 + len(cuda.streams)
        cuda.streams.add(self)

    def synchronize(self) -> None:
        pass

    def __del__(self) -> None:
        if not self.context.valid:
            self.cuda.skipped_frees.append("Stream")


class FakeDriverApi:
    """Stands in for :class:`realtime.backends.tensorrt_backend.CudaDriver` (cuCtxGetCurrent / cuCtxPopCurrent)."""

    def __init__(self, cuda: "FakeCuda") -> None:
        self.cuda = cuda

    def current_context(self) -> int:
        return self.cuda.driver_stack[-1] if self.cuda.driver_stack else 0

    def pop_if_current(self, handle: int) -> bool:
        if handle and self.current_context() == handle:
            self.cuda.driver_stack.pop()
            return True
        return False


class FakeCuda(types.ModuleType):
    """``pycuda.driver`` with one or more fake GPUs. State for leak tests: ``live`` (unfreed
    allocations), ``skipped_frees``, ``driver_stack``, ``pycuda_stack``, ``retained`` (per device)."""

    def __init__(self, gpus: tuple[tuple[str, tuple[int, int]], ...] = (("NVIDIA GeForce RTX 3090", (8, 6)),),
                 driver_version: int = 12040) -> None:
        super().__init__("pycuda.driver")
        self.gpus = gpus
        self.driver_version = driver_version
        self.driver_stack: list[int] = []
        self.pycuda_stack: list[FakeContext] = []
        self.retained = [0] * len(gpus)
        self.live: list[_Ward] = []
        self.streams: weakref.WeakSet = weakref.WeakSet()
        self.skipped_frees: list[str] = []
        self.memory: dict[int, FakeDeviceAllocation] = {}
        self.next_ptr = 0x7F0000000000
        self.pushes = 0
        self.copies = {"htod": 0, "dtoh": 0}
        cuda = self

        class Device:
            def __init__(self, i: int) -> None:
                if i >= len(cuda.gpus):
                    raise _FakeError(f"cuDeviceGet failed: invalid device ordinal {i}")
                self.i = i

            @staticmethod
            def count() -> int:
                return len(cuda.gpus)

            def name(self) -> str:
                return cuda.gpus[self.i][0]

            def compute_capability(self) -> tuple[int, int]:
                return cuda.gpus[self.i][1]

            def total_memory(self) -> int:
                return 24 << 30

            def retain_primary_context(self) -> FakeContext:
                cuda.retained[self.i] += 1
                return FakeContext(cuda, self.i)

        class Context:
            @staticmethod
            def pop() -> None:
                if not cuda.pycuda_stack:
                    raise _FakeError("context::pop: cannot pop non-current context")
                cuda.pycuda_stack.pop()
                cuda.driver_stack.pop()

        self.Device, self.Context = Device, Context
        self.Stream = lambda flags=0: FakeStream(cuda)

    def init(self, flags: int = 0) -> None:
        pass

    def get_driver_version(self) -> int:
        return self.driver_version

    def mem_alloc(self, nbytes: int) -> FakeDeviceAllocation:
        return FakeDeviceAllocation(self, nbytes)

    def pagelocked_empty(self, shape: Any, dtype: Any) -> np.ndarray:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return np.asarray(FakeHostAllocation(self, shape, dtype))

    def device_view(self, ptr: int, shape: Any, dtype: Any) -> np.ndarray:
        alloc = self.memory[int(ptr)]
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return alloc.data[:n].view(dtype).reshape(shape)

    def memcpy_htod_async(self, dest: Any, src: np.ndarray, stream: Any = None) -> None:
        alloc = self.memory[int(dest)]
        raw = np.ascontiguousarray(src).view(np.uint8).reshape(-1)
        alloc.data[:raw.size] = raw
        self.copies["htod"] += 1

    def memcpy_dtoh_async(self, dest: np.ndarray, src: Any, stream: Any = None) -> None:
        alloc = self.memory[int(src)]
        dest.reshape(-1).view(np.uint8)[:] = alloc.data[:dest.nbytes]
        self.copies["dtoh"] += 1

    @property
    def leaks(self) -> dict[str, Any]:
        """Everything a closed backend must have given back (all empty / zero when clean)."""
        return {"live": sorted([w.kind for w in self.live] + ["Stream"] * len(self.streams)), "skipped_frees": list(self.skipped_frees),
                "driver_stack": list(self.driver_stack), "pycuda_stack": len(self.pycuda_stack),
                "retained": list(self.retained)}
