"""benchmarks/gpu_check.py where it runs without a GPU: the refusal, the stages' plumbing, the report."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refuses_cleanly_without_cuda(gpu_check, tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU visible to torch" in err and "Nothing was run" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_shell_wrapper_runs_the_script_under_a_timeout():
    text = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    assert "timeout" in text and "600" in text and "benchmarks/gpu_check.py" in text


def test_every_shipped_model_is_checked(gpu_check):
    names = [p.name for p in gpu_check.shipped_models()]
    assert names == sorted(p.name for p in (ROOT / "realtime" / "weights").glob("*.pt")) and len(names) >= 3


def test_torch_parity_measures_keypoints_in_pixels(gpu_check, peaked_checkpoint):
    """The parity function itself, on the CPU (bf16 stands in for CUDA fp16; no CUDA graph)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = gpu_check.torch_parity(peaked_checkpoint, samples=2, device="cpu", precision="bf16", cuda_graph=False,
                                     iters=2)
    finally:
        torch.set_num_threads(threads)
    stats = out["eager_vs_cpu_fp32"]
    assert stats["n"] == 8 and math.isfinite(stats["max_px"]) and stats["max_px"] >= stats["mean_px"] >= 0
    assert "graph_vs_cpu_fp32" not in out and out["latency_ms"]["eager"]["p50"] > 0
    assert out["status"] in ("ok", "failed") and out["input_size"] == 64


def test_a_failing_stage_is_recorded_not_raised(gpu_check):
    res = gpu_check.run_stage("x", lambda: 1 / 0)
    assert res["status"] == "failed" and res["error"].startswith("ZeroDivisionError")


def test_tensorrt_stage_skips_with_the_install_hint_without_tensorrt(gpu_check, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    res = gpu_check.tensorrt_stage([], tmp_path, 1, 1)
    assert res["status"] == "skipped" and "trt-cu12" in res["reason"]


def test_run_check_writes_one_json_and_markdown(gpu_check, monkeypatch, tmp_path):
    env = {"gpu_name": "NVIDIA GeForce RTX 3090", "compute_capability": "8.6", "gpu_memory_gib": 23.7,
           "driver": "550.54.15", "driver_cuda": "12.4", "torch": "2.13.0+cu124", "torch_cuda": "12.4",
           "cudnn": 90100, "tensorrt": "10.12.0.36", "onnxruntime": "1.32.0", "pycuda": "2026.1", "cpu": "x"}
    monkeypatch.setattr(gpu_check, "cuda_environment", lambda: env)
    parity = {"model": "glasses_lite.pt", "input_size": 224, "eager_vs_cpu_fp32": {"max_px": 0.12},
              "graph_vs_cpu_fp32": {"max_px": 0.12}, "latency_ms": {"eager": {"p50": 3.2}, "cuda_graph": {"p50": 2.1}},
              "status": "ok"}
    monkeypatch.setattr(gpu_check, "torch_parity", lambda m, samples, iters: dict(parity, model=m.name))
    monkeypatch.setattr(gpu_check, "bench_stage", lambda work, frames: {"status": "ok", "stdout_tail": ["stage ms"]})
    monkeypatch.setattr(gpu_check, "native_cuda_stage", lambda: {"status": "skipped", "reason": "no CUDA build"})
    monkeypatch.setattr(gpu_check, "tensorrt_stage", lambda *a, **k: {"status": "failed", "error": "parity 2.1 px"})
    args = gpu_check.argparse.Namespace(out_dir=tmp_path / "results", weights=None, quick=True,
                                       work_dir=tmp_path / "work")
    code, paths = gpu_check.run_check(args)
    assert code == 1 and [p.suffix for p in paths] == [".json", ".md"]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == sorted(p.name for p in paths)  # one pair
    assert paths[0].name.startswith("gpu_check_") and "nvidia-geforce-rtx-3090" in paths[0].name
    report = json.loads(paths[0].read_text())
    assert report["result"] == "FAIL (tensorrt)" and report["environment"]["driver"] == "550.54.15"
    assert set(report["stages"]) == {"torch_parity", "bench", "native_cuda", "tensorrt"}
    assert set(report["stages"]["torch_parity"]["models"]) == {p.stem for p in gpu_check.shipped_models()}
    md = paths[1].read_text()
    assert "NVIDIA GeForce RTX 3090" in md and "driver 550.54.15 (CUDA 12.4)" in md
    assert "| glasses_lite | 224 | 0.1200 | 0.1200 | 3.200 | 2.100 |" in md
    assert "| native_cuda | skipped |" in md and "result: FAIL (tensorrt)" in md
