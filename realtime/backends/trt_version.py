"""TensorRT versions: the one helper for what differs between TensorRT 10, 10.12+ and 11.

:class:`TrtApi` (:meth:`TrtApi.for_module`) hides every version difference of the build
and run side (weak typing up to 10.11 only; the float32 layers of ``--fp16`` chosen by
:func:`fp32_tail_layers`); :func:`trt_version_key` compares versions as serialized engines
need (build number included); :func:`trt_logger` is the process's one TensorRT logger;
:func:`import_tensorrt` imports the module lazily with a message saying how to get it.
Nothing here imports TensorRT at module import.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.artifacts import HEATMAPS
from realtime.errors import BackendError

log = logging.getLogger(__name__)


def trt_version_key(version: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` -> ``(10, 3, 0, 26)``: major, minor, patch and build number.

    A serialized engine runs only on the TensorRT release that built it, build number
    included (TensorRT developer guide, "Engine compatibility": by default engines are
    neither forward- nor backward-compatible), so engines are compared on all four parts.
    A version without a build number (``"10.3.0"``) gives three parts; anything after the
    fourth numeric part (``.post1``) is not part of the key.
    """
    m = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?", str(version))
    if not m:
        raise ValueError(f"not a TensorRT version: {version!r}")
    return tuple(int(p) for p in m.groups() if p is not None)


#: Oldest TensorRT major version served (name-based tensor API, execute_async_v3).
MIN_TRT_MAJOR = 10
#: TensorRT 10.12 deprecated weak typing: BuilderFlag.FP16, ILayer.precision and
#: ILayer.set_output_type warn from then on (TensorRT 10.12.0 release notes; the Python
#: bindings mark the setters "Deprecated in TensorRT 10.12. Superseded by strong typing.").
#: From this version on every network is built strongly typed, as in 11.
WEAK_TYPING_DEPRECATED = (10, 12)


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
        fp16_flag: TensorRT < 10.12 weak typing with ``BuilderFlag.FP16``.
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


#: Layer types that compute in floating point and may be pinned to float32 (TensorRT ``LayerType`` names).
PINNABLE_LAYER_TYPES = ("ACTIVATION", "ELEMENTWISE", "UNARY", "SOFTMAX", "REDUCE", "MATRIX_MULTIPLY")
#: Layer types walked upstream from the heatmap output (its activation and elementwise tail).
_TAIL_UPSTREAM_TYPES = ("ACTIVATION", "ELEMENTWISE", "UNARY", "IDENTITY", "CAST", "CONSTANT")


def fp32_tail_layers(trt: Any, network: Any, output: str = HEATMAPS) -> list[int]:
    """Indices of the layers of a parsed network to pin to float32 under ``BuilderFlag.FP16``.

    Chosen from the parsed network itself, by tensor connectivity, layer type and output
    dtype, never by name (the ONNX parser makes no layers for Constant nodes, names helper
    layers by a counter or not at all, and can give a helper a name that is another node's):

    * the heatmap activation: walking upstream from the ``output`` network output through
      activation / elementwise / unary / identity / cast layers, up to the convolution;
    * the decode tail: every layer that (transitively) reads the ``output`` tensor
      (the soft-argmax: ``beta`` multiply, softmax, coordinate matmuls);
    * of those, only layers of a :data:`PINNABLE_LAYER_TYPES` type whose every output is
      FLOAT or HALF: shape, slice, concatenation, shuffle, constant and INT64/INT32/BOOL
      layers are never pinned (``OBEY_PRECISION_CONSTRAINTS`` on an INT64 shape layer warns
      or fails the build).
    """
    producer: dict[str, int] = {}
    consumers: dict[str, list[int]] = defaultdict(list)
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    for i, layer in enumerate(layers):
        for k in range(layer.num_inputs):
            tensor = layer.get_input(k)
            if tensor is not None:
                consumers[tensor.name].append(i)
        for k in range(layer.num_outputs):
            producer[layer.get_output(k).name] = i
    names = {network.get_output(j).name for j in range(network.num_outputs)}
    if output not in names or output not in producer:
        return []
    types = trt.LayerType
    upstream_types = {getattr(types, t) for t in _TAIL_UPSTREAM_TYPES}
    chosen: set[int] = set()
    stack = [producer[output]]
    while stack:  # the activation chain that produces the heatmaps
        i = stack.pop()
        if i in chosen or layers[i].type not in upstream_types:
            continue
        chosen.add(i)
        for k in range(layers[i].num_inputs):
            tensor = layers[i].get_input(k)
            if tensor is not None and tensor.name in producer:
                stack.append(producer[tensor.name])
    queue, seen = list(consumers.get(output, ())), set()
    while queue:  # everything that reads them
        i = queue.pop()
        if i in seen:
            continue
        seen.add(i)
        chosen.add(i)
        for k in range(layers[i].num_outputs):
            queue.extend(consumers.get(layers[i].get_output(k).name, ()))
    pinnable = {getattr(types, t) for t in PINNABLE_LAYER_TYPES}
    floating = {trt.DataType.FLOAT, trt.DataType.HALF}
    return sorted(i for i in chosen if layers[i].type in pinnable
                  and all(layers[i].get_output(k).dtype in floating for k in range(layers[i].num_outputs)))


_LOGGERS: dict[int, tuple[Any, Any]] = {}


def trt_logger(trt: Any) -> Any:
    """The process's one ``trt.Logger`` (WARNING) for this ``tensorrt`` module.

    TensorRT keeps one logger per process: the first Builder/Runtime registers it, and a
    second logger object makes it warn and keep the first. Builder and every runtime share this one.
    """
    entry = _LOGGERS.get(id(trt))
    if entry is None or entry[0] is not trt:
        entry = (trt, trt.Logger(trt.Logger.WARNING))
        _LOGGERS[id(trt)] = entry
    return entry[1]


class TrtApi:
    """Every TensorRT-version difference, behind one interface (torch2trt's ``_pre_10``/``_post_10``).

    Use :meth:`for_module`; subclasses :class:`_TrtApi10` and :class:`_TrtApi11` hold the
    version-specific parts. What differs:

    * precision: TensorRT 10.0-10.11 builds fp32 ONNX graphs weakly typed, with
      ``BuilderFlag.FP16`` when asked, and keeps the heatmap activation and decode tail in
      float32 through per-layer precision constraints (:func:`fp32_tail_layers`). An FP16
      ONNX graph is built strongly typed. TensorRT 10.12 deprecated weak typing and 11 removed
      it (10.x -> 11.x migration guide): from 10.12 on every network is built strongly typed,
      no precision setter is called, and FP16 must come from the FP16 ONNX graph.
    * network creation flags: ``STRONGLY_TYPED`` (``1 << 1``) is set on 10.x; on 11 it is
      accepted and ignored, so nothing is passed.

    The runtime side (named tensors, ``execute_async_v3``) is the same in 10 and 11.
    """

    major = 0

    def __init__(self, trt: Any) -> None:
        self.trt = trt
        self.version = str(trt.__version__)
        self.version_key = trt_version_key(self.version)

    @staticmethod
    def for_module(trt: Any) -> "TrtApi":
        """The helper for the imported ``tensorrt`` module (its ``__version__`` decides)."""
        major = trt_version_key(trt.__version__)[0]
        if major < MIN_TRT_MAJOR:
            from realtime.backends.trt_install import install_hint

            raise TrtVersionError(f"TensorRT {trt.__version__} is too old: tryon needs TensorRT >= {MIN_TRT_MAJOR} "
                                  f"({install_hint()})")
        return _TrtApi10(trt) if major == 10 else _TrtApi11(trt)

    @property
    def weak_typing(self) -> bool:
        """Whether this TensorRT still offers weak typing without deprecation warnings (< 10.12)."""
        return self.version_key[:2] < WEAK_TYPING_DEPRECATED

    def logger(self) -> Any:
        return trt_logger(self.trt)

    # ------------------------------------------------------------------ build side
    def build_plan(self, fp16: bool, onnx_precision: str) -> BuildPlan:
        """Decide typing and flags for ``--fp16`` (``fp16``) and the ONNX graph's precision."""
        if onnx_precision == "fp16":
            # The graph carries its types (float32 I/O and kept nodes, half elsewhere): build it as typed.
            return BuildPlan(strongly_typed=True, fp16_flag=False, precision="fp16")
        if self.weak_typing:
            return BuildPlan(strongly_typed=False, fp16_flag=bool(fp16), precision="fp16" if fp16 else "fp32")
        if fp16:
            why = ("builds strongly typed networks only (BuilderFlag.FP16 was removed in 11)" if self.major >= 11 else
                   "deprecates weak typing (BuilderFlag.FP16 and per-layer precision, since 10.12)")
            raise TrtVersionError(
                f"TensorRT {self.version} {why}: the precision comes from the ONNX graph. Pass the FP16 graph "
                f"(the *_fp16.onnx written by 'tryon export') instead of --fp16 with an fp32 graph.")
        return BuildPlan(strongly_typed=True, fp16_flag=False, precision="fp32")

    def network_flags(self, plan: BuildPlan) -> int:
        """Flags for ``builder.create_network``."""
        raise NotImplementedError

    def set_fp16(self, config: Any) -> None:
        """``BuilderFlag.FP16`` through ``IBuilderConfig.set_flag`` (weak typing, TensorRT < 10.12 only)."""
        raise TrtVersionError(f"TensorRT {self.version}: no weak typing (BuilderFlag.FP16)")

    def apply_precision(self, config: Any, network: Any, plan: BuildPlan) -> int:
        """Set precision flags / constraints on ``config``; returns the number of layers pinned to float32."""
        if not plan.fp16_flag:
            return 0
        trt = self.trt
        self.set_fp16(config)
        pinned = 0
        for i in fp32_tail_layers(trt, network):
            layer = network.get_layer(i)
            layer.precision = trt.float32
            for k in range(layer.num_outputs):
                layer.set_output_type(k, trt.float32)
            pinned += 1
        if pinned:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        else:
            log.warning("FP16: no heatmap activation / decode layer found to keep in float32; TensorRT chooses freely")
        return pinned

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

    def network_flags(self, plan: BuildPlan) -> int:
        if plan.strongly_typed:
            return 1 << int(self.trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        return 0  # EXPLICIT_BATCH is implied (deprecated and ignored in 10)

    def set_fp16(self, config: Any) -> None:
        if not self.weak_typing:
            super().set_fp16(config)
        config.set_flag(self.trt.BuilderFlag.FP16)


class _TrtApi11(TrtApi):
    major = 11

    @property
    def weak_typing(self) -> bool:
        return False

    def network_flags(self, plan: BuildPlan) -> int:
        return 0  # strongly typed always; the STRONGLY_TYPED flag is accepted and ignored


def import_tensorrt() -> Any:
    """``import tensorrt`` or a :class:`BackendError` saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        from realtime.backends.trt_install import install_hint

        raise BackendError(f"TensorRT is not installed or does not load ({exc}); {install_hint()}; "
                           f"'tryon doctor' says which fits this driver") from exc
    return tensorrt
