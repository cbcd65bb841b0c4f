"""``tryon doctor`` where it can be tested without a GPU: what it reports missing, and its report."""

from __future__ import annotations

import sys
import types

import pytest

import engine_build.doctor as doctor
from engine_build.doctor import DoctorReport, check_environment, main
from realtime.backends import trt_install


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make ``tensorrt`` and ``pycuda`` unimportable, even on a machine that has them."""
    for name in ("tensorrt", "pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, None)


def test_doctor_without_tensorrt_lists_what_is_missing_and_fails(no_tensorrt, tmp_path, capsys):
    code = main(["--export-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 2
    assert "tensorrt: not importable" in out
    assert "pip install -e '.[trt-cu12]'" in out and "pip install -e '.[trt-cu13]'" in out
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


# ------------------------------------------------------------------ driver vs TensorRT build
@pytest.fixture
def machine(monkeypatch):
    """Set the driver's CUDA version, its release and the installed TensorRT's CUDA build (fakes)."""
    def set_(driver_cuda, trt_cuda, dist="tensorrt", release="550.54.15"):
        monkeypatch.setattr(doctor, "driver_cuda_version", lambda: driver_cuda)
        monkeypatch.setattr(doctor, "installed_tensorrt_cuda_major", lambda: (trt_cuda, dist if trt_cuda else None))
        monkeypatch.setattr(doctor, "_driver_release", lambda: release)
        for name in ("tensorrt", "pycuda", "pycuda.driver"):
            monkeypatch.setitem(sys.modules, name, None)
    return set_


def test_cuda13_tensorrt_on_a_cuda12_driver_names_the_cu12_extra(machine):
    machine(12040, 13)
    problems, found = check_environment()
    assert found["driver"] == {"release": "550.54.15", "cuda": "12.4"} and found["tensorrt_cuda"] == "13 (tensorrt)"
    msg = next(p for p in problems if "built for CUDA 13" in p)
    assert "needs driver >= 580" in msg and "driver 550.54.15 supports CUDA 12.4" in msg
    assert "pip uninstall -y tensorrt tensorrt-cu13" in msg and "pip install -e '.[trt-cu12]'" in msg


@pytest.mark.parametrize("driver,trt_cuda", [(13000, 13), (13020, 12), (12080, 12), (12020, None)])
def test_driver_that_fits_the_installed_tensorrt_is_no_problem(machine, driver, trt_cuda):
    machine(driver, trt_cuda)
    problems, _ = check_environment()
    assert not [p for p in problems if "driver" in p.split(":")[0] or "built for CUDA" in p]


def test_driver_too_old_for_any_wheel(machine):
    machine(12000, None, release="525.60.13")
    problems, _ = check_environment()
    assert any("driver 525.60.13 supports CUDA 12.0" in p and "update the NVIDIA driver" in p for p in problems)


def test_no_driver(machine):
    machine(None, None)
    problems, found = check_environment()
    assert found["driver"] == {"release": None, "cuda": None}
    assert any("no NVIDIA driver found" in p for p in problems)


def test_installed_cuda_build_from_package_metadata(monkeypatch):
    """The plain `tensorrt` metapackage says its CUDA build through its requirement (10.13.3 -> cu13)."""
    from importlib import metadata

    def version(name):
        if name == "tensorrt":
            return "10.13.3.9"
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(trt_install.metadata, "version", version)
    monkeypatch.setattr(trt_install.metadata, "requires",
                        lambda name: ["tensorrt_cu13==10.13.3.9"] if name == "tensorrt" else None)
    assert trt_install.installed_tensorrt_cuda_major() == (13, "tensorrt")
    monkeypatch.setattr(trt_install.metadata, "version",
                        lambda name: "10.12.0.36" if name == "tensorrt-cu12-libs" else version(name))
    assert trt_install.installed_tensorrt_cuda_major() == (12, "tensorrt-cu12-libs")


def test_pyproject_extras_are_the_table():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    data = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    extras = data["project"]["optional-dependencies"]
    for wheel in trt_install.WHEELS:
        assert extras[wheel.extra] == [wheel.requirement, trt_install.PYCUDA_REQUIREMENT]
    assert "trt" not in extras  # the metapackage extra that resolved to CUDA 13 whatever the driver


# ------------------------------------------------------------------ errors become messages
@pytest.mark.parametrize("exc_name,code,text", [
    ("TrtVersionError", 2, "this TensorRT cannot do what was asked"),
    ("TrtBuildError", 1, "building the engines failed"),
    ("EngineFileError", 1, "the engines could not be run"),
])
def test_tensorrt_errors_are_messages_not_tracebacks(monkeypatch, capsys, tmp_path, exc_name, code, text):
    from engine_build.trt_builder import TrtBuildError
    from realtime.backends.engine_file import EngineFileError
    from realtime.backends.trt_version import TrtVersionError

    exc = {"TrtVersionError": TrtVersionError, "TrtBuildError": TrtBuildError,
           "EngineFileError": EngineFileError}[exc_name]

    def fail(*args, **kwargs):
        raise exc("TensorRT 10.12.0.36 deprecates weak typing: pass the *_fp16.onnx")

    monkeypatch.setattr(doctor, "run_doctor", fail)
    assert main(["--export-dir", str(tmp_path)]) == code
    captured = capsys.readouterr()
    assert text in captured.out and "pass the *_fp16.onnx" in captured.out
    assert "Traceback" not in captured.out + captured.err
