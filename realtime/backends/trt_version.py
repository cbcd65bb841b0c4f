"""TensorRT versions: the one helper for what differs between TensorRT 10 and 11.

:class:`TrtApi` (:meth:`TrtApi.for_module`) hides every version difference of the build
and run side; :func:`trt_version_key` compares versions as serialized engines need;
:func:`import_tensorrt` imports the module lazily with a message saying how to get it.
Nothing here imports TensorRT at module import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.errors import BackendError


def trt_version_key(version: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` -> ``(10, 3, 0)``: serialized engines need the same TensorRT release
    (TensorRT developer guide, "Engine compatibility": engines are not portable across versions)."""
    parts = re.findall(r"\d+", str(version))
    if not parts:
        raise ValueError(f"not a TensorRT version: {version!r}")
    return tuple(int(p) for p in parts[:3])


#: Oldest TensorRT major version served (name-based tensor API, execute_async_v3).
MIN_TRT_MAJOR = 10


class TrtVersionError(BackendError):
    """The installed TensorRT cannot do what was asked (message says what to do instead)."""


# --------------------------------------------------------------------------------------
# TensorRT 10 vs 11: the one helper
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildPlan:
    """How an engine is built from one ONNX graph.

    Attributes:
        strongly_typed: network created strongly typed (precision taken from the ONNX).
        fp16_flag: TensorRT 10 weak typing with ``BuilderFlag.FP16``.
        precision: what the engine computes in (``fp16`` / ``fp32``), for its name and header.
    """

    strongly_typed: bool
    fp16_flag: bool
    precision: str


@dataclass(frozen=True)
class TensorSpec:
    """One engine I/O tensor."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: Any  # numpy dtype

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mode": "input" if self.is_input else "output", "shape": list(self.shape),
                "dtype": np.dtype(self.dtype).name}


class TrtApi:
    """Every TensorRT-version difference, behind one interface (torch2trt's ``_pre_10``/``_post_10``).

    Use :meth:`for_module`; subclasses :class:`_TrtApi10` and :class:`_TrtApi11` hold the
    version-specific parts. What differs:

    * precision: TensorRT 10 builds fp32 ONNX graphs weakly typed, with ``BuilderFlag.FP16``
      when asked, and keeps the overflow-prone layers in float32 through per-layer precision
      constraints; an FP16 ONNX graph is built strongly typed. TensorRT 11 removed weak typing
      and the precision flags (TensorRT 10.x -> 11.x migration guide): every network is
      strongly typed, so FP16 must come from the FP16 ONNX graph.
    * network creation flags (``STRONGLY_TYPED`` exists in 10, is deprecated and ignored in 11).

    The runtime side (named tensors, ``execute_async_v3``) is the same in 10 and 11.
    """

    major = 0

    def __init__(self, trt: Any) -> None:
        self.trt = trt
        self.version = str(trt.__version__)

    @staticmethod
    def for_module(trt: Any) -> "TrtApi":
        """The helper for the imported ``tensorrt`` module (its ``__version__`` decides)."""
        major = trt_version_key(trt.__version__)[0]
        if major < MIN_TRT_MAJOR:
            raise TrtVersionError(f"TensorRT {trt.__version__} is too old: tryon needs TensorRT >= {MIN_TRT_MAJOR} "
                                  f"(pip install 'tensorrt>=10,<12')")
        return _TrtApi10(trt) if major == 10 else _TrtApi11(trt)

    # ------------------------------------------------------------------ build side
    def build_plan(self, fp16: bool, onnx_precision: str) -> BuildPlan:
        """Decide typing and flags for ``--fp16`` (``fp16``) and the ONNX graph's precision."""
        raise NotImplementedError

    def network_flags(self, plan: BuildPlan) -> int:
        """Flags for ``builder.create_network``."""
        raise NotImplementedError

    def apply_precision(self, config: Any, network: Any, plan: BuildPlan, fp32_layers: set[str]) -> int:
        """Set precision flags / constraints on ``config``; returns the number of layers pinned to float32."""
        return 0

    # ------------------------------------------------------------------ run side
    def io_tensors(self, engine: Any) -> list[TensorSpec]:
        """The engine's I/O tensors by name (TensorRT >= 10 name-based API)."""
        trt = self.trt
        out = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            out.append(TensorSpec(name=name, is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                                  shape=tuple(int(d) for d in engine.get_tensor_shape(name)),
                                  dtype=np.dtype(trt.nptype(engine.get_tensor_dtype(name)))))
        return out

    def execute(self, context: Any, stream_handle: int) -> None:
        """Enqueue one inference on ``stream_handle``."""
        if not context.execute_async_v3(stream_handle):
            raise BackendError("TensorRT: execute_async_v3 failed (see the TensorRT log above)")


class _TrtApi10(TrtApi):
    major = 10

    def build_plan(self, fp16: bool, onnx_precision: str) -> BuildPlan:
        if onnx_precision == "fp16":
            # The graph carries its types (float32 I/O and kept nodes, half elsewhere): build it as typed.
            return BuildPlan(strongly_typed=True, fp16_flag=False, precision="fp16")
        return BuildPlan(strongly_typed=False, fp16_flag=bool(fp16), precision="fp16" if fp16 else "fp32")

    def network_flags(self, plan: BuildPlan) -> int:
        if plan.strongly_typed:
            return 1 << int(self.trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        return 0  # EXPLICIT_BATCH is implied (deprecated and ignored in 10)

    def apply_precision(self, config: Any, network: Any, plan: BuildPlan, fp32_layers: set[str]) -> int:
        trt = self.trt
        if not plan.fp16_flag:
            return 0
        config.set_flag(trt.BuilderFlag.FP16)
        pinned = 0
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.name not in fp32_layers:
                continue
            layer.precision = trt.float32
            for k in range(layer.num_outputs):
                if layer.get_output(k).dtype == trt.float32:
                    layer.set_output_type(k, trt.float32)
            pinned += 1
        if pinned:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        return pinned


class _TrtApi11(TrtApi):
    major = 11

    def build_plan(self, fp16: bool, onnx_precision: str) -> BuildPlan:
        if fp16 and onnx_precision != "fp16":
            raise TrtVersionError(
                f"TensorRT {self.version} builds strongly typed networks only (BuilderFlag.FP16 was removed in 11): "
                f"the precision comes from the ONNX graph. Pass the FP16 graph (the *_fp16.onnx written by "
                f"'tryon export') instead of --fp16 with an fp32 graph.")
        return BuildPlan(strongly_typed=True, fp16_flag=False, precision=onnx_precision)

    def network_flags(self, plan: BuildPlan) -> int:
        return 0  # strongly typed always; the STRONGLY_TYPED flag is deprecated and ignored


def import_tensorrt() -> Any:
    """``import tensorrt`` or a :class:`BackendError` saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendError(f"TensorRT is not installed ({exc}); install it with: pip install 'tryon-realtime[trt]' "
                           f"(needs an NVIDIA GPU and driver)") from exc
    return tensorrt
