"""``tryon export``: files and names, metadata round trip, keypoints output, verification failures, CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from engine_build.export import (  # noqa: E402
    ExportVerificationError,
    export_checkpoint,
    main,
    synthetic_backgrounds,
    verification_pairs,
)
from realtime.artifacts import HEATMAPS, KEYPOINTS, ArtifactMismatchError  # noqa: E402
from realtime.backends.onnx_backend import OnnxBackend, read_onnx_meta  # noqa: E402
from realtime.checkpoint import load_model
from realtime.codec import HeatmapCodec  # noqa: E402
from realtime.io import file_sha256  # noqa: E402
from realtime.preprocess import background_input, foreground_input  # noqa: E402


@pytest.fixture(scope="module")
def exported(peaked_checkpoint, tmp_path_factory):
    """The tiny model exported with the keypoints output and the FP16 graph (8 verification samples)."""
    out = tmp_path_factory.mktemp("export")
    return export_checkpoint(peaked_checkpoint, out, keypoints=True, fp16=True, samples=8, intra_op_threads=1)


def test_export_writes_named_files_and_report(exported):
    names = sorted(p.name for p in exported.out_dir.iterdir())
    assert names == ["export.json", "glasses_64_fg_fp32.onnx", "glasses_64_frame_fp16.onnx",
                     "glasses_64_frame_fp32.onnx"]
    report = json.loads((exported.out_dir / "export.json").read_text())
    assert report["fp32_vs_torch"]["max_px"] <= 0.1
    assert report["fp16_vs_fp32"]["max_px"] <= 1.0
    assert report["model_config"] == exported.config.to_dict()


def test_metadata_written_and_read_back(exported, peaked_checkpoint):
    _, cfg, _ = load_model(peaked_checkpoint)
    sha = file_sha256(peaked_checkpoint)
    expect = {exported.fg_path: ("fg", "fp32"), exported.frame_path: ("frame", "fp32"),
              exported.frame_fp16_path: ("frame", "fp16")}
    for path, (graph, precision) in expect.items():
        meta = read_onnx_meta(path)
        assert (meta.graph, meta.precision) == (graph, precision)
        assert meta.config() == cfg and meta.config_hash == cfg.hash()
        assert (meta.category, meta.input_size) == ("glasses", 64)
        assert meta.source_checkpoint_sha256 == sha
        assert meta.opset == 17 and meta.export_time and meta.tryon_version
        assert meta.corner_order == ["top_left", "top_right", "bottom_right", "bottom_left"]
        model = onnx.load(str(path))
        assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
        for value in [*model.graph.input, *model.graph.output]:  # static shapes, float32 I/O
            assert all(d.HasField("dim_value") for d in value.type.tensor_type.shape.dim)
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    frame = read_onnx_meta(exported.frame_path)
    assert frame.fg_graph == exported.fg_path.name and frame.outputs == [HEATMAPS, KEYPOINTS]
    assert read_onnx_meta(exported.frame_fp16_path).fp32_nodes  # the kept nodes are recorded


@pytest.mark.parametrize("which", ["frame_path", "frame_fp16_path"])
def test_keypoints_output_equals_plain_soft_argmax_decoding(exported, which):
    backend = OnnxBackend(getattr(exported, which), providers=["CPUExecutionProvider"], intra_op_threads=1)
    cfg = backend.info.config
    plain = HeatmapCodec(dataclasses.replace(cfg.codec, refine="none"))
    pairs, _ = verification_pairs(cfg, samples=3)
    for fg, bg in pairs:
        backend.set_foreground(foreground_input(fg, cfg.input_size)[0])
        out = backend.run_frame(background_input(bg))
        assert out[KEYPOINTS].shape == (1, 4, 2) and out[KEYPOINTS].dtype == np.float32
        np.testing.assert_allclose(out[KEYPOINTS], plain.decode(out[HEATMAPS]).pts_xy, atol=1e-3)


def test_failed_verification_leaves_nothing(peaked_checkpoint, tmp_path):
    with pytest.raises(ExportVerificationError, match="differ from PyTorch"):
        export_checkpoint(peaked_checkpoint, tmp_path, fp16=False, samples=2, fp32_tolerance_px=-1.0)
    assert list(tmp_path.iterdir()) == []  # not even the temporary folder


def test_fp16_over_tolerance_is_refused(peaked_checkpoint, tmp_path):
    with pytest.raises(ExportVerificationError, match="FP16 keypoints differ"):
        export_checkpoint(peaked_checkpoint, tmp_path, samples=2, fp16_tolerance_px=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_opset_below_17_refused(peaked_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="opset"):
        export_checkpoint(peaked_checkpoint, tmp_path, opset=13, samples=1)


def test_frame_graph_refuses_wrong_category(exported):
    with pytest.raises(ArtifactMismatchError, match="category 'glasses', requested 'hat'.*tryon export"):
        OnnxBackend(exported.frame_path, category="hat", providers=["CPUExecutionProvider"])


def test_cli_exports_from_a_strat_split(peaked_checkpoint, tmp_path, capsys):
    strat = pytest.importorskip("training.strat")
    split = tmp_path / "split"
    bgs = synthetic_backgrounds(3, 96, seed=5)
    fg = np.zeros((40, 80, 4), np.uint8)
    fg[8:32, 10:70] = (200, 30, 30, 255)
    with strat.StratWriter(split, "glasses") as writer:
        for i, bg in enumerate(bgs):
            init = np.array([[10, 8], [69, 8], [69, 31], [10, 31]], np.float32)
            final = init * 0.8 + np.float32(10 + i)
            writer.add(f"s{i}", bg, fg, init, final)
    out = tmp_path / "out"
    assert main(["--checkpoint", str(peaked_checkpoint), "--out", str(out), "--data", str(split), "--no-fp16",
                 "--samples", "3", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "glasses_64_frame_fp32.onnx" in text and "STRAT split" in text and "fp16" not in text.split("verified")[1]
    assert sorted(p.name for p in out.glob("*.onnx")) == ["glasses_64_fg_fp32.onnx", "glasses_64_frame_fp32.onnx"]


def test_cli_rejects_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="--checkpoint"):
        main(["--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path)])
