"""The user checks of ``tryon doctor``: can this machine run the try-on, and what to fix.

Each :class:`Check` is one line: a status (``ok``, ``warn``: works with less, ``fail``:
the try-on cannot run, ``info``), what was found and, when it is not ``ok``, the fix.
:func:`run_user_checks` runs them all in well under a second (no model is loaded):

* CPU runtime and precision: the CPU, torch and its threads, bf16 in hardware
  (AVX512-BF16 / AMX: the default OpenVINO backend then runs bf16 for the models that passed
  their bf16 keypoint check) or not (fp32);
* backends: torch, onnxruntime (and its providers), OpenVINO (and the CPU capabilities it
  sees), TensorRT: which import, and which one ``--backend auto`` runs on the CPU;
* cameras: the indices that deliver a frame;
* display: whether the live window can open;
* H.264 recording: PyAV with an H.264 encoder (else the OpenCV writer's MPEG-4 Part 2);
* virtual camera: ``pyvirtualcam``, and on Linux the ``v4l2loopback`` module loaded with
  ``exclusive_caps=1`` (browsers and video-call apps list only such devices); on Windows
  and macOS, OBS Studio's Virtual Camera;
* GPU: an NVIDIA driver, CUDA in torch. Engines (TensorRT build, parity, benchmark) are
  ``tryon doctor --export-dir`` / ``--checkpoint`` (:mod:`engine_build.doctor`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from realtime.backends.resolver import default_threads
from realtime.backends.trt_install import install_hint
from realtime.sysinfo import cpu_model

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"

#: The Linux command that creates a virtual camera browsers and video-call apps can see.
V4L2LOOPBACK_FIX = ("sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
                    "card_label=tryon (exclusive_caps=1: browsers and video-call apps list only such cameras)")


#: What to do on a CPU that computes bf16 natively.
BF16_FIX = ("the default (--backend auto --precision auto) runs OpenVINO in bf16 for each model that passed its "
            "bf16 keypoint check (the log says which, and why not); --precision bf16 forces it")


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: str
    found: str
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU feature flags (Linux), None where they cannot be read."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def check_cpu(flags: set[str] | None = None) -> Check:
    """CPU, torch threads and the precision that pays on it."""
    flags = cpu_flags() if flags is None else flags
    torch_v = _version("torch")
    threads = default_threads()
    base = f"{cpu_model()}, {os.cpu_count()} cores; torch {torch_v or 'absent'}, {threads} inference thread(s)"
    if flags is None:
        return Check("CPU runtime", INFO, f"{base}; bf16 support unknown (no /proc/cpuinfo)",
                     "try --precision bf16 and compare the HUD's inference time (d key) with fp32")
    for flag, hw in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")):
        if flag in flags:
            return Check("CPU runtime", OK, f"{base}; bf16 in hardware ({hw})", BF16_FIX)
    simd = "AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    status = OK if "avx2" in flags else WARN
    return Check("CPU runtime", status, f"{base}; no bf16 hardware ({simd}): fp32 is the precision to use",
                 "" if status == OK else "this CPU lacks AVX2: expect a low frame rate; use a smaller --resolution")


def openvino_cpu() -> str:
    """The CPU capabilities OpenVINO reports (``FP32, INT8, BIN, ...``; ``BF16`` where it computes
    bf16 natively), or why they could not be read."""
    try:
        from realtime.backends.openvino_backend import cpu_capabilities, shared_core

        return ", ".join(cpu_capabilities(shared_core()))
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return f"cannot query the CPU plugin: {exc}"


def check_backends(openvino_caps: Callable[[], str] = openvino_cpu) -> Check:
    """Which inference runtimes import, and which one ``--backend auto`` runs on the CPU."""
    have = []
    for mod, dist in (("torch", "torch"), ("onnxruntime", "onnxruntime"), ("openvino", "openvino"),
                      ("tensorrt", "tensorrt")):
        if importlib.util.find_spec(mod) is not None:
            have.append(f"{mod} {_version(dist) or '?'}")
    names = [h.split()[0] for h in have]
    if "openvino" in names:
        have[names.index("openvino")] += f" (CPU: {openvino_caps()})"
    if "onnxruntime" in " ".join(have):
        try:
            providers = importlib.import_module("onnxruntime").get_available_providers()
            have[[h.split()[0] for h in have].index("onnxruntime")] += f" ({', '.join(providers)})"
        except Exception:  # noqa: BLE001 - a broken install is reported, not raised
            pass
    if not any(h.startswith(("torch", "onnxruntime")) for h in have):
        return Check("backends", FAIL, "neither torch nor onnxruntime imports",
                     "pip install torch==2.13.0 (CPU build) then pip install -e . (README)")
    cpu_default = next(n for n in ("openvino", "onnxruntime", "torch") if n in names)
    found = f"{', '.join(have)}; on the CPU --backend auto runs {cpu_default}"
    if cpu_default != "openvino":
        return Check("backends", WARN, found, "pip install 'openvino>=2024.2' (installed with the package: the "
                                              "fastest CPU runtime measured, benchmarks/README.md)")
    return Check("backends", OK, found)


def check_cameras(lister: Callable[[], list[tuple[int, str]]] | None = None) -> Check:
    """The camera indices that deliver a frame."""
    if lister is None:
        from realtime.live.capture import list_cameras as lister  # opens devices: only when run
    found = lister()
    if found:
        return Check("cameras", OK, ", ".join(f"{i} ({size})" for i, size in found), "")
    fix = ("connect a webcam; on Linux check /dev/video* and that you are in the 'video' group "
           "(sudo usermod -aG video $USER); or run on a file: tryon live --video FILE")
    return Check("cameras", WARN, "none found", fix)


def check_display() -> Check:
    from realtime.live.window import display_reachable

    ok, found = display_reachable()
    if ok:
        return Check("display", OK, found, "")
    return Check("display", WARN, found, "run in a desktop session, or headless: tryon live --no-display "
                                         "--record FILE / --virtual-cam; tryon record; tryon demo")


def check_h264() -> Check:
    from realtime.live.record import h264_encoder

    enc = h264_encoder()
    if enc:
        return Check("H.264 recording", OK, f"PyAV {_version('av')} with {enc}: shareable MP4 (plays in browsers "
                                            f"and chats), survives a crash up to its last second", "")
    if importlib.util.find_spec("av") is None:
        return Check("H.264 recording", WARN, "PyAV not installed: recordings use OpenCV's MPEG-4 Part 2 (does not "
                                              "play in browsers, lost if the app is killed)", "pip install av")
    return Check("H.264 recording", WARN, f"PyAV {_version('av')} has no H.264 encoder", "pip install --force-reinstall av")


def virtual_camera_hint(platform: str | None = None) -> str:
    """What a virtual camera needs on this platform."""
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return f"On Linux it needs the v4l2loopback module: {V4L2LOOPBACK_FIX}."
    if platform in ("win32", "darwin"):
        return ("It needs OBS Studio's Virtual Camera: install OBS Studio (obsproject.com), start its virtual camera "
                "once, then close OBS.")
    return "It needs a virtual camera driver supported by pyvirtualcam."


def check_virtual_camera(platform: str | None = None, sys_module: Path = Path("/sys/module/v4l2loopback")) -> Check:
    """pyvirtualcam and the platform's driver (v4l2loopback with exclusive_caps=1 on Linux)."""
    platform = platform or sys.platform
    pkg = _version("pyvirtualcam")
    if pkg is None:
        return Check("virtual camera", INFO, "pyvirtualcam not installed (only for --virtual-cam)",
                     f"pip install 'tryon-realtime[virtualcam]'. {virtual_camera_hint(platform)}")
    if not platform.startswith("linux"):
        return Check("virtual camera", INFO, f"pyvirtualcam {pkg}", virtual_camera_hint(platform))
    if not sys_module.is_dir():
        return Check("virtual camera", WARN, f"pyvirtualcam {pkg}; v4l2loopback not loaded", V4L2LOOPBACK_FIX)
    try:
        caps = (sys_module / "parameters" / "exclusive_caps").read_text().strip()
    except OSError:
        caps = "?"
    if "Y" not in caps and "1" not in caps:
        return Check("virtual camera", WARN, f"pyvirtualcam {pkg}; v4l2loopback loaded with exclusive_caps={caps}: "
                                             "browsers and video-call apps will not list it",
                     "sudo modprobe -r v4l2loopback && " + V4L2LOOPBACK_FIX.split("&& ", 1)[1])
    return Check("virtual camera", OK, f"pyvirtualcam {pkg}; v4l2loopback loaded (exclusive_caps={caps})", "")


def check_gpu() -> Check:
    """An NVIDIA GPU and driver, CUDA in torch, TensorRT."""
    smi = shutil.which("nvidia-smi")
    trt = _version("tensorrt")
    if smi is None:
        return Check("GPU", INFO, "no NVIDIA driver (nvidia-smi not found): the CPU runs the try-on",
                     f"on an NVIDIA machine: install the driver, the CUDA build of torch and TensorRT: {install_hint()}")
    from realtime.sysinfo import gpu_info

    gpu = gpu_info()
    name = (gpu or {}).get("name", "NVIDIA GPU")
    found = f"{name}, driver {(gpu or {}).get('driver', '?')}, TensorRT {trt or 'absent'}"
    if trt is None:
        return Check("GPU", WARN, found, f"{install_hint()}; then tryon doctor --checkpoint CKPT to build and check "
                                         "the engines")
    return Check("GPU", OK, found, "build and check the engines: tryon doctor --checkpoint CKPT")


def run_user_checks() -> list[Check]:
    """Every user check, in report order."""
    return [check_cpu(), check_backends(), check_cameras(), check_display(), check_h264(), check_virtual_camera(),
            check_gpu()]


def format_checks(checks: list[Check]) -> str:
    """Aligned lines for the terminal: status, name, what was found; the fix beneath."""
    width = max(len(c.name) for c in checks)
    lines = ["tryon doctor: this machine", ""]
    for c in checks:
        lines.append(f"  {c.status.upper():<5} {c.name:<{width}}  {c.found}")
        if c.fix:
            lines.append(f"  {'':<5} {'':<{width}}  -> {c.fix}")
    return "\n".join(lines)


def exit_status(checks: list[Check]) -> int:
    """1 when a check failed (the try-on cannot run), else 0."""
    return 1 if any(c.status == FAIL for c in checks) else 0
