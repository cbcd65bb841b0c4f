"""The TensorRT backend end to end on fake ``tensorrt`` + ``pycuda`` (tests/engine_build/fake_trt.py):
data flow through pinned buffers and device memory, and that close() (or a failed open) leaves
no allocation, no retained context and nothing pushed on the thread."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from fake_trt import FakeCuda, FakeDriverApi, FakeTrt, fake_plan

from realtime.artifacts import ArtifactMeta, artifact_name
from realtime.errors import BackendError
from realtime.backends.engine_file import write_engine_file
from realtime.config import model_preset

TRT_VERSION = "10.3.0.26"
GPU_NAME, GPU_CC = "NVIDIA GeForce RTX 3090", "8.6"


@pytest.fixture
def fakes(monkeypatch):
    """tensorrt + pycuda.driver fakes installed in sys.modules, and the ctypes driver helper replaced."""
    import realtime.backends.tensorrt_backend as tb

    cuda = FakeCuda()
    trt = FakeTrt(TRT_VERSION, cuda=cuda)
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setattr(tb, "cuda_driver", lambda: FakeDriverApi(cuda))
    return types.SimpleNamespace(trt=trt, cuda=cuda, tb=tb)


def _engines(folder, cfg=None, frame_plan: bytes | None = None):
    cfg = cfg or model_preset("tiny", "glasses")
    s, c, fs = cfg.input_size, cfg.feature_channels, cfg.feature_size
    paths = {}
    for graph in ("fg", "frame"):
        meta = ArtifactMeta(graph=graph, precision="fp32", model_config=cfg.to_dict(),
                            fg_graph=artifact_name("glasses", s, "fg", "fp32") if graph == "frame" else "")
        if graph == "fg":
            io = [{"name": "foreground", "input": True, "shape": [1, 4, s, s], "dtype": "FLOAT"},
                  {"name": "f_f", "input": False, "shape": [1, c, fs, fs], "dtype": "FLOAT"}]
        else:
            io = [{"name": "background", "input": True, "shape": [1, 3, s, s], "dtype": "FLOAT"},
                  {"name": "f_f", "input": True, "shape": [1, c, fs, fs], "dtype": "FLOAT"},
                  {"name": "heatmaps", "input": False, "shape": [1, 4, s, s], "dtype": "FLOAT"},
                  {"name": "keypoints", "input": False, "shape": [1, 4, 2], "dtype": "FLOAT"}]
        header = {"tensorrt_version": TRT_VERSION, "gpu_name": GPU_NAME, "compute_capability": GPU_CC,
                  "category": "glasses", "input_size": s, "graph": graph, "precision": "fp32", "io": io,
                  "source_onnx": f"/m/{artifact_name('glasses', s, graph, 'fp32')}", "artifact": meta.to_dict(),
                  "builder": {"fp16_flag": False}}
        plan = frame_plan if (graph == "frame" and frame_plan is not None) else fake_plan(io)
        paths[graph] = write_engine_file(folder / f"{graph}.engine", header, plan)
    return paths, cfg


def _inputs(cfg, seed=0):
    rng = np.random.default_rng(seed)
    s = cfg.input_size
    return (rng.uniform(0, 1, (1, 4, s, s)).astype(np.float32), rng.normal(size=(1, 3, s, s)).astype(np.float32))


CLEAN = {"live": [], "skipped_frees": [], "driver_stack": [], "pycuda_stack": 0, "retained": [0]}


def test_backend_computes_through_device_buffers_and_closes_clean(fakes, tmp_path):
    paths, cfg = _engines(tmp_path)
    backend = fakes.tb.TensorRTBackend(paths["frame"], paths["fg"])
    assert backend.info.meta["gpu"] == GPU_NAME and backend.info.meta["tensorrt"] == TRT_VERSION
    fg, bg = _inputs(cfg)
    backend.set_foreground(fg)
    hm = backend.infer(bg)
    expect = np.broadcast_to(bg[:, :1] * 0.5, hm.shape) + np.float32(fg.mean())
    np.testing.assert_allclose(hm, expect, rtol=1e-6, atol=1e-6)  # F_f stayed in the shared device buffer
    assert hm.dtype == np.float32 and hm.shape == (1, 4, cfg.input_size, cfg.input_size)
    assert fakes.cuda.copies == {"htod": 2, "dtoh": 1}  # fg once, bg once, heatmaps back; F_f never copied
    assert len(fakes.cuda.live) > 0 and fakes.cuda.driver_stack == []  # nothing pushed between calls
    backend.close()
    assert fakes.cuda.leaks == CLEAN
    backend.close()  # idempotent
    with pytest.raises(BackendError, match="closed"):
        backend.infer(bg)


def test_pinned_buffers_are_freed_explicitly(fakes, tmp_path):
    """pagelocked_empty's array base is the HostAllocation; it must be freed while the context lives."""
    paths, _ = _engines(tmp_path)
    backend = fakes.tb.TensorRTBackend(paths["frame"], paths["fg"])
    hosts = [a.base for a in (backend._fg_host, backend._bg_host, backend._hm_host)]
    assert all(type(h).__name__ == "FakeHostAllocation" and not h.freed for h in hosts)
    backend.close()
    assert all(h.freed for h in hosts)


def test_fake_pycuda_reproduces_the_leaks_the_backend_must_avoid(fakes):
    """So the tests above can fail: freeing after detach is skipped, and detaching a primary context
    that is not current leaves it pushed on the thread (pycuda's cuda.hpp)."""
    cuda = fakes.cuda
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    host = cuda.pagelocked_empty((4,), np.float32).base
    cuda.Context.pop()
    ctx.detach()
    host.free()
    assert cuda.leaks == {"live": ["HostAllocation"], "skipped_frees": ["HostAllocation"],
                          "driver_stack": [ctx.handle], "pycuda_stack": 0, "retained": [0]}


def test_failed_open_releases_everything(fakes, tmp_path):
    paths, _ = _engines(tmp_path, frame_plan=b"NOT A PLAN")  # deserialize_cuda_engine returns None
    with pytest.raises(BackendError, match="could not deserialise"):
        fakes.tb.TensorRTBackend(paths["frame"], paths["fg"])
    assert fakes.cuda.leaks == CLEAN


def test_bad_config_in_the_header_retains_nothing(fakes, tmp_path, monkeypatch):
    paths, _ = _engines(tmp_path)
    real = fakes.tb.check_engine_pair

    def broken(*args, **kwargs):
        header, fg_path, fg_header, meta = real(*args, **kwargs)
        bad = types.SimpleNamespace(config=lambda: (_ for _ in ()).throw(ValueError("model_config: bad key 'x'")))
        return header, fg_path, fg_header, bad

    monkeypatch.setattr(fakes.tb, "check_engine_pair", broken)
    with pytest.raises(ValueError, match="bad key"):
        fakes.tb.TensorRTBackend(paths["frame"], paths["fg"])
    assert fakes.cuda.leaks == CLEAN and fakes.cuda.pushes == 0


def test_backends_share_the_process_logger(fakes, tmp_path):
    paths, _ = _engines(tmp_path)
    a = fakes.tb.TensorRTBackend(paths["frame"], paths["fg"])
    b = fakes.tb.TensorRTBackend(paths["frame"], paths["fg"])
    a.close()
    b.close()
    assert len(fakes.trt.loggers) == 1
    assert fakes.cuda.leaks == CLEAN


def test_engine_for_another_build_number_is_refused_before_deserialising(fakes, tmp_path):
    paths, _ = _engines(tmp_path)
    fakes.trt.__version__ = "10.3.0.30"
    with pytest.raises(BackendError, match="built by TensorRT 10.3.0.26, this runtime is TensorRT 10.3.0.30"):
        fakes.tb.TensorRTBackend(paths["frame"], paths["fg"])
    assert fakes.cuda.leaks == CLEAN
