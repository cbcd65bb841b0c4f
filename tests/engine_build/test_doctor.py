"""``tryon doctor`` where it can be tested without a GPU: what it reports missing, and its report."""

from __future__ import annotations

import sys
import types

import pytest

from engine_build.doctor import DoctorReport, check_environment, main


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make ``tensorrt`` and ``pycuda`` unimportable, even on a machine that has them."""
    for name in ("tensorrt", "pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, None)


def test_doctor_without_tensorrt_lists_what_is_missing_and_fails(no_tensorrt, tmp_path, capsys):
    code = main(["--export-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 2
    assert "tensorrt: not importable" in out and "pip install 'tryon-realtime[trt]'" in out
    assert "pycuda: not importable" in out
    assert not (tmp_path / "out").exists()  # nothing was built or written


def test_doctor_through_the_tryon_cli(no_tensorrt, tmp_path, capsys):
    from realtime.cli import main as tryon

    assert tryon(["doctor", "--export-dir", str(tmp_path)]) == 2
    assert "tensorrt" in capsys.readouterr().out


def test_old_tensorrt_is_reported(monkeypatch):
    old = types.ModuleType("tensorrt")
    old.__version__ = "8.6.1"
    monkeypatch.setitem(sys.modules, "tensorrt", old)
    monkeypatch.setitem(sys.modules, "pycuda", None)
    problems, found = check_environment()
    assert found["tensorrt"] == "8.6.1"
    assert any("8.6.1 is too old" in p for p in problems)


def test_report_text_names_hardware_parity_and_what_timings_include():
    report = DoctorReport(
        environment={"gpu": {"name": "NVIDIA RTX A4000", "compute_capability": "8.6", "memory_gib": 15.7},
                     "tensorrt": "10.3.0", "onnxruntime": "1.20.0"},
        export_dir="/m/onnx",
        engines={"frame": {"path": "/m/glasses_224_frame_fp16_sm86_trt10.engine", "precision": "fp16",
                           "seconds": 41.0}},
        parity={"inputs": "16 synthetic", "mean_px": 0.01, "p95_px": 0.02, "max_px": 0.05, "n": 64,
                "tolerance_px": 1.0, "passed": True},
        benchmark={"timings_ms": {"infer (cuda graph)": {"p50": 1.2, "p95": 1.4, "p99": 1.9, "mean": 1.25, "n": 200}},
                   "includes": "infer = H2D + engine + D2H + sync"},
        passed=True)
    text = report.format_text()
    assert "NVIDIA RTX A4000 (sm 8.6" in text and "TensorRT 10.3.0" in text
    assert "max 0.0500 px (limit 1.0 px) -> PASS" in text
    assert "infer (cuda graph)" in text and "p99   1.900" in text and "H2D + engine + D2H" in text
    assert text.rstrip().endswith("result     PASS")
