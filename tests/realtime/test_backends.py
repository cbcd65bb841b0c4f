"""Backends: parity on decoded keypoints, artifact metadata checks, the engine file format, TensorRT refusals."""

from __future__ import annotations

import hashlib
import json
import sys
import types

import numpy as np
import pytest

from realtime.artifacts import ArtifactMeta, ArtifactMismatchError, artifact_name, check_meta, parse_artifact_name
from realtime.backends.engine_file import (ENGINE_FORMAT, LEGACY_MAGIC, EngineFileError, check_engine_header,
                                           read_engine_file, read_engine_header, sidecar_path, write_engine_file)
from realtime.backends.trt_version import trt_version_key
from realtime.config import model_preset
from realtime.errors import BackendError

GPU_NAME, GPU_CC = "NVIDIA GeForce RTX 3080", "8.6"


def _meta(graph: str = "frame", category: str = "glasses", precision: str = "fp16") -> ArtifactMeta:
    cfg = model_preset("tiny", category)
    return ArtifactMeta(graph=graph, precision=precision, model_config=cfg.to_dict(),
                        fg_graph=artifact_name(category, cfg.input_size, "fg", "fp32") if graph == "frame" else "")


def _header(graph: str = "frame", category: str = "glasses", trt: str = "10.3.0.26", gpu: str = GPU_NAME,
            cc: str = GPU_CC) -> dict:
    meta = _meta(graph, category)
    return {"tensorrt_version": trt, "gpu_name": gpu, "compute_capability": cc, "category": category,
            "input_size": meta.input_size, "graph": graph, "precision": "fp16", "io": [],
            "source_onnx": f"/models/{artifact_name(category, meta.input_size, graph, 'fp16')}",
            "source_onnx_sha256": "0" * 64, "artifact": meta.to_dict(), "builder": {"fp16_flag": False},
            "build_time": "2026-01-01T00:00:00+00:00"}


# ------------------------------------------------------------------ engine file format
PLAN = b"\x00plan\xffbytes"


def test_engine_is_written_bare_with_a_json_sidecar(tmp_path):
    """trtexec --loadEngine / polygraphy read the .engine file as is: it holds the engine bytes only."""
    header = _header()
    path = write_engine_file(tmp_path / "a.engine", header, PLAN)
    assert path.read_bytes() == PLAN  # bare: nothing in front of, nothing after the engine
    side = sidecar_path(path)
    assert side.name == "a.engine.json"
    stored = json.loads(side.read_text())
    assert stored["format"] == ENGINE_FORMAT and stored["engine_file"] == "a.engine"
    assert stored["engine_nbytes"] == len(PLAN) and stored["engine_sha256"] == hashlib.sha256(PLAN).hexdigest()
    got, blob = read_engine_file(path)
    assert blob == PLAN and {k: got[k] for k in header} == header
    assert read_engine_header(path) == got


def _corrupt_sidecar(path, **change):
    side = sidecar_path(path)
    data = json.loads(side.read_text())
    data.update(change)
    side.write_text(json.dumps(data))


@pytest.mark.parametrize("damage,match", [
    (lambda p: sidecar_path(p).unlink(), r"a\.engine: its sidecar a\.engine\.json is missing.*tryon build-engine"
                                         r".*trtexec --loadEngine="),
    (lambda p: p.write_bytes(PLAN[:-3]), r"a\.engine\.json describes a 11-byte engine, .*a\.engine has 8 bytes"),
    (lambda p: p.write_bytes(PLAN[:-1] + b"X"), r"a\.engine: engine bytes do not match the sha256 in a\.engine\.json"),
    (lambda p: sidecar_path(p).write_text("{not json"), r"a\.engine\.json: not valid JSON"),
    (lambda p: sidecar_path(p).write_text("[1, 2]"), r"a\.engine\.json: must hold a JSON object"),
    (lambda p: _corrupt_sidecar(p, format="tryon-engine-v1"), r"a\.engine\.json: sidecar format 'tryon-engine-v1'"),
    (lambda p: p.write_bytes(LEGACY_MAGIC + b"\x10\x00\x00\x00{}" + PLAN),
     r"a\.engine: written by an older tryon \(JSON header inside.*trtexec"),
], ids=["no-sidecar", "truncated", "flipped-byte", "bad-json", "not-object", "format", "legacy-file"])
def test_engine_and_sidecar_mismatch_is_reported_naming_the_file(tmp_path, damage, match):
    path = write_engine_file(tmp_path / "a.engine", _header(), PLAN)
    damage(path)
    with pytest.raises(EngineFileError, match=match):
        read_engine_file(path)


def test_missing_engine_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="engine not found: .*nope.engine"):
        read_engine_header(tmp_path / "nope.engine")


# ------------------------------------------------------------------ metadata and names
def test_artifact_meta_props_round_trip():
    meta = _meta()
    props = meta.to_props()
    assert all(isinstance(v, str) for v in props.values())
    back = ArtifactMeta.from_props(props)
    assert back == meta and back.config() == model_preset("tiny", "glasses")
    assert json.loads(props["model_config"])["category"] == "glasses"


def test_artifact_names_say_what_they_are():
    assert artifact_name("glasses", 224, "frame", "fp16") == "glasses_224_frame_fp16.onnx"
    name = artifact_name("tie", 448, "fg", "fp32", ".engine", "8.6", 10)
    assert name == "tie_448_fg_fp32_sm86_trt10.engine"
    assert parse_artifact_name(name) == {"category": "tie", "size": 448, "graph": "fg", "precision": "fp32",
                                         "sm": "86", "trt": "10", "suffix": "engine"}
    assert parse_artifact_name("model.onnx") is None
    with pytest.raises(ValueError):
        artifact_name("glasses", 224, "frame", "fp16", ".engine")  # an engine name needs GPU and TensorRT


def test_metadata_that_does_not_fit_is_refused():
    meta = _meta()
    check_meta(meta, "m.onnx", graph="frame", category="glasses", input_size=128)
    with pytest.raises(ArtifactMismatchError, match="category 'glasses', requested 'tie'.*tryon export"):
        check_meta(meta, "m.onnx", category="tie")
    with pytest.raises(ArtifactMismatchError, match="input size is 128, requested 224"):
        check_meta(meta, "m.onnx", input_size=224)
    with pytest.raises(ArtifactMismatchError, match="'frame' graph, expected the 'fg'"):
        check_meta(meta, "m.onnx", graph="fg")
    odd = ArtifactMeta.from_dict({**meta.to_dict(), "normalization": {"rgb_mean": [0.5] * 3, "rgb_std": [0.5] * 3,
                                                                      "rgb_scale": 255.0}})
    with pytest.raises(ArtifactMismatchError, match="normalisation"):
        check_meta(odd, "m.onnx")
    with pytest.raises(ArtifactMismatchError, match="no tryon metadata"):
        ArtifactMeta.from_props({"producer": "someone", "note": "{not json"}, "foreign.onnx")


def test_trt_version_key_keeps_the_build_number():
    assert trt_version_key("10.3.0.26") == (10, 3, 0, 26)
    assert trt_version_key("10.3.0") == (10, 3, 0)
    assert trt_version_key("10.7.0.post1") == (10, 7, 0)
    assert trt_version_key("11.0.0.1")[0] == 11
    with pytest.raises(ValueError, match="not a TensorRT version"):
        trt_version_key("abc")


ENGINE_REFUSALS = [
    (dict(trt_version="10.4.0.11"), "built by TensorRT 10.3.0.26, this runtime is TensorRT 10.4.0.11"),
    (dict(trt_version="10.3.0.30"), "built by TensorRT 10.3.0.26, this runtime is TensorRT 10.3.0.30"),
    (dict(trt_version="11.0.0"), "built by TensorRT 10.3.0.26"),
    (dict(compute_capability="8.9", gpu_name="NVIDIA GeForce RTX 4090"), "compute capability 8.6"),
    (dict(gpu_name="NVIDIA RTX A6000"), "built on a NVIDIA GeForce RTX 3080, this GPU is a NVIDIA RTX A6000"),
    (dict(category="hat"), "category 'glasses', requested 'hat'"),
]


@pytest.mark.parametrize("change,match", ENGINE_REFUSALS, ids=["trt-minor", "trt-build", "trt-major", "gpu-cc", "gpu-name",
                                                               "category"])
def test_engine_header_that_does_not_fit_is_refused_with_the_rebuild_command(change, match):
    want = dict(trt_version="10.3.0.26", gpu_name=GPU_NAME, compute_capability=GPU_CC, category="glasses")
    header = _header()
    assert check_engine_header(header, "e.engine", **want).graph == "frame"  # fits as built
    with pytest.raises(ArtifactMismatchError, match=match) as info:
        check_engine_header(header, "e.engine", **{**want, **change})
    assert "rebuild with: tryon build-engine --onnx /models/glasses_128_frame_fp16.onnx" in str(info.value)


# ------------------------------------------------------------------ TensorRT backend without TensorRT
def test_backend_modules_import_no_runtime():
    """Importing the backends (and resolving them by suffix) loads no runtime: no import-time side effects."""
    import subprocess

    code = ("import sys; from realtime.backends.opener import backend_class; backend_class('m.engine'); "
            "backend_class('m.onnx'); import engine_build.trt_builder; "
            "bad = [m for m in ('tensorrt', 'pycuda', 'pycuda.autoinit', 'onnxruntime') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tensorrt_backend_without_tensorrt_says_how_to_install(tmp_path, monkeypatch):
    from realtime.backends.tensorrt_backend import TensorRTBackend

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails even where TensorRT exists
    path = write_engine_file(tmp_path / "x.engine", _header(), b"plan")
    with pytest.raises(BackendError, match="TensorRT is not installed.*pip install"):
        TensorRTBackend(path)


@pytest.fixture
def fake_runtime(monkeypatch):
    """A TensorRT 10.3.0.26 module and an RTX 3080 (8.6), with no CUDA behind them."""
    import realtime.backends.tensorrt_backend as tb

    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.3.0.26"
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(tb, "import_pycuda", lambda: types.SimpleNamespace())
    monkeypatch.setattr(tb, "gpu_identity", lambda device=0: (GPU_NAME, GPU_CC))
    return tb


@pytest.mark.parametrize("frame_change,fg_change,category,match", [
    ({}, {}, "hat", "category 'glasses', requested 'hat'"),
    ({"trt": "10.1.0.27"}, {}, None, "TensorRT 10.1.0.27"),
    ({"cc": "7.5", "gpu": "Tesla T4"}, {}, None, "compute capability 7.5 \\(Tesla T4\\)"),
    ({}, {"trt": "11.0.0"}, None, "no foreground engine.*built elsewhere.*tryon build-engine --onnx"),
], ids=["category", "trt-version", "gpu", "fg-engine"])
def test_tensorrt_backend_refuses_before_deserialising(fake_runtime, tmp_path, frame_change, fg_change, category,
                                                       match):
    frame = write_engine_file(tmp_path / "frame.engine", _header("frame", **frame_change), b"never read")
    write_engine_file(tmp_path / "fg.engine", _header("fg", **fg_change), b"never read")
    with pytest.raises((ArtifactMismatchError, FileNotFoundError), match=match):
        fake_runtime.TensorRTBackend.from_path(frame, category=category)


def test_fg_engine_found_by_metadata(fake_runtime, tmp_path):
    frame = write_engine_file(tmp_path / "frame.engine", _header("frame"), b"x")
    write_engine_file(tmp_path / "other_model_fg.engine",
                      {**_header("fg"), "artifact": {**_header("fg")["artifact"], "config_hash": "0" * 16}}, b"x")
    fg = write_engine_file(tmp_path / "zz_fg.engine", _header("fg"), b"x")
    header, fg_path, _, meta = fake_runtime.check_engine_pair(frame, None, trt_version="10.3.0.26",
                                                              gpu_name=GPU_NAME, compute_capability=GPU_CC)
    assert fg_path == fg and meta.category == "glasses" and header["graph"] == "frame"


# ------------------------------------------------------------------ ONNX Runtime backend
def test_onnx_backend_from_folder_reads_metadata(export_dir):
    from realtime.backends.onnx_backend import OnnxBackend

    backend = OnnxBackend.from_path(export_dir, category="glasses", providers=["CPUExecutionProvider"])
    assert backend.info.backend == "onnxruntime" and backend.info.precision == "fp32"
    assert backend.info.config.input_size == 64 and backend.info.category == "glasses"
    with pytest.raises(BackendError, match="set_foreground"):
        backend.infer(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(BackendError, match=r"\(1, 4, 64, 64\)"):
        backend.set_foreground(np.zeros((1, 4, 32, 32), np.float32))
    fp16 = OnnxBackend.from_path(export_dir, precision="fp16", providers=["CPUExecutionProvider"])
    assert fp16.info.precision == "fp16"


def test_onnx_backend_needs_its_foreground_graph(export_dir, tmp_path):
    from realtime.backends.onnx_backend import OnnxBackend

    lone = tmp_path / "glasses_64_frame_fp32.onnx"
    lone.write_bytes((export_dir / lone.name).read_bytes())
    with pytest.raises(FileNotFoundError, match="glasses_64_fg_fp32.onnx.*tryon export"):
        OnnxBackend(lone, providers=["CPUExecutionProvider"])
    with pytest.raises(FileNotFoundError, match="no fp32 per-frame graph for hat"):
        OnnxBackend.from_path(export_dir, category="hat")


# ------------------------------------------------------------------ parity (one parametrised test)
def _open_backend(kind: str, export_dir, tmp_path):
    from realtime.backends.onnx_backend import OnnxBackend

    if kind == "onnxruntime-fp32":
        return OnnxBackend.from_path(export_dir, precision="fp32", providers=["CPUExecutionProvider"],
                                     intra_op_threads=1)
    if kind == "onnxruntime-fp16":
        return OnnxBackend.from_path(export_dir, precision="fp16", providers=["CPUExecutionProvider"],
                                     intra_op_threads=1)
    if kind == "openvino-fp32":
        pytest.importorskip("openvino", reason="openvino is not installed")
        from realtime.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend.from_path(export_dir, precision="fp32", threads=1)
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
    from engine_build.trt_builder import build_engine
    from realtime.backends.tensorrt_backend import TensorRTBackend

    fg = build_engine(export_dir / "glasses_64_fg_fp32.onnx", tmp_path)
    frame = build_engine(export_dir / "glasses_64_frame_fp16.onnx", tmp_path)
    return TensorRTBackend(frame.path, fg.path, cuda_graph=kind.endswith("graph"))


#: Max keypoint error vs PyTorch fp32, in pixels at network resolution (64 px here).
PARITY = [
    ("onnxruntime-fp32", 0.1),
    ("onnxruntime-fp16", 1.0),
    ("openvino-fp32", 0.01),  # the same fp32 graph: tight
    pytest.param("tensorrt-fp16", 1.0, marks=pytest.mark.trt),
    pytest.param("tensorrt-fp16-cuda-graph", 1.0, marks=pytest.mark.trt),
]


@pytest.mark.parametrize("kind,tolerance_px", PARITY)
def test_backend_parity_on_decoded_keypoints(kind, tolerance_px, export_dir, peaked_checkpoint, tmp_path):
    """Decoded keypoints of each backend vs PyTorch fp32, and every backend's output layout
    (C-contiguous float32: the torch backend's channels-last output made decoding 6-11x slower)."""
    from engine_build.export import verification_pairs
    from realtime.backends.torch_backend import TorchBackend
    from realtime.codec import HeatmapCodec
    from realtime.preprocess import background_input, foreground_input

    reference = TorchBackend.from_path(peaked_checkpoint)
    backend = _open_backend(kind, export_dir, tmp_path)
    cfg = reference.info.config
    codec = HeatmapCodec(cfg.codec)
    errors = []
    for fg, bg in verification_pairs(cfg, samples=6, seed=11)[0]:
        fg_in, bg_in = foreground_input(fg, cfg.input_size)[0], background_input(bg)
        pts = []
        for b in (reference, backend):
            b.set_foreground(fg_in)
            hm = b.infer(bg_in)
            assert hm.shape == (1, 4, 64, 64) and hm.dtype == np.float32
            assert hm.flags.c_contiguous, f"{b.info.backend} returned a non-C-contiguous array: {hm.strides}"
            pts.append(codec.decode(hm).pts_xy)
        errors.append(np.linalg.norm(pts[0] - pts[1], axis=-1).max())
    backend.close()
    assert max(errors) <= tolerance_px, f"{kind}: max keypoint error {max(errors):.4f} px > {tolerance_px} px"


# ------------------------------------------------------------------ torch fp16
def test_torch_fp16_runs_the_heatmap_activation_in_float32():
    """The FP16 rule (engine_build.fp16): half network, float32 heatmap activation. Checked on CPU
    half kernels (no CUDA here): the heatmaps must not be float16 values (a 2^-11 step near 1,
    0.5 in the soft-argmax logits after beta = 1000)."""
    torch = pytest.importorskip("torch")
    from realtime.backends.torch_backend import TorchBackend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = model_preset("tiny", "glasses")
        backend = TorchBackend.from_config(cfg, seed=0)
        rng = np.random.default_rng(5)
        s = cfg.input_size
        fg = rng.uniform(0, 1, (1, 4, s, s)).astype(np.float32)
        bg = rng.normal(size=(1, 3, s, s)).astype(np.float32)
        backend.set_foreground(fg)
        ref = backend.infer(bg)
        backend.net = backend.net.half()  # the precision="fp16" path, as on CUDA
        backend.precision = "fp16"
        backend.set_foreground(fg)
        hm = backend.infer(bg)
    finally:
        torch.set_num_threads(threads)
    assert hm.dtype == np.float32
    on_half_grid = (hm == hm.astype(np.float16).astype(np.float32)).mean()
    assert on_half_grid < 0.5, f"{on_half_grid:.0%} of heatmap values are float16 values"
    assert np.abs(hm - ref).max() < 0.05
