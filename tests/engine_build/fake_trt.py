"""A fake ``tensorrt`` module: just enough of the TensorRT 10 / 11 Python API to drive the builder.

It records what the code under test asked for (network flags, builder flags, per-layer
precision, timing-cache bytes) so tests can check the version dispatch without TensorRT.
TensorRT 11's fake has no ``BuilderFlag.FP16`` / ``OBEY_PRECISION_CONSTRAINTS``: touching
them raises ``AttributeError``, as the real 11 does.
"""

from __future__ import annotations

import enum
import json
import types
from typing import Any

import numpy as np


class _DType:
    def __init__(self, name: str, np_dtype: Any) -> None:
        self.name, self.np_dtype = name, np_dtype

    def __repr__(self) -> str:
        return f"DataType.{self.name}"


FLOAT = _DType("FLOAT", np.float32)
HALF = _DType("HALF", np.float16)
INT64 = _DType("INT64", np.int64)


class _Output:
    def __init__(self, dtype: _DType) -> None:
        self.dtype = dtype


class FakeLayer:
    def __init__(self, name: str) -> None:
        self.name = name
        self.precision = None
        self.output_types: dict[int, _DType] = {}
        self.num_outputs = 1

    def get_output(self, k: int) -> _Output:
        return _Output(FLOAT)

    def set_output_type(self, k: int, dtype: _DType) -> None:
        self.output_types[k] = dtype


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.layers: list[FakeLayer] = []
        self.io: list[dict[str, Any]] = []

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> FakeLayer:
        return self.layers[i]


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


class FakeEngine:
    def __init__(self, io: list[dict[str, Any]]) -> None:
        self.io = io

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

    def get_tensor_dtype(self, name: str) -> _DType:
        return FLOAT


class TensorIOMode(enum.Enum):
    INPUT = 0
    OUTPUT = 1


class FakeTrt(types.ModuleType):
    """``FakeTrt("10.3.0.26")`` or ``FakeTrt("11.0.0.1")``; knobs: ``parse_errors``, ``build_ok``, ``cache_fits``."""

    def __init__(self, version: str = "10.3.0.26", parse_errors: list[tuple[int, str]] | None = None,
                 build_ok: bool = True, cache_fits: bool = True) -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.parse_errors = parse_errors or []
        self.build_ok = build_ok
        self.cache_fits = cache_fits
        self.cache_inputs: list[bytes] = []
        self.networks: list[FakeNetwork] = []
        self.configs: list[FakeConfig] = []
        major = int(version.split(".")[0])
        fake = self

        self.float32, self.float16 = FLOAT, HALF
        self.TensorIOMode = TensorIOMode
        self.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", [("STRONGLY_TYPED", 5)])
        flags = ["TF32", "DEBUG"] + (["FP16", "OBEY_PRECISION_CONSTRAINTS"] if major < 11 else [])
        self.BuilderFlag = enum.Enum("BuilderFlag", flags)

        class Logger:
            WARNING = 2

            def __init__(self, severity: int = 2) -> None:
                self.severity = severity

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
                if not fake.build_ok:
                    return None
                return b"FAKEPLAN" + json.dumps(network.io).encode()

        class OnnxParser:
            def __init__(self, network: FakeNetwork, logger: Any) -> None:
                self.network = network
                self.errors: list[FakeParserError] = []

            def parse(self, data: bytes, path: str | None = None) -> bool:
                import onnx

                model = onnx.load_from_string(data)
                for node in model.graph.node:
                    self.network.layers.append(FakeLayer(node.name))
                    if node.op_type == "Sigmoid":  # a helper layer named like the parser names them
                        self.network.layers.append(FakeLayer(node.name + "_aux"))
                inits = {t.name for t in model.graph.initializer}
                for value, is_input in [(v, True) for v in model.graph.input if v.name not in inits] + \
                                       [(v, False) for v in model.graph.output]:
                    shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
                    self.network.io.append({"name": value.name, "input": is_input, "shape": shape})
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
                return FakeEngine(json.loads(bytes(blob)[len(b"FAKEPLAN"):]))

        self.Logger, self.Builder, self.OnnxParser, self.Runtime = Logger, Builder, OnnxParser, Runtime

    @staticmethod
    def nptype(dtype: _DType) -> Any:
        return dtype.np_dtype
