"""The TFLite -> torch converter (training/teacher/tflite_convert.py) on a small graph built here with
the flatbuffer schema: every operator BlazeFace uses, TFLite's asymmetric SAME padding, float16
weights behind DEQUANTIZE, NHWC pads / reshapes / concatenations; checked against a plain numpy
reading of TFLite's NHWC semantics. Needs the ``tflite`` schema package (``pip install -e .[convert]``)."""

from __future__ import annotations

import numpy as np
import pytest

tflite = pytest.importorskip("tflite", reason="the converter's tflite schema package is not installed "
                                                "(pip install -e .[convert])")
torch = pytest.importorskip("torch")

from training.teacher.tflite_convert import read_tflite, torch_module  # noqa: E402


def _build(path, tensors, ops, inputs, outputs):
    """Write a one-subgraph .tflite: tensors = [(name, shape, type name, bytes or None)],
    ops = [(BuiltinOperator name, inputs, outputs, options builder or None, BuiltinOptions name)]."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    ttype = vars(tflite.TensorType)
    buffers = []
    for _, _, _, data in [("", (), "", None)] + tensors:  # buffer 0: the empty one
        d = b.CreateNumpyVector(np.frombuffer(data, np.uint8)) if data else None
        tflite.BufferStart(b)
        if d is not None:
            tflite.BufferAddData(b, d)
        buffers.append(tflite.BufferEnd(b))
    toffs = []
    for i, (name, shape, typ, _) in enumerate(tensors):
        n = b.CreateString(name)
        s = b.CreateNumpyVector(np.array(shape, np.int32))
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, s)
        tflite.TensorAddType(b, ttype[typ])
        tflite.TensorAddBuffer(b, i + 1)
        tflite.TensorAddName(b, n)
        toffs.append(tflite.TensorEnd(b))
    kinds = sorted({op[0] for op in ops})
    codes = []
    for k in kinds:
        tflite.OperatorCodeStart(b)
        code = vars(tflite.BuiltinOperator)[k]
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        codes.append(tflite.OperatorCodeEnd(b))
    ooffs = []
    for kind, ins, outs, opt, opt_name in ops:
        o = opt(b) if opt else None
        iv, ov = b.CreateNumpyVector(np.array(ins, np.int32)), b.CreateNumpyVector(np.array(outs, np.int32))
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, kinds.index(kind))
        tflite.OperatorAddInputs(b, iv)
        tflite.OperatorAddOutputs(b, ov)
        if o is not None:
            tflite.OperatorAddBuiltinOptionsType(b, vars(tflite.BuiltinOptions)[opt_name])
            tflite.OperatorAddBuiltinOptions(b, o)
        ooffs.append(tflite.OperatorEnd(b))

    def table_vector(offs):
        b.StartVector(4, len(offs), 4)
        for off in reversed(offs):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    tv, ov = table_vector(toffs), table_vector(ooffs)
    iv, outv = b.CreateNumpyVector(np.array(inputs, np.int32)), b.CreateNumpyVector(np.array(outputs, np.int32))
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tv)
    tflite.SubGraphAddInputs(b, iv)
    tflite.SubGraphAddOutputs(b, outv)
    tflite.SubGraphAddOperators(b, ov)
    sg = tflite.SubGraphEnd(b)
    sgv, cv, bv = table_vector([sg]), table_vector(codes), table_vector(buffers)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, cv)
    tflite.ModelAddSubgraphs(b, sgv)
    tflite.ModelAddBuffers(b, bv)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path


def _conv_opts(stride, padding, act="NONE", depthwise=False):
    def make(b):
        p = "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions"
        getattr(tflite, p + "Start")(b)
        getattr(tflite, p + "AddPadding")(b, vars(tflite.Padding)[padding])
        getattr(tflite, p + "AddStrideH")(b, stride)
        getattr(tflite, p + "AddStrideW")(b, stride)
        getattr(tflite, p + "AddDilationHFactor")(b, 1)
        getattr(tflite, p + "AddDilationWFactor")(b, 1)
        getattr(tflite, p + "AddFusedActivationFunction")(b, vars(tflite.ActivationFunctionType)[act])
        if depthwise:
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
        return getattr(tflite, p + "End")(b)
    return make


def _pool_opts(k, stride, padding):
    def make(b):
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, vars(tflite.Padding)[padding])
        tflite.Pool2DOptionsAddStrideH(b, stride)
        tflite.Pool2DOptionsAddStrideW(b, stride)
        tflite.Pool2DOptionsAddFilterHeight(b, k)
        tflite.Pool2DOptionsAddFilterWidth(b, k)
        return tflite.Pool2DOptionsEnd(b)
    return make


def _reshape_opts(shape):
    def make(b):
        v = b.CreateNumpyVector(np.array(shape, np.int32))
        tflite.ReshapeOptionsStart(b)
        tflite.ReshapeOptionsAddNewShape(b, v)
        return tflite.ReshapeOptionsEnd(b)
    return make


def _concat_opts(axis):
    def make(b):
        tflite.ConcatenationOptionsStart(b)
        tflite.ConcatenationOptionsAddAxis(b, axis)
        return tflite.ConcatenationOptionsEnd(b)
    return make


# --- numpy reading of TFLite's NHWC semantics ----------------------------------------

def _same(size, k, s):
    out = -(-size // s)
    total = max(0, (out - 1) * s + k - size)
    return total // 2, total - total // 2


def _np_conv(x, w, b, s, depthwise=False):
    kh, kw = w.shape[1:3]
    (t, bo), (l, r) = _same(x.shape[1], kh, s), _same(x.shape[2], kw, s)
    xp = np.pad(x, ((0, 0), (t, bo), (l, r), (0, 0)))
    oh, ow = -(-x.shape[1] // s), -(-x.shape[2] // s)
    out = np.zeros((1, oh, ow, w.shape[3] if depthwise else w.shape[0]))
    for y in range(oh):
        for xx in range(ow):
            patch = xp[0, y * s:y * s + kh, xx * s:xx * s + kw, :]
            out[0, y, xx] = (patch * w[0]).sum((0, 1)) if depthwise else np.einsum("ijc,oijc->o", patch, w)
    return out + b


def _np_pool(x, k, s, same):
    (t, bo), (l, r) = (_same(x.shape[1], k, s), _same(x.shape[2], k, s)) if same else ((0, 0), (0, 0))
    xp = np.pad(x, ((0, 0), (t, bo), (l, r), (0, 0)), constant_values=-np.inf)
    oh, ow = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    return np.array([[[xp[0, y * s:y * s + k, xx * s:xx * s + k].max((0, 1)) for xx in range(ow)]
                      for y in range(oh)]])


def test_a_small_graph_of_every_supported_operator_matches_tflite_semantics(tmp_path):
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(3, 3, 3, 2)).astype(np.float16)  # OHWI, stored as float16
    b1 = rng.normal(size=3).astype(np.float32)
    wd = rng.normal(size=(1, 3, 3, 3)).astype(np.float32)  # 1HWC
    bd = rng.normal(size=3).astype(np.float32)
    pads = np.array([[0, 0], [0, 0], [0, 0], [0, 1]], np.int32)  # one zero channel, as BlazeFace's blocks do
    tensors = [("input", (1, 8, 8, 2), "FLOAT32", None),            # 0
               ("w1", w1.shape, "FLOAT16", w1.tobytes()),           # 1
               ("w1_dq", w1.shape, "FLOAT32", None),                # 2
               ("b1", b1.shape, "FLOAT32", b1.tobytes()),           # 3
               ("conv", (1, 4, 4, 3), "FLOAT32", None),             # 4
               ("wd", wd.shape, "FLOAT32", wd.tobytes()),           # 5
               ("bd", bd.shape, "FLOAT32", bd.tobytes()),           # 6
               ("dw", (1, 4, 4, 3), "FLOAT32", None),               # 7
               ("add", (1, 4, 4, 3), "FLOAT32", None),              # 8
               ("pads", (4, 2), "INT32", pads.tobytes()),           # 9
               ("padded", (1, 4, 4, 4), "FLOAT32", None),           # 10
               ("pool_valid", (1, 2, 2, 4), "FLOAT32", None),       # 11
               ("pool_same", (1, 2, 2, 4), "FLOAT32", None),        # 12
               ("flat_a", (1, 8, 2), "FLOAT32", None),              # 13
               ("flat_b", (1, 8, 2), "FLOAT32", None),              # 14
               ("flat", (1, 16, 2), "FLOAT32", None),               # 15
               ("stacked", (1, 2, 2, 8), "FLOAT32", None)]          # 16
    ops = [("DEQUANTIZE", [1], [2], None, None),
           ("CONV_2D", [0, 2, 3], [4], _conv_opts(2, "SAME", "RELU"), "Conv2DOptions"),  # 8 -> 4: pad 0 / 1
           ("DEPTHWISE_CONV_2D", [4, 5, 6], [7], _conv_opts(1, "SAME", depthwise=True), "DepthwiseConv2DOptions"),
           ("ADD", [4, 7], [8], None, None),
           ("PAD", [8, 9], [10], None, None),
           ("MAX_POOL_2D", [10], [11], _pool_opts(2, 2, "VALID"), "Pool2DOptions"),
           ("MAX_POOL_2D", [10], [12], _pool_opts(3, 2, "SAME"), "Pool2DOptions"),  # 4 -> 2: pad 0 / 1
           ("RESHAPE", [11], [13], _reshape_opts([1, 8, 2]), "ReshapeOptions"),
           ("RESHAPE", [12], [14], _reshape_opts([1, 8, 2]), "ReshapeOptions"),
           ("CONCATENATION", [13, 14], [15], _concat_opts(1), "ConcatenationOptions"),
           ("CONCATENATION", [11, 12], [16], _concat_opts(-1), "ConcatenationOptions")]
    path = _build(tmp_path / "small.tflite", tensors, ops, [0], [15, 16])

    graph = read_tflite(path)
    assert [op.kind for op in graph.ops][0] == "CONV_2D", "DEQUANTIZE of a constant is folded"
    assert graph.consts[2].dtype == np.float32 and np.array_equal(graph.consts[2], w1.astype(np.float32))
    module = torch_module(graph)

    x = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
    conv = np.maximum(_np_conv(x, w1.astype(np.float64), b1, 2), 0)
    add = conv + _np_conv(conv, wd, bd, 1, depthwise=True)
    padded = np.pad(add, pads)
    pv, ps = _np_pool(padded, 2, 2, False), _np_pool(padded, 3, 2, True)
    want_flat = np.concatenate([pv.reshape(1, 8, 2), ps.reshape(1, 8, 2)], 1)
    want_stacked = np.concatenate([pv, ps], 3)
    with torch.no_grad():
        flat, stacked = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))  # the module takes NCHW
    assert flat.shape == (1, 16, 2) and stacked.shape == (1, 2, 2, 8)  # outputs in TFLite's layout
    assert np.allclose(flat.numpy(), want_flat, atol=1e-4)
    assert np.allclose(stacked.numpy(), want_stacked, atol=1e-4)


def test_an_unsupported_operator_is_named(tmp_path):
    tensors = [("input", (1, 4), "FLOAT32", None), ("out", (1, 4), "FLOAT32", None)]
    path = _build(tmp_path / "softmax.tflite", tensors, [("SOFTMAX", [0], [1], None, None)], [0], [1])
    with pytest.raises(ValueError, match="softmax.tflite.*operator 0 is SOFTMAX"):
        read_tflite(path)
