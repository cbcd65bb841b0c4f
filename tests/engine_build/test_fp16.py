"""FP16 conversion: graph structure on a hand-made graph and on the exported network, and the error bound."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from engine_build.export import KeypointErrorStats, export_graphs, verification_pairs  # noqa: E402
from engine_build.fp16 import (convert_to_fp16, emulate_fp16, fp32_node_indices, half_fed_shape_inputs,  # noqa: E402
                               model_precision, shape_chain_nodes)
from realtime.artifacts import HEATMAPS, KEYPOINTS  # noqa: E402
from realtime.backends.onnx_backend import OnnxBackend  # noqa: E402
from realtime.checkpoint import load_model  # noqa: E402
from realtime.codec import HeatmapCodec  # noqa: E402
from realtime.preprocess import background_input, foreground_input  # noqa: E402

FP16_LIMIT_PX = 1.0


def _session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _toy_model(weight_scale: float = 0.1) -> onnx.ModelProto:
    """x (1,2,4,4) -> Conv -> Resize(x2, scales) -> Sigmoid -> heatmaps; Sigmoid -> Mul(1000) -> kept output."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.normal(size=(2, 2, 3, 3)) * weight_scale).astype(np.float32), "w")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    beta = numpy_helper.from_array(np.array(1000.0, np.float32), "beta")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest", name="resize"),
        helper.make_node("Sigmoid", ["r"], [HEATMAPS], name="sigmoid"),
        helper.make_node("Mul", [HEATMAPS, "beta"], ["logits"], name="beta_mul"),
    ]
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info(HEATMAPS, TensorProto.FLOAT, [1, 2, 8, 8]),
                               helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [w, scales, beta])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_toy_graph_conversion_keeps_io_and_unsafe_nodes_float32():
    model = _toy_model()
    half, kept = convert_to_fp16(model)
    # The activation, everything downstream of heatmaps, and the light Resize that only feeds them.
    assert set(kept) == {"resize", "sigmoid", "beta_mul"}
    inits = {t.name: t.data_type for t in half.graph.initializer}
    assert inits == {"w": TensorProto.FLOAT16, "scales": TensorProto.FLOAT, "beta": TensorProto.FLOAT}
    ops = [n.op_type for n in half.graph.node]
    assert ops.count("Cast") == 2  # x -> half before the conv, conv output -> float
    for value in [*half.graph.input, *half.graph.output]:
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT
    assert model_precision(half) == "fp16" and model_precision(model) == "fp32"
    x = np.random.default_rng(1).normal(size=(1, 2, 4, 4)).astype(np.float32)
    ref = _session(model).run(None, {"x": x})
    got = _session(half).run(None, {"x": x})
    assert all(out.dtype == np.float32 for out in got)
    np.testing.assert_allclose(got[0], ref[0], atol=2e-3)
    np.testing.assert_allclose(got[1], ref[1], atol=2.0)  # beta * (heatmap error): still float32 arithmetic


def test_initializer_beyond_float16_range_is_an_error():
    with pytest.raises(ValueError, match="initializer 'w'.*float16 max"):
        convert_to_fp16(_toy_model(weight_scale=1e6))


def test_emulation_rounds_every_half_activation():
    """x -> Relu -> Mul(3) -> Add(1/3): emulated = numpy with float16 storage after every op."""
    c3 = numpy_helper.from_array(np.array(3.0, np.float32), "c3")
    third = numpy_helper.from_array(np.array(1.0 / 3.0, np.float32), "third")
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "c3"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "third"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])], [c3, third])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    half, kept = convert_to_fp16(model, keep_downstream_of=())
    assert kept == []
    x = np.random.default_rng(2).uniform(-2, 40, 64).astype(np.float32)
    h = np.float16
    expect = (h(np.maximum(h(x), 0) * h(3.0)) + h(1.0 / 3.0)).astype(h).astype(np.float32)
    got = _session(emulate_fp16(half)).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, expect)
    exact = _session(model).run(None, {"x": x})[0]
    assert np.abs(got - exact).max() > 1e-3  # the rounding is really there


@pytest.fixture(scope="module")
def graphs(peaked_checkpoint, tmp_path_factory):
    net, cfg, _ = load_model(peaked_checkpoint)
    out = tmp_path_factory.mktemp("fp16")
    fg_path, frame_path, fp16_path = export_graphs(net, out, keypoints=True, fp16=True)
    return fg_path, frame_path, fp16_path


def test_exported_fp16_graph_structure(graphs):
    _, frame_path, fp16_path = graphs
    fp32 = onnx.load(str(frame_path))
    half = onnx.load(str(fp16_path))
    kept = set(fp32_node_indices(fp32))
    kept_ops = {fp32.graph.node[i].op_type for i in kept}
    assert {"Sigmoid", "Softmax", "MatMul"} <= kept_ops  # activation + soft-argmax head
    assert "Conv" not in kept_ops
    n_half = sum(t.data_type == TensorProto.FLOAT16 for t in half.graph.initializer)
    assert n_half > 0.9 * len(half.graph.initializer)
    onnx.checker.check_model(half)


def test_exported_fp16_graph_feeds_no_shape_input_from_a_half_tensor(graphs):
    """TensorRT computes Resize scales/sizes and Shape/Slice/Concat/ConstantOfShape chains as shape
    tensors, which may not start from a Half tensor. In the real export every Resize ``scales`` is a
    Constant: it must stay a float32 Constant read directly (not a Cast of an fp16 Constant)."""
    _, _, fp16_path = graphs
    half = onnx.load(str(fp16_path))
    assert half_fed_shape_inputs(half) == []
    producer = {o: n for n in half.graph.node for o in n.output}
    inits = {t.name: t.data_type for t in half.graph.initializer}
    resizes = [n for n in half.graph.node if n.op_type == "Resize"]
    assert len(resizes) >= 4
    for node in resizes:
        for name in node.input[1:]:
            if not name:
                continue
            src = producer.get(name)
            if src is None:
                assert inits[name] == TensorProto.FLOAT, name
                continue
            assert src.op_type == "Constant", f"{node.name} input {name!r} comes from a {src.op_type}"
            assert src.attribute[0].t.data_type == TensorProto.FLOAT, name
    ops = {n.op_type for n in half.graph.node}
    assert {"Shape", "Slice", "ConstantOfShape"} <= ops  # the chains the check walks are really there


def test_half_constant_feeding_resize_scales_is_reported():
    """The checker catches the graph the old pass wrote: fp16 Constant -> Cast(float) -> Resize scales."""
    scales = helper.make_tensor("s", TensorProto.FLOAT16, [4], np.array([1, 1, 2, 2], np.float16).view(np.uint16),
                                raw=False)
    nodes = [helper.make_node("Constant", [], ["s16"], value=scales, name="const"),
             helper.make_node("Cast", ["s16"], ["s32"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Resize", ["x", "", "s32"], ["y"], mode="nearest", name="resize")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])])
    bad = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    found = half_fed_shape_inputs(bad)
    assert len(found) == 1 and "s16 (float16) feeds Resize 'resize' input 2" in found[0]


def test_constant_scales_and_shape_chains_stay_float32_in_conversion():
    """As torch exports it: Resize scales from a Constant, a Shape -> Slice -> Concat -> Reshape chain."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.normal(size=(2, 2, 3, 3)) * 0.1).astype(np.float32), "w")
    i64 = lambda name, v: helper.make_node("Constant", [], [name], name=name,  # noqa: E731
                                           value=numpy_helper.from_array(np.array(v, np.int64)))
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Constant", [], ["scales"], name="scales_const",
                         value=numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32))),
        helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest", name="resize"),
        helper.make_node("Shape", ["r"], ["shp"], name="shape"),
        i64("st", [0]), i64("en", [2]), i64("tail", [-1]),
        helper.make_node("Slice", ["shp", "st", "en"], ["head"], name="slice"),
        helper.make_node("Concat", ["head", "tail"], ["newshape"], axis=0, name="concat"),
        helper.make_node("Reshape", ["r", "newshape"], ["y"], name="reshape"),
    ]
    graph = helper.make_graph(nodes, "chains", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 64])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    half, kept = convert_to_fp16(model, keep_downstream_of=())
    assert half_fed_shape_inputs(half) == []
    assert {"scales_const", "shape", "slice", "concat"} <= set(kept) and "conv" not in kept
    const = next(n for n in half.graph.node if n.name == "scales_const")
    assert const.attribute[0].t.data_type == TensorProto.FLOAT
    resize = next(n for n in half.graph.node if n.name == "resize")
    assert resize.input[2] == "scales"  # read directly, no Cast in between
    x = rng.normal(size=(1, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(_session(half).run(None, {"x": x})[0], _session(model).run(None, {"x": x})[0],
                               atol=5e-3)


def test_fp16_keypoint_error_bound_on_synthetic_data(graphs):
    """FP16 (emulated float16 storage) vs FP32 keypoints on 12 synthetic inputs, trained (peaked) tiny model."""
    _, frame_path, fp16_path = graphs
    emulated = fp16_path.with_name("emulated.onnx")
    emulated.write_bytes(emulate_fp16(onnx.load(str(fp16_path))).SerializeToString())
    backends = [OnnxBackend(p, providers=["CPUExecutionProvider"], intra_op_threads=1)
                for p in (frame_path, emulated)]
    cfg = backends[0].info.config
    codec = HeatmapCodec(cfg.codec)
    pts = [[], []]
    for fg, bg in verification_pairs(cfg, samples=12, seed=3)[0]:
        for k, backend in enumerate(backends):
            backend.set_foreground(foreground_input(fg, cfg.input_size)[0])
            pts[k].append(codec.decode(backend.infer(background_input(bg))).pts_xy[0])
    stats = KeypointErrorStats.between(np.stack(pts[1]), np.stack(pts[0]))
    assert stats.n == 48
    assert stats.max_px <= FP16_LIMIT_PX, str(stats)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy (TorchScript) ONNX exporter
def test_soft_argmax_stays_exact_only_with_the_keep_rules():
    """SPEC section 2: beta * heatmap (beta = 1000) must stay float32. The codec's soft-argmax (paper
    settings: g = 20, beta = 1000, 224 px) exported alone: with the keep rules the FP16 graph decodes
    bit for bit like float32; converted naively (everything half: heatmap step 2^-11, logit step 0.5)
    it is off by about 0.03 px on these Gaussians."""
    import io

    import torch

    from realtime.codec import HeatmapCodec
    from realtime.config import CodecConfig

    codec = HeatmapCodec(CodecConfig(refine="none"))

    class Decode(torch.nn.Module):
        def forward(self, hm):
            return codec.decode_torch(hm)

    size = 224
    buf = io.BytesIO()
    torch.onnx.export(Decode(), (torch.zeros(1, 4, size, size),), buf, dynamo=False, opset_version=17,
                      input_names=[HEATMAPS], output_names=[KEYPOINTS])
    fp32 = onnx.load_from_string(buf.getvalue())
    pts = np.random.default_rng(0).uniform(30, 190, (4, 2))
    hm = codec.encode(pts, (size, size))[None] * np.float32(0.93)
    ref = _session(fp32).run(None, {HEATMAPS: hm})[0]
    careful, _ = convert_to_fp16(fp32)
    naive, kept = convert_to_fp16(fp32, keep_ops=(), keep_downstream_of=())
    assert set(kept) == {fp32.graph.node[i].name for i in shape_chain_nodes(fp32)}  # shape chains only
    err_careful = np.abs(_session(emulate_fp16(careful)).run(None, {HEATMAPS: hm})[0] - ref).max()
    err_naive = np.abs(_session(emulate_fp16(naive)).run(None, {HEATMAPS: hm})[0] - ref).max()
    assert err_careful <= 1e-4
    assert err_naive >= 0.01, err_naive


def test_fp16_graph_outputs_heatmaps_computed_in_float32(graphs):
    """The heatmap activation (and the exporter's identity Cast after it) stays float32: the
    heatmaps are not stored in half on their way out (a 2^-11 step, 0.5 after beta = 1000)."""
    _, _, fp16_path = graphs
    half = onnx.load(str(fp16_path))
    sess = _session(emulate_fp16(half))
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in half.graph.input}
    rng = np.random.default_rng(4)
    hm = sess.run([HEATMAPS], {k: rng.normal(size=v).astype(np.float32) for k, v in shapes.items()})[0]
    on_half_grid = hm == hm.astype(np.float16).astype(np.float32)
    assert on_half_grid.mean() < 0.5, f"{on_half_grid.mean():.0%} of heatmap values are float16 values"
