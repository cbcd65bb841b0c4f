"""``tryon build-engine`` against a fake ``tensorrt`` (10 and 11): version dispatch, flags, errors, header.

The real TensorRT is exercised only by the ``trt``-marked tests (skipped without it).
"""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("onnx")
pytest.importorskip("torch")

from fake_trt import FakeTrt  # noqa: E402

from engine_build.export import export_graphs  # noqa: E402
from engine_build.trt_builder import TrtBuildError, build_engine, main  # noqa: E402
from realtime.artifacts import ArtifactMismatchError  # noqa: E402
from realtime.backends.engine_file import read_engine_file  # noqa: E402
from realtime.backends.trt_version import BuildPlan, TrtApi, TrtVersionError, fp32_tail_layers  # noqa: E402
from realtime.checkpoint import load_model  # noqa: E402

GPU = ("NVIDIA GeForce RTX 3080", "8.6")


@pytest.fixture(scope="module")
def onnx_graphs(peaked_checkpoint, tmp_path_factory):
    net, _, _ = load_model(peaked_checkpoint)
    out = tmp_path_factory.mktemp("onnx")
    fg, frame, frame16 = export_graphs(net, out, keypoints=True, fp16=True)
    return {"fg": fg, "fp32": frame, "fp16": frame16}


# ------------------------------------------------------------------ the version helper
DISPATCH = [
    # version, --fp16, ONNX precision -> strongly typed, FP16 flag, engine precision (None: refused)
    ("10.3.0", False, "fp32", (False, False, "fp32")),
    ("10.3.0", True, "fp32", (False, True, "fp16")),
    ("10.3.0", False, "fp16", (True, False, "fp16")),
    ("10.3.0", True, "fp16", (True, False, "fp16")),
    ("10.11.0", True, "fp32", (False, True, "fp16")),
    ("10.12.0", False, "fp32", (True, False, "fp32")),  # weak typing deprecated in 10.12
    ("10.12.0", True, "fp32", None),
    ("10.16.1", False, "fp16", (True, False, "fp16")),
    ("11.0.0", False, "fp32", (True, False, "fp32")),
    ("11.0.0", True, "fp32", None),
    ("11.0.0", False, "fp16", (True, False, "fp16")),
    ("11.0.0", True, "fp16", (True, False, "fp16")),
]


@pytest.mark.parametrize("version,fp16,onnx_precision,expect", DISPATCH)
def test_version_dispatch_table(version, fp16, onnx_precision, expect):
    api = TrtApi.for_module(FakeTrt(version))
    assert api.major == int(version.split(".")[0])
    if expect is None:
        with pytest.raises(TrtVersionError, match=r"\*_fp16\.onnx"):
            api.build_plan(fp16, onnx_precision)
        return
    plan = api.build_plan(fp16, onnx_precision)
    assert (plan.strongly_typed, plan.fp16_flag, plan.precision) == expect


def test_network_flags_per_version():
    trt10, trt11 = FakeTrt("10.0.1"), FakeTrt("11.1.0")
    assert int(trt10.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 1  # NvInfer.h: kSTRONGLY_TYPED = 1
    typed = BuildPlan(strongly_typed=True, fp16_flag=False, precision="fp16")
    assert TrtApi.for_module(trt10).network_flags(typed) == 1 << 1 == 2
    assert TrtApi.for_module(trt10).network_flags(BuildPlan(False, True, "fp16")) == 0
    assert TrtApi.for_module(trt11).network_flags(typed) == 0  # always strongly typed; flag ignored


def test_tensorrt_older_than_10_is_refused():
    with pytest.raises(TrtVersionError, match="TensorRT >= 10"):
        TrtApi.for_module(FakeTrt("8.6.1"))


# ------------------------------------------------------------------ building
def test_fake_parser_behaves_like_onnx_tensorrt(onnx_graphs):
    """The fake must not share the code's assumptions: no Constant layers, counter-named or unnamed
    helpers, INT64 shape tensors."""
    import onnx

    trt = FakeTrt("10.3.0.26")
    network = trt.Builder(None).create_network(0)
    trt.OnnxParser(network, None).parse(onnx_graphs["fp32"].read_bytes())
    model = onnx.load(str(onnx_graphs["fp32"]))
    node_names = {n.name for n in model.graph.node}
    consts = {n.name for n in model.graph.node if n.op_type == "Constant"}
    layer_names = [la.name for la in network.layers]
    assert consts and not consts & set(layer_names)
    helpers = [n for n in layer_names if n not in node_names]
    assert any(n.startswith("(Unnamed Layer*") for n in helpers)
    assert any(n.startswith("ONNXTRT_") for n in helpers)
    int64 = {la.name for la in network.layers if any(la.get_output(k).dtype == trt.DataType.INT64
                                                     for k in range(la.num_outputs))}
    assert {"/Shape", "/Slice", "/Concat"} <= int64


def test_trt10_fp16_flag_pins_only_the_float_tail_by_type_and_dtype(onnx_graphs, tmp_path):
    trt = FakeTrt("10.3.0.26")
    res = build_engine(onnx_graphs["fp32"], tmp_path, fp16=True, workspace_mb=64, trt=trt, gpu=GPU)
    assert trt.build_errors == []
    assert res.path.name == "glasses_64_frame_fp16_sm86_trt10.engine"
    config, network = trt.configs[0], trt.networks[0]
    assert network.flags == 0
    assert {f.name for f in config.flags} == {"FP16", "OBEY_PRECISION_CONSTRAINTS"}
    assert config.pools[trt.MemoryPoolType.WORKSPACE] == 64 << 20
    pinned = [la for la in network.layers if la.precision_is_set]
    assert res.fp32_layers_pinned == len(pinned) > 0
    floating = (trt.DataType.FLOAT, trt.DataType.HALF)
    for la in pinned:  # float compute layers only, every output pinned too
        assert la.type.name in ("ACTIVATION", "ELEMENTWISE", "UNARY", "SOFTMAX", "REDUCE", "MATRIX_MULTIPLY"), la.name
        assert all(la.get_output(k).dtype in floating for k in range(la.num_outputs)), la.name
        assert la.precision == trt.float32 and la.output_types == {k: trt.float32 for k in range(la.num_outputs)}
    types = {la.type.name for la in pinned}
    assert {"ACTIVATION", "SOFTMAX", "MATRIX_MULTIPLY", "ELEMENTWISE"} <= types  # sigmoid, beta, soft-argmax
    producer = {la.get_output(k).name: la for la in network.layers for k in range(la.num_outputs)}
    act = producer["heatmaps"]
    while act.type.name != "ACTIVATION":  # the exporter's identity Cast sits after the sigmoid
        act = producer[act.get_input(0).name]
    assert act.precision_is_set
    assert sorted(la.name for la in pinned) == sorted(["/Mul", "/MatMul", "/MatMul_1", "/Softmax", act.name])
    # nothing upstream of the head is pinned: no convolution, and not the CBAM sigmoids
    assert not any(la.name.startswith("/frame/fusion") for la in pinned)


def test_trt10_fp16_flag_selection_is_independent_of_layer_names(onnx_graphs):
    """Rename every layer (as a parser that names helpers by counter may): the same layers are chosen."""
    trt = FakeTrt("10.3.0.26")
    network = trt.Builder(None).create_network(0)
    trt.OnnxParser(network, None).parse(onnx_graphs["fp32"].read_bytes())
    before = fp32_tail_layers(trt, network)
    for i, la in enumerate(network.layers):
        la.name = f"(Unnamed Layer* {i})"
    assert fp32_tail_layers(trt, network) == before and before


def test_pinning_a_shape_layer_fails_the_fake_build_as_in_tensorrt(onnx_graphs):
    """What the old name-based pinning did (the /Shape, /Slice, /Concat nodes are in the FP16 export's
    float32 set): the fake builder refuses it, as TensorRT does under OBEY_PRECISION_CONSTRAINTS."""
    trt = FakeTrt("10.3.0.26")
    builder = trt.Builder(None)
    network = builder.create_network(0)
    trt.OnnxParser(network, None).parse(onnx_graphs["fp32"].read_bytes())
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    network.layer("/Shape").precision = trt.float32
    assert builder.build_serialized_network(network, config) is None
    assert "precision constraint FLOAT cannot be met for an output of type INT64" in trt.build_errors[0]


@pytest.mark.filterwarnings("error::DeprecationWarning")
@pytest.mark.parametrize("graph", ["fp32", "fp16"])
def test_trt10_12_builds_strongly_typed_without_deprecated_setters(onnx_graphs, tmp_path, graph):
    trt = FakeTrt("10.12.0.36")
    res = build_engine(onnx_graphs[graph], tmp_path, trt=trt, gpu=GPU)
    assert trt.deprecations == [] and trt.build_errors == []
    assert trt.networks[0].flags == 1 << 1 and trt.configs[0].flags == set()
    assert res.header["builder"]["strongly_typed"] and not res.header["builder"]["fp16_flag"]
    with pytest.raises(TrtVersionError, match="deprecates weak typing.*_fp16.onnx"):
        build_engine(onnx_graphs["fp32"], tmp_path / "y", fp16=True, trt=trt, gpu=GPU)


def test_fake_warns_on_weak_typing_from_10_12():
    """So that the test above could fail: the fake's setters do warn on 10.12."""
    trt = FakeTrt("10.12.0.36")
    config = trt.Builder(None).create_builder_config()
    with pytest.warns(DeprecationWarning, match="Deprecated in TensorRT 10.12"):
        config.set_flag(trt.BuilderFlag.FP16)


def test_one_tensorrt_logger_per_process(onnx_graphs, tmp_path):
    trt = FakeTrt("10.3.0.26")
    build_engine(onnx_graphs["fg"], tmp_path, trt=trt, gpu=GPU)
    build_engine(onnx_graphs["fp16"], tmp_path, trt=trt, gpu=GPU)
    assert len(trt.loggers) == 1


def test_old_fp16_graph_with_half_resize_scales_fails_the_fake_build(onnx_graphs, tmp_path):
    """The fake builder refuses a shape tensor computed from Half (what the old FP16 pass wrote:
    fp16 Constant -> Cast(float) -> Resize scales); the fixed export builds."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(onnx_graphs["fp16"]))
    node = next(n for n in model.graph.node if n.op_type == "Resize")
    const = next(n for n in model.graph.node if n.output[0] == node.input[2])
    arr = numpy_helper.to_array(const.attribute[0].t)
    const.attribute[0].t.CopyFrom(numpy_helper.from_array(arr.astype("float16")))
    cast = onnx.helper.make_node("Cast", [const.output[0]], ["scales_f32"], to=TensorProto.FLOAT, name="old_cast")
    node.input[2] = "scales_f32"
    model.graph.node.insert(list(model.graph.node).index(node), cast)
    bad = tmp_path / "old_fp16.onnx"
    onnx.save(model, str(bad))
    trt = FakeTrt("10.8.0")
    with pytest.raises(TrtBuildError, match="failed to build"):
        build_engine(bad, tmp_path, trt=trt, gpu=GPU)
    assert "shape tensor input computed from Half" in trt.build_errors[0]


def test_trt11_builds_the_fp16_graph_strongly_typed(onnx_graphs, tmp_path):
    trt = FakeTrt("11.0.0.5")
    res = build_engine(onnx_graphs["fp16"], tmp_path / "x.engine", trt=trt, gpu=GPU)
    assert res.path == tmp_path / "x.engine"
    assert trt.networks[0].flags == 0 and trt.configs[0].flags == set()
    assert res.header["precision"] == "fp16" and res.header["builder"]["strongly_typed"]


def test_trt11_refuses_fp16_flag_with_fp32_graph(onnx_graphs, tmp_path):
    with pytest.raises(TrtVersionError, match="strongly typed.*_fp16.onnx"):
        build_engine(onnx_graphs["fp32"], tmp_path, fp16=True, trt=FakeTrt("11.0.0"), gpu=GPU)
    assert list(tmp_path.iterdir()) == []


def test_trt10_builds_the_fp16_graph_strongly_typed(onnx_graphs, tmp_path):
    trt = FakeTrt("10.8.0")
    res = build_engine(onnx_graphs["fp16"], tmp_path, trt=trt, gpu=GPU)
    assert trt.build_errors == []  # no shape tensor from Half, no precision set on a typed network
    assert trt.networks[0].flags == 1 << 1 and trt.configs[0].flags == set()
    assert res.path.name == "glasses_64_frame_fp16_sm86_trt10.engine"


def test_engine_header_describes_the_engine(onnx_graphs, tmp_path):
    res = build_engine(onnx_graphs["fg"], tmp_path, trt=FakeTrt("10.3.0.26"), gpu=GPU)
    header, blob = read_engine_file(res.path)
    assert blob.startswith(b"FAKEPLAN")
    assert res.path.name == "glasses_64_fg_fp32_sm86_trt10.engine"
    assert header["tensorrt_version"] == "10.3.0.26"
    assert (header["gpu_name"], header["compute_capability"]) == GPU
    assert (header["category"], header["input_size"], header["graph"], header["precision"]) == \
        ("glasses", 64, "fg", "fp32")
    assert header["io"] == [{"name": "foreground", "mode": "input", "shape": [1, 4, 64, 64], "dtype": "float32"},
                            {"name": "f_f", "mode": "output", "shape": [1, 64, 2, 2], "dtype": "float32"}]
    assert len(header["source_onnx_sha256"]) == 64
    assert header["artifact"]["model_config"]["input_size"] == 64 and header["build_time"]


def test_parser_errors_are_reported_in_full(onnx_graphs, tmp_path):
    trt = FakeTrt("10.3.0", parse_errors=[(0, "unsupported attribute"), (5, "bad weights")])
    with pytest.raises(TrtBuildError, match="2 error") as info:
        build_engine(onnx_graphs["fp32"], tmp_path, trt=trt, gpu=GPU)
    import onnx

    nodes = onnx.load(str(onnx_graphs["fp32"])).graph.node
    msg = str(info.value)
    for idx, desc in ((0, "unsupported attribute"), (5, "bad weights")):
        assert f"node {idx} {nodes[idx].name!r} ({nodes[idx].op_type})" in msg and desc in msg


def test_failed_build_is_an_error(onnx_graphs, tmp_path):
    with pytest.raises(TrtBuildError, match="failed to build"):
        build_engine(onnx_graphs["fg"], tmp_path, trt=FakeTrt("10.3.0", build_ok=False), gpu=GPU)


def test_timing_cache_loaded_and_saved(onnx_graphs, tmp_path):
    cache = tmp_path / "timing.cache"
    trt = FakeTrt("10.3.0")
    build_engine(onnx_graphs["fg"], tmp_path, trt=trt, gpu=GPU, timing_cache=cache)
    assert trt.cache_inputs == [b""] and cache.read_bytes() == b"|tuned"
    trt2 = FakeTrt("10.3.0")
    build_engine(onnx_graphs["fg"], tmp_path, trt=trt2, gpu=GPU, timing_cache=cache)
    assert trt2.cache_inputs == [b"|tuned"] and cache.read_bytes() == b"|tuned|tuned"


def test_mismatching_timing_cache_is_replaced(onnx_graphs, tmp_path, caplog):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"from another GPU")
    trt = FakeTrt("10.3.0", cache_fits=False)
    build_engine(onnx_graphs["fg"], tmp_path, trt=trt, gpu=GPU, timing_cache=cache)
    assert trt.cache_inputs == [b"from another GPU", b""]
    assert "does not fit" in caplog.text and cache.read_bytes() == b"|tuned"


def test_onnx_without_tryon_metadata_is_refused(onnx_graphs, tmp_path):
    import onnx

    model = onnx.load(str(onnx_graphs["fg"]))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(ArtifactMismatchError, match="no tryon metadata.*tryon export"):
        build_engine(bare, tmp_path, trt=FakeTrt("10.3.0"), gpu=GPU)


def test_cli_builds_with_the_installed_tensorrt(onnx_graphs, tmp_path, monkeypatch, capsys):
    import engine_build.trt_builder as tb

    monkeypatch.setitem(sys.modules, "tensorrt", FakeTrt("10.3.0.26"))
    monkeypatch.setattr(tb, "device_identity", lambda device=0: GPU)
    assert main(["--onnx", str(onnx_graphs["fp32"]), "--out", str(tmp_path), "--fp16", "--workspace", "128"]) == 0
    out = capsys.readouterr().out
    assert "glasses_64_frame_fp16_sm86_trt10.engine" in out and "TensorRT 10.3.0.26" in out
    assert "heatmaps" in out and "keypoints" in out
    assert "glasses_64_frame_fp16_sm86_trt10.engine.json" in out and "trtexec --loadEngine=" in out
    header, _ = read_engine_file(tmp_path / "glasses_64_frame_fp16_sm86_trt10.engine")
    assert header["builder"]["fp16_flag"] and header["builder"]["workspace_mb"] == 128
    assert json.loads(json.dumps(header)) == header  # plain JSON
