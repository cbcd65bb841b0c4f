"""OpenVINO backend: precision choice (bf16 only on a bf16 CPU with a passing stored keypoint check, else
fp32 and a log line), the first-use export cache, and the resolver's default on CPU.

Parity with torch and output contiguity are in test_backends.py (the parametrised parity test).
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

pytest.importorskip("openvino", reason="openvino is not installed")
pytest.importorskip("onnx")

from realtime.errors import BackendError  # noqa: E402
from realtime.backends.openvino_backend import (BF16_TOLERANCE_P99_PX, OpenVinoBackend, bf16_keypoint_check,  # noqa: E402
                                                choose_precision, finish_export)

PASSED = {"measured": True, "passed": True, "p99_px": 0.21, "max_px": 0.4, "mean_px": 0.05, "samples": 8,
          "tolerance_p99_px": BF16_TOLERANCE_P99_PX}
FAILED = {**PASSED, "passed": False, "p99_px": 3.9, "max_px": 227.0}


@pytest.mark.parametrize("requested,check,cpu_bf16,want,fallback", [
    ("auto", PASSED, True, "bf16", False),
    ("auto", FAILED, True, "fp32", True),
    ("auto", {**PASSED, "p99_px": 0.6}, True, "fp32", True),  # "passed" but over its own tolerance
    ("auto", {}, True, "fp32", True),  # never measured
    ("auto", {"measured": False, "reason": "CPU without bf16"}, True, "fp32", True),
    ("auto", PASSED, False, "fp32", False),  # no bf16 hardware: fp32, not a model problem
    ("fp32", PASSED, True, "fp32", False),
    ("bf16", FAILED, True, "bf16", False),  # explicit request overrides the check, not the hardware
], ids=["passed", "failed", "over-tolerance", "unmeasured", "measured-nothing", "no-bf16-cpu", "fp32", "forced"])
def test_precision_choice(requested, check, cpu_bf16, want, fallback):
    choice = choose_precision(requested, check, cpu_bf16, "x_frame_fp32.onnx")
    assert (choice.precision, choice.fallback) == (want, fallback), choice.reason


def test_bf16_request_on_a_cpu_without_bf16_is_refused():
    with pytest.raises(BackendError, match="no native bf16"):
        choose_precision("bf16", PASSED, False, "x.onnx")
    with pytest.raises(BackendError, match="precision must be one of"):
        choose_precision("fp16", PASSED, True, "x.onnx")


def _graphs_with_check(export_dir, tmp_path, check):
    from realtime.backends.graph_export import update_meta

    for p in export_dir.glob("*_fp32.onnx"):
        shutil.copy(p, tmp_path / p.name)
    frame = tmp_path / "glasses_64_frame_fp32.onnx"
    update_meta(frame, bf16_check=check)
    return frame


def _spy_compile(monkeypatch):
    hints = []
    real = OpenVinoBackend._compile

    def spy(self, path, precision):
        compiled = real(self, path, precision)
        hints.append((path.name, precision))
        return compiled

    monkeypatch.setattr(OpenVinoBackend, "_compile", spy)
    return hints


def test_failed_bf16_check_falls_back_to_fp32_and_says_so(export_dir, tmp_path, caplog, monkeypatch):
    frame = _graphs_with_check(export_dir, tmp_path, FAILED)
    hints = _spy_compile(monkeypatch)
    with caplog.at_level(logging.INFO, logger="realtime.backends.openvino_backend"):
        backend = OpenVinoBackend(frame, threads=1, cpu_has_bf16=True)  # a bf16 CPU, faked
    assert backend.choice.precision == "fp32" and backend.info.precision == "fp32"
    assert hints == [("glasses_64_fg_fp32.onnx", "fp32"), ("glasses_64_frame_fp32.onnx", "fp32")]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warned and "runs in FP32" in warned[0].getMessage() and "FAILED its bf16 keypoint check" in \
        warned[0].getMessage() and "p99 3.900 px" in warned[0].getMessage()


def test_passed_bf16_check_on_a_bf16_cpu_compiles_the_frame_graph_in_bf16(export_dir, tmp_path, caplog,
                                                                         monkeypatch):
    frame = _graphs_with_check(export_dir, tmp_path, PASSED)
    hints = _spy_compile(monkeypatch)
    with caplog.at_level(logging.INFO, logger="realtime.backends.openvino_backend"):
        backend = OpenVinoBackend(frame, threads=1, cpu_has_bf16=True)
    assert backend.choice.precision == "bf16" and "check passed" in backend.choice.reason
    # the foreground encoder stays fp32; the per-frame graph is compiled with the bf16 hint
    assert hints == [("glasses_64_fg_fp32.onnx", "fp32"), ("glasses_64_frame_fp32.onnx", "bf16")]
    assert "runs in BF16" in caplog.text
    backend.set_foreground(np.zeros((1, 4, 64, 64), np.float32))
    out = backend.infer(np.zeros((1, 3, 64, 64), np.float32))
    assert out.shape == (1, 4, 64, 64) and out.dtype == np.float32 and out.flags.c_contiguous


def test_bf16_check_on_a_cpu_without_bf16_records_that_nothing_was_measured(export_dir):
    check = bf16_keypoint_check(export_dir / "glasses_64_frame_fp32.onnx", [], cpu_has_bf16=False)
    assert check["measured"] is False and "without native bf16" in check["reason"]
    assert choose_precision("auto", check, True, "x.onnx").precision == "fp32"


def test_openvino_runs_only_the_fp32_graph(export_dir):
    with pytest.raises(BackendError, match="fp16 graph; OpenVINO runs the fp32 graph"):
        OpenVinoBackend(export_dir / "glasses_64_frame_fp16.onnx", threads=1)
    backend = OpenVinoBackend.from_path(export_dir, threads=1)
    with pytest.raises(BackendError, match="set_foreground"):
        backend.infer(np.zeros((1, 3, 64, 64), np.float32))


# ------------------------------------------------------------------ first-use export cache
def test_checkpoint_is_exported_once_into_the_cache(peaked_checkpoint, tmp_path, monkeypatch, caplog):
    from realtime.backends import export_cache
    from realtime.backends.onnx_backend import read_onnx_meta
    from realtime.io import file_sha256

    monkeypatch.setenv(export_cache.ENV_CACHE_DIR, str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="realtime.backends.export_cache"):
        frame = export_cache.cached_export(peaked_checkpoint, finish_export, samples=3)
    assert frame.parent == tmp_path / "cache" / f"{peaked_checkpoint.stem}-{file_sha256(peaked_checkpoint)}"
    assert "first use of" in caplog.text and "exporting it once" in caplog.text
    meta = read_onnx_meta(frame)
    assert meta.source_checkpoint_sha256 == file_sha256(peaked_checkpoint)
    assert meta.bf16_check and "measured" in meta.bf16_check  # stored at export time, measured or not
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [frame.parent.name]  # no temporary left
    assert (frame.parent / "export.json").is_file()

    def no_second_export(*_a, **_k):
        raise AssertionError("exported again")

    monkeypatch.setattr(export_cache, "_export_verified", no_second_export)
    assert export_cache.cached_export(peaked_checkpoint, finish_export) == frame
    backend = OpenVinoBackend.from_path(peaked_checkpoint, threads=1)  # a .pt opens through the cache
    assert backend.info.source == str(frame)


def test_failed_export_leaves_nothing_in_the_cache(peaked_checkpoint, tmp_path, monkeypatch):
    from realtime.backends import export_cache, graph_export

    monkeypatch.setenv(export_cache.ENV_CACHE_DIR, str(tmp_path / "cache"))

    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(graph_export, "update_meta", broken)
    with pytest.raises(BackendError, match="cannot write the export of .*disk full"):
        export_cache.cached_export(peaked_checkpoint, finish_export, samples=2)
    assert list((tmp_path / "cache").iterdir()) == []


# ------------------------------------------------------------------ resolver
def test_auto_on_cpu_serves_shipped_checkpoints_with_openvino(peaked_checkpoint, tmp_path):
    from realtime.backends.resolver import ModelResolver

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(peaked_checkpoint, weights / "glasses_test.pt")
    resolver = ModelResolver("auto", weights_dir=weights, threads=1)
    assert resolver("glasses").info.backend == "openvino"
    assert resolver.describe("glasses").startswith("openvino fp32")


def test_auto_falls_back_when_openvino_cannot_serve(peaked_checkpoint, tmp_path, monkeypatch, caplog):
    from realtime.backends.resolver import ModelResolver

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(peaked_checkpoint, weights / "glasses_test.pt")

    def refuse(*_a, **_k):
        raise BackendError("openvino cannot compile it")

    monkeypatch.setattr(OpenVinoBackend, "from_path", refuse)
    resolver = ModelResolver("auto", weights_dir=weights, threads=1)
    assert resolver("glasses").info.backend == "torch"
    assert "OpenVINO cannot serve glasses_test.pt" in caplog.text
    with pytest.raises(BackendError, match="openvino cannot compile"):
        ModelResolver("openvino", weights_dir=weights, threads=1)("glasses")


def test_explicit_openvino_backend_runs_user_onnx_and_checkpoints(export_dir, peaked_checkpoint):
    from realtime.backends.resolver import ModelResolver

    by_onnx = ModelResolver("openvino", onnx=[export_dir / "glasses_64_frame_fp32.onnx"], threads=1)
    assert by_onnx("glasses").info.backend == "openvino"
    by_ckpt = ModelResolver("openvino", checkpoints=[peaked_checkpoint], threads=1)
    assert by_ckpt("glasses").info.backend == "openvino"


def test_compile_properties_can_be_added_and_removed(export_dir):
    from realtime.backends.openvino_backend import COMPILE_PROPERTIES

    frame = export_dir / "glasses_64_frame_fp32.onnx"
    plain = OpenVinoBackend(frame, threads=1, precision="fp32")
    assert str(plain.frame_compiled.get_property("PERFORMANCE_HINT")) == str(COMPILE_PROPERTIES["PERFORMANCE_HINT"])
    assert str(plain.frame_compiled.get_property("PERF_COUNT")) in ("False", "NO")
    tuned = OpenVinoBackend(frame, threads=1, precision="fp32",
                            properties={"PERF_COUNT": True, "PERFORMANCE_HINT": None})
    for compiled in (tuned.frame_compiled, tuned.fg_compiled):
        assert str(compiled.get_property("PERF_COUNT")) in ("True", "YES")
    assert "PERFORMANCE_HINT" not in tuned.compile_config("fp32") and tuned.compile_config("fp32")["PERF_COUNT"]
    assert plain.compile_config("fp32") == {**COMPILE_PROPERTIES, "INFERENCE_NUM_THREADS": 1,
                                            "INFERENCE_PRECISION_HINT": "f32"}
    for b in (plain, tuned):
        b.set_foreground(np.zeros((1, 4, 64, 64), np.float32))
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(plain.infer(x), tuned.infer(x))  # settings, not numerics
    assert tuned._request.get_profiling_info()  # the per-layer counters the benchmark reads
