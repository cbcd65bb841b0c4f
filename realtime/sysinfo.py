"""Hardware description (the one machine line of model cards and reports) and latency statistics."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux) or platform."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> dict[str, Any] | None:
    """Name, driver and compute capability of GPU 0 via torch (if importable) or nvidia-smi."""
    if "torch" in sys.modules or _importable("torch"):
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return {"name": props.name, "capability": f"{props.major}.{props.minor}",
                    "memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda,
                    "driver": nvidia_smi("driver_version")}
    name = nvidia_smi("name")
    return {"name": name, "driver": nvidia_smi("driver_version")} if name else None


def _importable(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def nvidia_smi(field: str) -> str | None:
    """One ``nvidia-smi --query-gpu`` field of GPU 0 (e.g. ``driver_version``), or None without a driver."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def hardware_info() -> dict[str, Any]:
    """Everything a benchmark report states about the machine."""
    info: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "gpu": gpu_info()}
    for mod in ("torch", "onnxruntime", "cv2", "numpy"):
        if mod in sys.modules:
            info[mod] = getattr(sys.modules[mod], "__version__", "?")
    return info


def hardware_line(hw: dict[str, Any] | None = None) -> str:
    """One line naming the machine: CPU, logical cores, GPU, and the torch in use.

    ``hw`` is a :func:`hardware_info` dict (default: this machine now). Model cards record
    it for the machine that trained; benchmark reports start with it.
    """
    hw = hardware_info() if hw is None else hw
    gpu = hw.get("gpu")
    text = f"{hw['cpu']} ({hw['cores']} logical cores)"
    if gpu:
        text += f", GPU {gpu['name']}" + (f" (driver {gpu['driver']})" if gpu.get("driver") else "")
    torch_version = hw.get("torch")
    return text + (f", torch {torch_version}" if torch_version else "")


def summarize_ms(samples_s: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds of durations given in seconds."""
    a = np.asarray(samples_s, dtype=np.float64) * 1e3
    if a.size == 0:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "mean": float("nan"), "n": 0}
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": int(a.size)}


def time_calls(fn: Callable[[], Any], iters: int, warmup: int = 3, sync: Callable[[], None] | None = None
               ) -> list[float]:
    """Durations (s) of ``iters`` calls after ``warmup`` calls; ``sync`` is called inside each timing."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append(time.perf_counter() - t0)
    return out
