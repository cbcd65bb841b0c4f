"""Rebuild a float TensorFlow Lite graph as a torch module, and ship MediaPipe's BlazeFace as ONNX.

A dev tool (``pip install -e .[convert]``: the ``tflite`` flatbuffer schema package, imported
lazily). The product cannot depend on mediapipe (it pins numpy < 2), but MediaPipe's
short-range BlazeFace face detector (Apache-2.0, ``face_detection_short_range.tflite`` in the
mediapipe wheel) is a plain convolutional graph. This module

1. reads the ``.tflite`` flatbuffer (:func:`read_tflite`): tensors, constant buffers, operators
   and their options; float16 constants behind ``DEQUANTIZE`` are folded to float32;
2. rebuilds it as a torch module (:class:`TfliteModule`), operator by operator, keeping 4-D
   activations in torch's NCHW layout (kernels OHWI -> OIHW, depthwise 1HWC -> C1HW, pads and
   concatenation axes remapped, NHWC order restored before a ``RESHAPE``). TFLite ``SAME``
   padding is asymmetric when the kernel overhangs (extra row / column at the end): it becomes
   an explicit pad before an unpadded conv / pool;
3. wraps it for the project's detector convention (:class:`BlazeFaceGraph`: input ``image``
   1x3x128x128 BGR in [0, 1], the [-1, 1] RGB normalisation of MediaPipe's graph inside) and
   exports it to ONNX with metadata (:func:`export_blazeface`), among it the SSD anchor options
   of MediaPipe's short-range graph, which :mod:`realtime.live.blazeface` decodes with.

Supported operators: CONV_2D, DEPTHWISE_CONV_2D, ADD, PAD, MAX_POOL_2D, RESHAPE, CONCATENATION,
DEQUANTIZE (float16 constants), RELU, RELU6, LOGISTIC, TANH; anything else is an error naming the
operator and the file.

    python -m training.teacher.tflite_convert \\
        --tflite $TEACHER_VENV/lib/python3.11/site-packages/mediapipe/modules/face_detection/face_detection_short_range.tflite \\
        --out realtime/weights/blazeface_short.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Where the mediapipe wheel keeps the model, relative to its site-packages.
MEDIAPIPE_REL = Path("mediapipe") / "modules" / "face_detection" / "face_detection_short_range.tflite"
#: The shipped graph, relative to the repository root.
SHIPPED_REL = Path("realtime") / "weights" / "blazeface_short.onnx"

#: SSD anchor and decoding options of MediaPipe's short-range face detection graph
#: (mediapipe/modules/face_detection/face_detection_short_range.pbtxt, mediapipe 0.10.21:
#: SsdAnchorsCalculatorOptions, TensorsToDetectionsCalculatorOptions, NonMaxSuppression).
SHORT_RANGE_OPTIONS: dict[str, Any] = {
    "input_size": 128, "num_layers": 4, "min_scale": 0.1484375, "max_scale": 0.75, "strides": [8, 16, 16, 16],
    "anchor_offset": 0.5, "aspect_ratios": [1.0], "interpolated_scale_aspect_ratio": 1.0, "fixed_anchor_size": True,
    "num_boxes": 896, "num_coords": 16, "num_keypoints": 6, "box_scale": 128.0, "score_clip": 100.0,
    "min_score": 0.5, "nms_iou": 0.3,
    "keypoints": ["right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion"],
}

_FLOAT_TYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "INT64": np.int64,
                "UINT8": np.uint8, "INT8": np.int8}


def _tflite():
    try:
        import tflite
    except ImportError as exc:  # a dev tool: the product never needs it
        raise ImportError("the TFLite converter needs the tflite schema package: pip install tflite "
                          "(or pip install -e .[convert])") from exc
    return tflite


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass
class TfliteOp:
    """One operator: its kind (BuiltinOperator name), input / output tensor indices (-1: none), options."""

    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfliteGraph:
    """The first subgraph of a TFLite model, with its constants as numpy arrays (float16 folded to float32)."""

    path: Path
    tensors: list[TensorInfo]
    consts: dict[int, np.ndarray]
    ops: list[TfliteOp]
    inputs: list[int]
    outputs: list[int]
    description: str
    sha256: str



def _options(tfl, op, kind: str, path: Path, index: int) -> dict[str, Any]:
    act = _enum_names(tfl.ActivationFunctionType)
    pad = _enum_names(tfl.Padding)
    table = op.BuiltinOptions()

    def load(cls):
        o = cls()
        if table is None:
            raise ValueError(f"{path}: operator {index} ({kind}) has no options")
        o.Init(table.Bytes, table.Pos)
        return o

    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        o = load(tfl.Conv2DOptions if kind == "CONV_2D" else tfl.DepthwiseConv2DOptions)
        out = {"padding": pad[o.Padding()], "stride": (o.StrideH(), o.StrideW()),
               "dilation": (o.DilationHFactor(), o.DilationWFactor()), "act": act[o.FusedActivationFunction()]}
        if kind == "DEPTHWISE_CONV_2D":
            out["depth_multiplier"] = o.DepthMultiplier()
        return out
    if kind in ("MAX_POOL_2D",):
        o = load(tfl.Pool2DOptions)
        return {"padding": pad[o.Padding()], "stride": (o.StrideH(), o.StrideW()),
                "filter": (o.FilterHeight(), o.FilterWidth()), "act": act[o.FusedActivationFunction()]}
    if kind == "ADD":
        return {"act": act[load(tfl.AddOptions).FusedActivationFunction()] if table is not None else "NONE"}
    if kind == "CONCATENATION":
        o = load(tfl.ConcatenationOptions)
        return {"axis": o.Axis(), "act": act[o.FusedActivationFunction()]}
    if kind == "RESHAPE" and table is not None:
        o = load(tfl.ReshapeOptions)
        return {"new_shape": [int(v) for v in o.NewShapeAsNumpy()]} if not o.NewShapeIsNone() else {}
    return {}


SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "PAD", "MAX_POOL_2D", "RESHAPE", "CONCATENATION",
                 "DEQUANTIZE", "RELU", "RELU6", "LOGISTIC", "TANH")


def read_tflite(path: str | Path) -> TfliteGraph:
    """Parse a float ``.tflite`` file (first subgraph).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a TFLite flatbuffer, an unsupported operator or tensor type, or a
            non-constant DEQUANTIZE (each message names the file).
        ImportError: the ``tflite`` package is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TFLite model not found: {path}")
    buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError(f"{path}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier)")
    tfl = _tflite()
    try:
        model = tfl.Model.GetRootAsModel(buf, 0)
        ops_enum = _enum_names(tfl.BuiltinOperator)
        types = _enum_names(tfl.TensorType)
        if model.SubgraphsLength() < 1:
            raise ValueError(f"{path}: the model has no subgraph")
        g = model.Subgraphs(0)
        tensors, consts = [], {}
        for i in range(g.TensorsLength()):
            t = g.Tensors(i)
            dtype = types.get(t.Type(), str(t.Type()))
            tensors.append(TensorInfo(t.Name().decode(), tuple(int(v) for v in t.ShapeAsNumpy())
                                      if not t.ShapeIsNone() else (), dtype))
            b = model.Buffers(t.Buffer())
            raw = None
            if b is not None and not b.DataIsNone() and b.DataLength() > 0:
                raw = b.DataAsNumpy().tobytes()
            elif b is not None and b.Offset() > 1:  # large models keep buffers after the flatbuffer
                raw = buf[b.Offset():b.Offset() + b.Size()]
            if raw is not None:
                if dtype not in _FLOAT_TYPES:
                    raise ValueError(f"{path}: tensor {tensors[-1].name!r} has unsupported type {dtype}")
                consts[i] = np.frombuffer(raw, _FLOAT_TYPES[dtype]).reshape(tensors[-1].shape).copy()
        codes = []
        for i in range(model.OperatorCodesLength()):
            c = model.OperatorCodes(i)
            codes.append(ops_enum.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "CUSTOM"))
        ops = []
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            kind = codes[op.OpcodeIndex()]
            if kind not in SUPPORTED_OPS:
                raise ValueError(f"{path}: operator {i} is {kind}, which the converter does not support "
                                 f"(supported: {', '.join(SUPPORTED_OPS)})")
            ins = [int(v) for v in op.InputsAsNumpy()] if not op.InputsIsNone() else []
            outs = [int(v) for v in op.OutputsAsNumpy()]
            if kind == "DEQUANTIZE":  # float16 weights: fold
                if ins[0] not in consts or consts[ins[0]].dtype != np.float16:
                    raise ValueError(f"{path}: operator {i} DEQUANTIZE of a non-constant or non-float16 tensor "
                                     f"{tensors[ins[0]].name!r} (only float16 weights are supported)")
                consts[outs[0]] = consts[ins[0]].astype(np.float32)
                continue
            ops.append(TfliteOp(kind, ins, outs, _options(tfl, op, kind, path, i)))
        inputs = [int(v) for v in g.InputsAsNumpy()]
        outputs = [int(v) for v in g.OutputsAsNumpy()]
        desc = (model.Description() or b"").decode(errors="replace")
    except ValueError:
        raise
    except Exception as exc:  # a damaged flatbuffer raises struct / index errors from deep inside
        raise ValueError(f"{path}: cannot parse the TFLite flatbuffer ({type(exc).__name__}: {exc})") from exc
    return TfliteGraph(path, tensors, consts, ops, inputs, outputs, desc, hashlib.sha256(buf).hexdigest())


# --------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------

def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite / TensorFlow SAME padding of one axis: (before, after); the odd pixel goes after."""
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + eff - size)
    return total // 2, total - total // 2


_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _torch_modules():
    import torch
    import torch.nn.functional as F

    class TfliteModule(torch.nn.Module):
        """A :class:`TfliteGraph` as a torch module: ``forward(x)`` with ``x`` the graph's input in
        NCHW (a 4-D input; other ranks as they are); returns the graph's outputs in TFLite layout
        (a 4-D output back in NHWC), as a tuple in the graph's output order."""

        def __init__(self, graph: TfliteGraph) -> None:
            super().__init__()
            if len(graph.inputs) != 1:
                raise ValueError(f"{graph.path}: {len(graph.inputs)} inputs; the converter handles one")
            self.graph_inputs, self.graph_outputs = list(graph.inputs), list(graph.outputs)
            self.output_names = [graph.tensors[i].name for i in graph.outputs]
            self._plan: list[tuple[str, list[int], list[int], dict[str, Any]]] = []
            shapes = {i: t.shape for i, t in enumerate(graph.tensors)}
            for n, op in enumerate(graph.ops):
                self._plan.append((op.kind, op.inputs, op.outputs, self._prepare(graph, n, op, shapes)))

        def _const(self, name: str, value: np.ndarray) -> str:
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
            return name

        def _prepare(self, graph: TfliteGraph, n: int, op: TfliteOp, shapes) -> dict[str, Any]:
            c, kind = graph.consts, op.kind
            p: dict[str, Any] = {"act": op.options.get("act", "NONE")}
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w = c[op.inputs[1]]
                if kind == "CONV_2D":
                    w_t = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                    p["groups"] = 1
                else:
                    cin = shapes[op.inputs[0]][3]
                    w_t = w[0].transpose(2, 0, 1)[:, None]  # 1HW(C*M) -> (C*M)1HW
                    p["groups"] = cin
                p["w"] = self._const(f"w{n}", w_t)
                bias = op.inputs[2] if len(op.inputs) > 2 else -1
                p["b"] = self._const(f"b{n}", c[bias]) if bias >= 0 else None
                p["stride"], p["dilation"] = op.options["stride"], op.options["dilation"]
                k = w_t.shape[2:]
                p["pads"] = self._window_pads(shapes[op.inputs[0]], k, op.options)
            elif kind == "MAX_POOL_2D":
                p["stride"], p["filter"] = op.options["stride"], op.options["filter"]
                p["pads"] = self._window_pads(shapes[op.inputs[0]], p["filter"], {**op.options, "dilation": (1, 1)})
            elif kind == "PAD":
                pads = c[op.inputs[1]].astype(int)
                if pads.shape[0] == 4:
                    pads = pads[[0, 3, 1, 2]]  # NHWC -> NCHW
                p["pads"] = [int(v) for row in pads[::-1] for v in row]  # F.pad: last axis first
                if len(op.inputs) > 2 and op.inputs[2] >= 0:
                    raise ValueError(f"{graph.path}: PAD with a constant value (operator {op.outputs}) is not supported")
            elif kind == "RESHAPE":
                shape = op.options.get("new_shape")
                if shape is None and len(op.inputs) > 1 and op.inputs[1] in c:
                    shape = [int(v) for v in c[op.inputs[1]]]
                if shape is None:
                    shape = list(shapes[op.outputs[0]])
                p["shape"], p["in4"], p["out4"] = shape, len(shapes[op.inputs[0]]) == 4, len(shape) == 4
            elif kind == "CONCATENATION":
                rank = len(shapes[op.outputs[0]])
                axis = op.options["axis"] % rank
                p["axis"] = _NHWC_TO_NCHW_AXIS[axis] if rank == 4 else axis
            elif kind == "ADD":
                p["consts"] = {}
                for j, t in enumerate(op.inputs):
                    if t in c:
                        v = c[t]
                        v = v.transpose(0, 3, 1, 2) if v.ndim == 4 else v.reshape(-1, 1, 1) if \
                            v.ndim == 1 and len(shapes[op.outputs[0]]) == 4 else v
                        p["consts"][j] = self._const(f"c{n}_{j}", v)
            return p

        @staticmethod
        def _window_pads(in_shape, k, options) -> tuple[int, int, int, int] | None:
            if options["padding"] == "VALID":
                return None
            (sh, sw), (dh, dw) = options["stride"], options["dilation"]
            top, bottom = _same_pads(in_shape[1], k[0], sh, dh)
            left, right = _same_pads(in_shape[2], k[1], sw, dw)
            return left, right, top, bottom

        @staticmethod
        def _act(x, act: str):
            if act == "NONE":
                return x
            if act == "RELU":
                return F.relu(x)
            if act == "RELU6":
                return F.hardtanh(x, 0.0, 6.0)
            if act == "RELU_N1_TO_1":
                return F.hardtanh(x, -1.0, 1.0)
            if act == "TANH":
                return torch.tanh(x)
            raise ValueError(f"unsupported fused activation {act}")

        def forward(self, x):
            env = {self.graph_inputs[0]: x}
            for kind, ins, outs, p in self._plan:
                a = env[ins[0]] if ins[0] in env else None
                if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                    pads = p["pads"]
                    padding: Any = 0
                    if pads is not None:
                        if pads[0] == pads[1] and pads[2] == pads[3]:
                            padding = (pads[2], pads[0])
                        else:
                            a = F.pad(a, pads)
                    y = F.conv2d(a, getattr(self, p["w"]), None if p["b"] is None else getattr(self, p["b"]),
                                 stride=p["stride"], padding=padding, dilation=p["dilation"], groups=p["groups"])
                elif kind == "MAX_POOL_2D":
                    if p["pads"] is not None and any(p["pads"]):
                        a = F.pad(a, p["pads"], value=float("-inf"))
                    y = F.max_pool2d(a, p["filter"], p["stride"])
                elif kind == "ADD":
                    xs = [getattr(self, p["consts"][j]) if j in p["consts"] else env[t] for j, t in enumerate(ins)]
                    y = xs[0] + xs[1]
                elif kind == "PAD":
                    y = F.pad(a, p["pads"])
                elif kind == "RESHAPE":
                    y = a.permute(0, 2, 3, 1) if p["in4"] else a
                    y = y.reshape(p["shape"])
                    y = y.permute(0, 3, 1, 2) if p["out4"] else y
                elif kind == "CONCATENATION":
                    y = torch.cat([env[t] for t in ins], dim=p["axis"])
                elif kind == "RELU":
                    y = F.relu(a)
                elif kind == "RELU6":
                    y = F.hardtanh(a, 0.0, 6.0)
                elif kind == "LOGISTIC":
                    y = torch.sigmoid(a)
                elif kind == "TANH":
                    y = torch.tanh(a)
                else:  # read_tflite refuses other kinds
                    raise AssertionError(kind)
                env[outs[0]] = self._act(y, p["act"])
            outs = [env[i] for i in self.graph_outputs]
            return tuple(o.permute(0, 2, 3, 1) if o.dim() == 4 else o for o in outs)

    class BlazeFaceGraph(torch.nn.Module):
        """BlazeFace for the project's detector convention: ``image`` 1x3xSxS, BGR in [0, 1]
        (the letterboxed frame, as the other shipped detector takes it) -> MediaPipe's RGB in
        [-1, 1] -> ``regressors`` (1, 896, 16) and ``classificators`` (1, 896, 1), raw logits."""

        def __init__(self, graph: TfliteGraph) -> None:
            super().__init__()
            self.net = TfliteModule(graph)
            if self.net.output_names != ["regressors", "classificators"]:
                raise ValueError(f"{graph.path}: outputs {self.net.output_names}, expected regressors, classificators "
                                 "(MediaPipe's face detection graphs)")

        def forward(self, image):
            rgb = torch.flip(image, dims=[1])
            return self.net(rgb * 2.0 - 1.0)

    return TfliteModule, BlazeFaceGraph


def torch_module(graph: TfliteGraph):
    """The graph as a :class:`TfliteModule` (eval mode)."""
    return _torch_modules()[0](graph).eval()


def blazeface_module(graph: TfliteGraph):
    """The graph wrapped as :class:`BlazeFaceGraph` (eval mode)."""
    return _torch_modules()[1](graph).eval()


def export_blazeface(tflite_path: str | Path, out: str | Path, mediapipe_version: str = "0.10.21") -> Path:
    """Convert MediaPipe's short-range BlazeFace to ONNX at ``out`` (atomically), with metadata:
    ``kind`` face_detector, ``format`` blazeface, the anchor / decoding options, the source file and
    its sha256, the licence. Returns ``out``."""
    import onnx
    import torch

    from realtime.backends.graph_export import to_onnx
    from realtime.io import atomic_write_bytes

    graph = read_tflite(tflite_path)
    size = SHORT_RANGE_OPTIONS["input_size"]
    in_shape = graph.tensors[graph.inputs[0]].shape
    if tuple(in_shape) != (1, size, size, 3):
        raise ValueError(f"{graph.path}: input shape {in_shape}, expected (1, {size}, {size}, 3) (the short-range model)")
    module = blazeface_module(graph)
    with torch.no_grad():
        model = to_onnx(module, (torch.zeros(1, 3, size, size),), ["image"], ["regressors", "classificators"], 17)
    meta = {"kind": "face_detector", "format": "blazeface", "options": json.dumps(SHORT_RANGE_OPTIONS),
            "input": "BGR in [0, 1], NCHW, the frame letterboxed (black) into the square input",
            "source": f"mediapipe {mediapipe_version} {MEDIAPIPE_REL.as_posix()}",
            "source_sha256": graph.sha256, "source_description": graph.description,
            "license": "Apache-2.0 (MediaPipe, Copyright The MediaPipe Authors)",
            "converter": "training/teacher/tflite_convert.py"}
    onnx.helper.set_model_props(model, meta)
    model.producer_name = "tryon"
    model.doc_string = "MediaPipe BlazeFace short-range face detector, rebuilt from its TFLite graph; " \
                       "metadata in metadata_props"
    onnx.checker.check_model(model)
    out = Path(out)
    atomic_write_bytes(out, model.SerializeToString())
    return out


def find_mediapipe_tflite(venv: str | Path | None = None) -> Path | None:
    """The short-range model in the teacher venv (``$TEACHER_VENV`` or ``<repo>/.venv-teacher``), or None."""
    from training.teacher.cache import DEFAULT_TEACHER_VENV, TEACHER_VENV_ENV
    import os

    root = Path(venv or os.environ.get(TEACHER_VENV_ENV) or DEFAULT_TEACHER_VENV)
    hits = sorted(root.glob(f"lib/python3*/site-packages/{MEDIAPIPE_REL.as_posix()}"))
    return hits[0] if hits else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Convert MediaPipe's short-range BlazeFace (.tflite) to the "
                                             "project's ONNX detector graph")
    ap.add_argument("--tflite", type=Path, default=None,
                    help="face_detection_short_range.tflite (default: the teacher venv's mediapipe wheel)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / SHIPPED_REL)
    args = ap.parse_args(argv)
    src = args.tflite or find_mediapipe_tflite()
    if src is None:
        ap.error("no --tflite given and no mediapipe wheel in the teacher venv ($TEACHER_VENV or .venv-teacher; "
                 "bash training/teacher/setup_env.sh)")
    out = export_blazeface(src, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB) from {src}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
