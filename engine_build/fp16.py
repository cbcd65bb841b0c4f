"""FP16 variant of an ONNX graph: half weights and activations, float32 where half is unsafe.

Written directly against the ``onnx`` API (no converter package): a short pass over the
topologically sorted graph.

* Every node is half precision except the **float32 set** (:func:`fp32_node_indices`):
  ops that overflow or lose too much in half (:data:`DEFAULT_FP32_OPS`: sigmoid/tanh,
  softmax, exp/log/pow, reductions, global pooling, ...), nodes named by the caller, the
  heatmap activation and everything after it (the elementwise chain that produces
  ``heatmaps``, and every node that consumes it: the soft-argmax ``keypoints`` head). With
  beta = 1000 the soft-argmax logits reach 1000, where half precision has a step of 0.5
  (IEEE 754 binary16: 11 significant bits), i.e. a weight error of e^0.5 (SPEC section 2:
  "keep this step in float32").
* Float32 initializers whose consumers are all half become float16 in place; others stay
  float32 and get a ``Cast`` where a half node reads them.
* A ``Cast`` is inserted on every edge whose producer and consumer precision differ; graph
  inputs and outputs stay float32 (I/O at the graph boundary never changes type).
* Inputs that the ONNX operator schemas fix to float32 whatever the data type (Resize's
  ``roi``/``scales``, Upsample's ``scales``) are left alone (:data:`FLOAT32_INPUTS`).
* **Shape computations stay float32 / int64** (:func:`shape_chain_nodes`): every node
  upstream of a shape-like input (Resize ``roi``/``scales``/``sizes``, Reshape/Expand/Tile
  shapes, ConstantOfShape, Slice starts/ends/axes/steps, Pad, Range, ... :data:`SHAPE_INPUTS`)
  is kept in float32, so no such input is ever computed from a half tensor. The walk stops
  at ``Shape``/``Size`` (:data:`SHAPE_OPS`): they read only the dimensions of their input,
  never its values, and output int64 whatever its type. TensorRT's ONNX parser turns these chains into shape-tensor computations, and a
  shape tensor may not start from a Half tensor (a ``Cast`` of an fp16 ``Constant`` feeding
  Resize ``scales`` fails the build). :func:`half_fed_shape_inputs` checks a converted graph.
* ``value_info`` is rewritten with the new element types, and the result is checked with
  ``onnx.checker`` and strict, type-checked shape inference.

The error this costs is measured, not assumed: :mod:`engine_build.export` decodes keypoints
from the fp32 and fp16 graphs with ONNX Runtime over a dataset split and fails above 1 px.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from realtime.artifacts import HEATMAPS

log = logging.getLogger(__name__)

#: Ops computed in float32 inside an FP16 graph. Exponentials and reciprocals overflow
#: half (max 65504); sigmoid/tanh outputs near 1 have a step of 2^-11 in half, which
#: beta = 1000 turns into a 0.5 logit error; reductions and global pools accumulate many
#: terms. All of them are cheap next to the convolutions.
DEFAULT_FP32_OPS: frozenset[str] = frozenset({
    "Sigmoid", "HardSigmoid", "Tanh", "Softmax", "LogSoftmax", "Exp", "Log", "Pow", "Sqrt", "Reciprocal",
    "ReduceMax", "ReduceMin", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceProd", "ReduceL1",
    "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
    "ArgMax", "ArgMin", "CumSum", "Range", "Einsum", "LpNormalization", "LayerNormalization",
    "InstanceNormalization", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
})

#: Elementwise ops walked upstream from a kept output (``0.5 * (tanh(x) + 1)`` stays
#: float32 as a whole, not just its tanh).
_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Sigmoid", "Tanh", "Clip", "Identity", "HardSigmoid", "Cast"})

#: Ops that carry the compute (and the weights): half whenever the rules allow.
_HEAVY_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "BatchNormalization"})

#: Inputs that stay float32 in any node (ONNX operator schemas: Resize roi is T2 and scales
#: is tensor(float) whatever X is; Upsample scales is tensor(float)).
FLOAT32_INPUTS: dict[str, tuple[int, ...]] = {"Resize": (1, 2), "Upsample": (1,)}

#: Inputs that carry shapes, sizes, scales, indices or axes (ONNX operator schemas). TensorRT
#: computes them as shape tensors; their producing chains never run in half.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Resize": (1, 2, 3), "Upsample": (1,), "Reshape": (1,), "Expand": (1,), "Tile": (1,),
    "ConstantOfShape": (0,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3), "Squeeze": (1,), "Unsqueeze": (1,),
    "Range": (0, 1, 2), "TopK": (1,), "OneHot": (1, 2), "Split": (1,), "ReduceSum": (1,), "ReduceMean": (1,),
    "ReduceMax": (1,), "ReduceMin": (1,), "ReduceProd": (1,), "ReduceL1": (1,), "ReduceL2": (1,),
    "ReduceSumSquare": (1,), "ReduceLogSum": (1,), "ReduceLogSumExp": (1,), "Gather": (1,),
    "GatherElements": (1,), "ScatterElements": (1,), "CenterCropPad": (1,), "DFT": (1,), "Trilu": (1,),
}
#: Ops that read only the dimensions of their input (int64 output whatever its type): a shape
#: chain starts at them, and the walk upstream stops there.
SHAPE_OPS = frozenset({"Shape", "Size"})

#: Largest finite float16 (IEEE 754 binary16).
FP16_MAX = 65504.0


def _onnx():
    import onnx  # lazy: only export needs it

    return onnx


def _name_nodes(graph: Any) -> None:
    """Give every node a unique name (the keep-list and the TensorRT builder refer to names)."""
    seen: set[str] = set()
    for i, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{i}"
        while name in seen:
            name = f"{name}_{i}"
        node.name = name
        seen.add(name)


def fp32_node_indices(model: Any, keep_ops: Iterable[str] = DEFAULT_FP32_OPS, keep_nodes: Iterable[str] = (),
                      keep_downstream_of: Iterable[str] = (HEATMAPS,)) -> set[int]:
    """Indices of the nodes kept in float32 (see the module docstring for the rules).

    Args:
        model: an ONNX ``ModelProto``.
        keep_ops: op types computed in float32.
        keep_nodes: node names computed in float32.
        keep_downstream_of: tensor names whose producing elementwise chain and every
            consumer (transitively) stay float32 (default: the heatmap output).
    """
    graph = model.graph
    keep_ops, keep_nodes = set(keep_ops), set(keep_nodes)
    producer: dict[str, int] = {}
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(graph.node):
        for out in node.output:
            producer[out] = i
        for name in node.input:
            if name:
                consumers[name].append(i)
    keep = {i for i, n in enumerate(graph.node) if n.op_type in keep_ops or n.name in keep_nodes}
    for tensor in keep_downstream_of:
        # Upstream: the elementwise chain producing the tensor (the output activation), up to
        # the first non-elementwise op (the head convolution, which stays half).
        stack = [producer[tensor]] if tensor in producer else []
        seen: set[int] = set()
        while stack:
            i = stack.pop()
            if i in seen or graph.node[i].op_type not in _ELEMENTWISE:
                continue
            seen.add(i)
            keep.add(i)
            stack.extend(producer[t] for t in graph.node[i].input if t in producer)
        # Downstream: every consumer, transitively (decoding heads such as the soft-argmax).
        queue = deque(consumers.get(tensor, ()))
        seen = set()
        while queue:
            i = queue.popleft()
            if i in seen:
                continue
            seen.add(i)
            keep.add(i)
            for out in graph.node[i].output:
                queue.extend(consumers.get(out, ()))
    # Light nodes read only by float32 nodes stay float32 too (a Constant -> Tile feeding the
    # soft-argmax, a 0.5 constant): walking backwards, so whole such chains are kept.
    outputs = {o.name for o in graph.output}
    for i in reversed(range(len(graph.node))):
        node = graph.node[i]
        if i in keep or node.op_type in _HEAVY_OPS or any(o in outputs for o in node.output):
            continue
        uses = [j for out in node.output for j in consumers.get(out, ())]
        if uses and all(j in keep for j in uses):
            keep.add(i)
    return keep | shape_chain_nodes(model)


def _shape_roots(graph: Any) -> list[tuple[Any, int]]:
    """``(node, input index)`` of every shape-like input (:data:`SHAPE_INPUTS`) in the graph."""
    return [(node, k) for node in graph.node for k in SHAPE_INPUTS.get(node.op_type, ())
            if k < len(node.input) and node.input[k]]


def shape_chain_nodes(model: Any) -> set[int]:
    """Indices of the nodes that (transitively) compute a shape-like input.

    The walk goes upstream from every shape-like input through the producers, and stops at
    :data:`SHAPE_OPS` (kept, but their data input is not part of the chain) and at the ops
    that carry the compute (:data:`_HEAVY_OPS`, never pulled into float32: a graph that
    computes a shape from a convolution's values fails :func:`half_fed_shape_inputs`).
    """
    graph = model.graph
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output}
    chain: set[int] = set()
    stack = [producer[node.input[k]] for node, k in _shape_roots(graph) if node.input[k] in producer]
    while stack:
        i = stack.pop()
        node = graph.node[i]
        if i in chain or node.op_type in _HEAVY_OPS:
            continue
        chain.add(i)
        if node.op_type not in SHAPE_OPS:
            stack.extend(producer[t] for t in node.input if t in producer)
    return chain


def half_fed_shape_inputs(model: Any) -> list[str]:
    """Where a graph computes a shape-like input from a float16 tensor (empty = fine for TensorRT).

    Walks upstream from every shape-like input (:data:`SHAPE_INPUTS`) through all producers
    (stopping only at :data:`SHAPE_OPS`, which read dimensions, not values) and reports each
    float16 tensor, initializer or Constant value met on the way, as
    ``"<tensor> (float16) feeds <op> '<node>' input <k>"``.
    """
    onnx = _onnx()
    from onnx import TensorProto

    HALF = TensorProto.FLOAT16
    graph = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    dtype = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
    dtype.update({t.name: t.data_type for t in graph.initializer})
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    dtype[node.output[0]] = attr.t.data_type
    problems: list[str] = []
    for consumer, k in _shape_roots(graph):
        stack, seen = [consumer.input[k]], set()
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            if dtype.get(name) == HALF:
                problems.append(f"{name} (float16) feeds {consumer.op_type} {consumer.name!r} input {k}")
            node = producer.get(name)
            if node is not None and node.op_type not in SHAPE_OPS:
                stack.extend(t for t in node.input if t)
    return sorted(set(problems))


def _tensor_to_half(tensor: Any, where: str) -> Any:
    from onnx import numpy_helper

    arr = numpy_helper.to_array(tensor)
    finite_max = float(np.abs(arr[np.isfinite(arr)]).max()) if arr.size else 0.0
    if finite_max > FP16_MAX:
        raise ValueError(f"FP16 conversion: {where} holds |value| {finite_max:.4g} > {FP16_MAX} (float16 max); "
                         f"keep the node that reads it in float32 (keep_nodes=...)")
    return numpy_helper.from_array(arr.astype(np.float16), tensor.name)


def convert_to_fp16(model: Any, keep_ops: Iterable[str] = DEFAULT_FP32_OPS, keep_nodes: Iterable[str] = (),
                    keep_downstream_of: Iterable[str] = (HEATMAPS,)) -> tuple[Any, list[str]]:
    """FP16 copy of a float32 ONNX model with float32 inputs and outputs.

    Args:
        model: float32 ``ModelProto`` (not modified).
        keep_ops, keep_nodes, keep_downstream_of: see :func:`fp32_node_indices`.

    Returns:
        ``(fp16_model, fp32_node_names)``: the converted model (checked) and the names of
        the nodes left in float32.

    Raises:
        ValueError: an initializer overflows float16, or the result fails the ONNX checker.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper

    FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
    for node in model.graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ValueError(f"FP16 conversion: node {node.name!r} ({node.op_type}) has a subgraph; control flow "
                             f"is not supported (the tryon graphs have none)")
    model = copy.deepcopy(model)
    _name_nodes(model.graph)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = model.graph

    infos = {v.name: v for v in [*graph.input, *graph.value_info, *graph.output]}
    dtype: dict[str, int] = {name: v.type.tensor_type.elem_type for name, v in infos.items()}
    dtype.update({t.name: t.data_type for t in graph.initializer})
    keep_idx = fp32_node_indices(model, keep_ops, keep_nodes, keep_downstream_of)
    keep_names = {graph.node[i].name for i in keep_idx}

    consumers: dict[str, list[tuple[Any, int]]] = defaultdict(list)
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name:
                consumers[name].append((node, k))

    def wants_half(node: Any, k: int) -> bool:
        return node.name not in keep_names and k not in FLOAT32_INPUTS.get(node.op_type, ())

    new_dtype = dict(dtype)
    # 1. Initializers read only by half inputs become float16 in place.
    for idx, tensor in enumerate(graph.initializer):
        uses = consumers.get(tensor.name, [])
        if tensor.data_type == FLOAT and uses and all(wants_half(n, k) for n, k in uses):
            graph.initializer[idx].CopyFrom(_tensor_to_half(tensor, f"initializer {tensor.name!r}"))
            new_dtype[tensor.name] = HALF

    # 2. Walk the nodes in (topological) order: cast inputs to the node's precision, retype outputs.
    new_nodes: list[Any] = []
    new_infos: list[Any] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}/cast_{'fp16' if to == HALF else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=f"{out}/Cast"))
            shape = infos[name].type.tensor_type.shape if name in infos else None
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim] \
                if shape is not None else None
            new_infos.append(helper.make_tensor_value_info(out, to, dims))
            new_dtype[out] = to
            casts[key] = out
        return casts[key]

    for node in graph.node:
        half = node.name not in keep_names
        for k, name in enumerate(node.input):
            if not name or dtype.get(name) != FLOAT:
                continue  # optional input, or not a float32 tensor (shapes, indices)
            want = HALF if wants_half(node, k) else FLOAT
            if new_dtype[name] != want:
                node.input[k] = cast(name, want)
        if half:
            _retype_half_node(node, HALF, FLOAT)
            for out in node.output:
                if dtype.get(out) == FLOAT:
                    new_dtype[out] = HALF
        new_nodes.append(node)

    # 3. Graph outputs stay float32: produce them through a final Cast.
    for out in graph.output:
        if new_dtype.get(out.name) == HALF:
            inner = f"{out.name}/fp16"
            for node in new_nodes:
                node.output[:] = [inner if o == out.name else o for o in node.output]
                node.input[:] = [inner if i == out.name else i for i in node.input]
            new_nodes.append(helper.make_node("Cast", [inner], [out.name], to=FLOAT, name=f"{out.name}/Cast"))
            new_dtype[inner] = HALF
            new_infos.append(helper.make_tensor_value_info(inner, HALF, None))

    new_nodes = [copy.deepcopy(n) for n in new_nodes]  # detach from the field before clearing it
    del graph.node[:]
    graph.node.extend(new_nodes)
    for info in graph.value_info:
        if info.name in new_dtype:
            info.type.tensor_type.elem_type = new_dtype[info.name]
    graph.value_info.extend(new_infos)
    try:
        onnx.checker.check_model(model)
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ValueError(f"FP16 conversion produced an invalid graph: {exc}") from exc
    bad = half_fed_shape_inputs(model)
    if bad:  # the shape-chain rule above makes this impossible; kept as the contract's check
        raise ValueError("FP16 conversion: shape inputs computed from float16 tensors (TensorRT refuses "
                         "half shape tensors): " + "; ".join(bad[:5]))
    kept = sorted(keep_names)
    n_half = sum(1 for n in new_nodes if n.name not in keep_names and n.op_type != "Cast")
    log.info("fp16: %d nodes in half, %d kept in float32, %d casts inserted", n_half, len(keep_names),
             len(casts) + sum(1 for o in graph.output if o.name + "/fp16" in new_dtype))
    return model, kept


def _retype_half_node(node: Any, half: int, flt: int) -> None:
    """Nodes whose float32 output type comes from an attribute, not an input."""
    from onnx import helper

    if node.op_type in ("Constant", "ConstantOfShape"):
        for attr in node.attribute:
            if attr.name == "value" and attr.t.data_type == flt:
                attr.t.CopyFrom(_tensor_to_half(attr.t, f"{node.op_type} node {node.name!r}"))
    elif node.op_type in ("Cast", "EyeLike"):
        for attr in node.attribute:
            if attr.name in ("to", "dtype") and attr.i == flt:
                attr.CopyFrom(helper.make_attribute(attr.name, half))


def model_precision(model: Any) -> str:
    """``fp16`` if any initializer or Constant is float16, else ``fp32``."""
    from onnx import TensorProto

    if any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    for node in model.graph.node:
        if node.op_type == "Constant" and any(a.t.data_type == TensorProto.FLOAT16 for a in node.attribute):
            return "fp16"
    return "fp32"


def emulate_fp16(half_model: Any) -> Any:
    """Float32 model that reproduces FP16 storage of ``half_model`` on any runtime.

    ONNX Runtime's CPU provider has few float16 kernels: it runs an FP16 graph by casting
    whole subgraphs up to float32 (``InsertCastTransformer``), so only the weight rounding
    survives and the activation rounding that a GPU does is not measured. This rewrite makes
    that rounding explicit: every float16 tensor becomes float32, and every node output that
    was float16 is rounded through ``Cast(float16) -> Cast(float)``. Arithmetic is float32
    (like TensorRT's fp16 kernels with float32 accumulation); what is stored between ops is
    exactly what a float16 graph stores.

    Args:
        half_model: a model from :func:`convert_to_fp16`.

    Returns:
        A checked float32 ``ModelProto`` with float32 I/O.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
    model = onnx.shape_inference.infer_shapes(copy.deepcopy(half_model), strict_mode=True)
    graph = model.graph
    dtype = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
    for idx, tensor in enumerate(graph.initializer):
        if tensor.data_type == HALF:
            arr = numpy_helper.to_array(tensor).astype(np.float32)
            graph.initializer[idx].CopyFrom(numpy_helper.from_array(arr, tensor.name))
    nodes: list[Any] = []
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "value" and attr.t.data_type == HALF:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32)))
        nodes.append(node)
        for k, out in enumerate(node.output):
            if dtype.get(out) != HALF:
                continue
            rounded = f"{out}/fp16_storage"
            if node.op_type == "Cast":  # the cast to half IS the rounding; then back to float
                node.output[k] = rounded
            else:
                node.output[k] = f"{out}/fp32_compute"
                nodes.append(helper.make_node("Cast", [node.output[k]], [rounded], to=HALF,
                                              name=f"{out}/round_to_fp16"))
            nodes.append(helper.make_node("Cast", [rounded], [out], to=FLOAT, name=f"{out}/back_to_fp32"))
    nodes = [copy.deepcopy(n) for n in nodes]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
