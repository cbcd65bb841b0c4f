"""``tryon doctor``: on an NVIDIA machine, build the engines, check them, benchmark them, in one go.

Steps (one report at the end, also written as JSON):

1. environment: the NVIDIA driver (the newest CUDA it runs) against the CUDA build of the
   installed TensorRT wheels (:mod:`realtime.backends.trt_install`: names the extra to
   install, ``trt-cu12`` or ``trt-cu13``), ``tensorrt`` (>= 10), ``pycuda``, a visible CUDA
   device, ``onnxruntime``. Anything missing is listed precisely and the command exits with
   status 2; so does a request this TensorRT cannot do (``TrtVersionError``), and a failed
   parse/build (``TrtBuildError``) exits with 1, each as a message, not a traceback;
2. export (only with ``--checkpoint``): ``tryon export`` into ``OUT/onnx``;
3. engines: the foreground engine (fp32; it runs once per accessory) and the per-frame
   engine (fp16 by default: built from the ``*_frame_fp16.onnx`` graph, which is strongly
   typed on TensorRT 10 and 11 alike; ``--no-fp16`` for fp32), with a timing cache;
4. parity: decoded keypoints of the engines vs ONNX Runtime fp32 on the CPU, on a STRAT
   split (``--data``) or synthetic inputs; fails above 1 px;
5. benchmark: warm-up, then p50/p95/p99 of ``set_foreground`` (H2D copy of the RGBA input +
   foreground engine; F_f stays on the device) and of ``infer`` (H2D copy of the
   background + frame engine + D2H copy of the heatmaps + stream synchronisation;
   preprocessing and decoding, which run on the host, excluded), with and without
   CUDA-graph replay.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realtime.backends.trt_install import (cuda_version_text, driver_cuda_version, driver_problems, install_hint,
                                           installed_tensorrt_cuda_major)
from realtime.io import atomic_write_bytes

log = logging.getLogger(__name__)

#: Keypoint parity limit between the engines and ONNX Runtime fp32, in pixels.
PARITY_TOLERANCE_PX = 1.0


class EnvironmentNotReady(RuntimeError):
    """Something the doctor needs is missing; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check_environment(device: int = 0) -> tuple[list[str], dict[str, Any]]:
    """What is missing for engine work on this machine, and what was found.

    Returns:
        ``(problems, found)``: one precise line per missing piece, and versions / GPU found.
    """
    problems: list[str] = []
    found: dict[str, Any] = {}
    driver_cuda = driver_cuda_version()
    trt_cuda, trt_dist = installed_tensorrt_cuda_major()
    release = _driver_release() if driver_cuda is not None else None
    found["driver"] = {"release": release, "cuda": cuda_version_text(driver_cuda) if driver_cuda else None}
    if trt_cuda is not None:
        found["tensorrt_cuda"] = f"{trt_cuda} ({trt_dist})"
    problems += driver_problems(driver_cuda, trt_cuda, trt_dist, release)
    try:
        trt = importlib.import_module("tensorrt")
        found["tensorrt"] = str(trt.__version__)
        from realtime.backends.trt_version import trt_version_key

        if trt_version_key(trt.__version__)[0] < 10:
            problems.append(f"tensorrt {trt.__version__} is too old: TensorRT >= 10 is needed ({install_hint()})")
    except ImportError as exc:
        problems.append(f"tensorrt: not importable ({exc}). Install the TensorRT wheels that fit the driver: "
                        f"{install_hint()}; it needs an NVIDIA driver")
    try:
        cuda = importlib.import_module("pycuda.driver")
        found["pycuda"] = str(getattr(importlib.import_module("pycuda"), "VERSION_TEXT", "?"))
        try:
            cuda.init()
            count = cuda.Device.count()
        except Exception as exc:  # pycuda raises its own error types for driver failures
            problems.append(f"CUDA driver: cuInit failed ({exc}); is an NVIDIA driver installed and a GPU visible?")
        else:
            if device >= count:
                problems.append(f"CUDA device {device}: not present ({count} CUDA device(s) visible)")
            else:
                dev = cuda.Device(device)
                found["gpu"] = {"name": dev.name(), "compute_capability": "%d.%d" % dev.compute_capability(),
                                "memory_gib": round(dev.total_memory() / 2**30, 1)}
                found["cuda_driver"] = cuda.get_driver_version()
    except ImportError as exc:
        problems.append(f"pycuda: not importable ({exc}). It comes with the TensorRT extras ({install_hint()}); "
                        f"pip builds it from source: it needs the CUDA toolkit headers (cuda.h, nvcc on PATH or "
                        f"CUDA_ROOT) and a C++ compiler")
    try:
        found["onnxruntime"] = importlib.import_module("onnxruntime").__version__
    except ImportError as exc:
        problems.append(f"onnxruntime: not importable ({exc}); pip install onnxruntime")
    return problems, found


def _driver_release() -> str | None:
    """The NVIDIA driver release (e.g. ``550.54.15``) from nvidia-smi, if it runs."""
    from realtime.sysinfo import nvidia_smi

    return nvidia_smi("driver_version")


@dataclass
class DoctorReport:
    """Everything ``tryon doctor`` found and measured."""

    environment: dict[str, Any]
    export_dir: str
    engines: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    benchmark: dict[str, Any] = field(default_factory=dict)
    passed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "export_dir": self.export_dir, "engines": self.engines,
                "parity": self.parity, "benchmark": self.benchmark, "passed": self.passed}

    def format_text(self) -> str:
        env = self.environment
        gpu = env.get("gpu") or {}
        lines = ["tryon doctor report", "",
                 f"GPU        {gpu.get('name', '?')} (sm {gpu.get('compute_capability', '?')}, "
                 f"{gpu.get('memory_gib', '?')} GiB), driver {(env.get('driver') or {}).get('release') or '?'} "
                 f"(CUDA {(env.get('driver') or {}).get('cuda') or '?'}), TensorRT {env.get('tensorrt', '?')}, "
                 f"onnxruntime {env.get('onnxruntime', '?')}", f"export     {self.export_dir}"]
        for role, eng in self.engines.items():
            lines.append(f"engine     {role}: {eng['path']} ({eng['precision']}, built in {eng['seconds']:.1f} s)")
        if self.parity:
            p = self.parity
            lines.append(f"parity     vs ONNX Runtime fp32 on {p['inputs']}: mean {p['mean_px']:.4f} px, "
                         f"p95 {p['p95_px']:.4f} px, max {p['max_px']:.4f} px (limit {p['tolerance_px']} px) "
                         f"-> {'PASS' if p['passed'] else 'FAIL'}")
        for name, stats in self.benchmark.get("timings_ms", {}).items():
            lines.append(f"latency    {name:28s} p50 {stats['p50']:7.3f}  p95 {stats['p95']:7.3f}  "
                         f"p99 {stats['p99']:7.3f} ms  (n={stats['n']})")
        if self.benchmark.get("includes"):
            lines.append(f"           {self.benchmark['includes']}")
        lines.append(f"result     {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def _graphs(export_dir: Path) -> dict[str, Path]:
    """fg / frame fp32 / frame fp16 graphs of an export folder, by metadata."""
    from realtime.backends.onnx_backend import read_onnx_meta

    out: dict[str, Path] = {}
    for path in sorted(export_dir.glob("*.onnx")):
        try:
            meta = read_onnx_meta(path)
        except Exception as exc:  # foreign files are skipped (onnx raises protobuf errors)
            log.debug("skipping %s: %s", path, exc)
            continue
        key = "fg" if meta.graph == "fg" else f"frame_{meta.precision}"
        if key in out:
            raise ValueError(f"{export_dir}: two {key} graphs ({out[key].name}, {path.name}); one model per folder")
        out[key] = path
    if "fg" not in out or "frame_fp32" not in out:
        raise FileNotFoundError(f"{export_dir}: needs the fg and fp32 frame graphs of 'tryon export'; found "
                                f"{', '.join(p.name for p in out.values()) or 'none'}")
    return out


def run_doctor(export_dir: str | Path | None = None, checkpoint: str | Path | None = None,
               out_dir: str | Path | None = None, data: str | Path | None = None, fp16: bool = True,
               samples: int = 16, iters: int = 200, warmup: int = 20, workspace_mb: int = 2048,
               device: int = 0) -> DoctorReport:
    """Build, check and benchmark the engines (see the module docstring).

    Raises:
        EnvironmentNotReady: TensorRT, pycuda or a GPU is missing (nothing else was done).
        ValueError / FileNotFoundError: bad arguments or export folder.
    """
    import numpy as np

    from realtime.sysinfo import hardware_info, summarize_ms, time_calls

    if (export_dir is None) == (checkpoint is None):
        raise ValueError("pass exactly one of --export-dir and --checkpoint")
    problems, found = check_environment(device)
    if problems:
        raise EnvironmentNotReady(problems)

    from engine_build.export import KeypointErrorStats, export_checkpoint, verification_pairs
    from engine_build.trt_builder import build_engine
    from realtime.backends.onnx_backend import OnnxBackend
    from realtime.backends.tensorrt_backend import TensorRTBackend
    from realtime.codec import HeatmapCodec
    from realtime.preprocess import background_input, foreground_input

    if checkpoint is not None:
        base = Path(out_dir) if out_dir else Path(checkpoint).with_suffix("") / "deploy"
        export_dir = base / "onnx"
        export_checkpoint(checkpoint, export_dir, data=data, samples=samples)
    export_dir = Path(export_dir)
    engines_dir = Path(out_dir) / "engines" if out_dir else export_dir / "engines"
    graphs = _graphs(export_dir)
    report = DoctorReport(environment={**hardware_info(), **found}, export_dir=str(export_dir))

    cache = engines_dir / "timing.cache"
    fg_res = build_engine(graphs["fg"], engines_dir, workspace_mb=workspace_mb, timing_cache=cache, device=device)
    if fp16 and "frame_fp16" in graphs:
        frame_res = build_engine(graphs["frame_fp16"], engines_dir, workspace_mb=workspace_mb, timing_cache=cache,
                                 device=device)
    else:  # fp32, or fp16 through TensorRT 10's builder flag (refused on 11 with a message)
        frame_res = build_engine(graphs["frame_fp32"], engines_dir, fp16=fp16, workspace_mb=workspace_mb,
                                 timing_cache=cache, device=device)
    for role, res in (("fg", fg_res), ("frame", frame_res)):
        report.engines[role] = {"path": str(res.path), "precision": res.header["precision"], "seconds": res.seconds,
                                "io": res.header["io"]}

    reference = OnnxBackend(graphs["frame_fp32"], providers=["CPUExecutionProvider"])
    cfg = reference.info.config
    codec = HeatmapCodec(cfg.codec)
    pairs, described = verification_pairs(cfg, data, samples)
    inputs = [(foreground_input(fg, cfg.input_size)[0], background_input(bg)) for fg, bg in pairs]

    timings: dict[str, Any] = {}
    parity_pts: dict[str, list[Any]] = {"ort": [], "trt": []}
    fg0, bg0 = inputs[0]
    for graph_on in (False, True):
        trt_backend = TensorRTBackend(frame_res.path, fg_res.path, category=cfg.category, device=device,
                                      cuda_graph=graph_on)
        try:
            if not graph_on:  # parity once (the graph replays the same kernels), set_foreground timed once
                for fg_in, bg_in in inputs:
                    for name, backend in (("ort", reference), ("trt", trt_backend)):
                        backend.set_foreground(fg_in)
                        parity_pts[name].append(codec.decode(backend.infer(bg_in)).pts_xy[0])
                timings["set_foreground"] = summarize_ms(time_calls(
                    functools.partial(trt_backend.set_foreground, fg0), max(iters // 10, 10), warmup,
                    sync=trt_backend.synchronize))
            trt_backend.set_foreground(fg0)
            timings[f"infer ({'cuda graph' if graph_on else 'no graph'})"] = summarize_ms(time_calls(
                functools.partial(trt_backend.infer, bg0), iters, warmup, sync=trt_backend.synchronize))
        finally:
            trt_backend.close()
    stats = KeypointErrorStats.between(np.stack(parity_pts["trt"]), np.stack(parity_pts["ort"]))
    report.parity = {"inputs": described, "mean_px": stats.mean_px, "p95_px": stats.p95_px,
                     "max_px": stats.max_px, "n": stats.n, "tolerance_px": PARITY_TOLERANCE_PX,
                     "passed": stats.max_px <= PARITY_TOLERANCE_PX}
    reference.set_foreground(fg0)
    timings["onnxruntime cpu fp32 infer"] = summarize_ms(time_calls(functools.partial(reference.infer, bg0),
                                                                    max(iters // 20, 5), 2))
    report.benchmark = {
        "timings_ms": timings, "iters": iters, "warmup": warmup,
        "includes": "set_foreground = H2D of the RGBA input + fg engine (F_f stays on the GPU); infer = H2D of the "
                    "background + frame engine + D2H of the heatmaps + stream sync; preprocessing and decoding "
                    "run on the host and are not included",
    }
    report.passed = bool(report.parity["passed"])
    atomic_write_bytes(engines_dir / "doctor.json", (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    return report


def main(argv: list[str] | None = None) -> int:
    """``tryon doctor``: the user checks (:mod:`realtime.live.doctor`), then with ``--export-dir`` /
    ``--checkpoint`` the engines. Returns 0 when all passes, 1 when a user check or parity fails,
    2 when something the engines need is missing."""
    from realtime.cli import command_parser
    from realtime.live.doctor import exit_status, format_checks, run_user_checks

    parser = command_parser(
        "tryon doctor", "Check this machine for the try-on (CPU, cameras, display, H.264, virtual camera, GPU), "
                        "each with its fix; on an NVIDIA machine also build the engines, check keypoint parity, "
                        "benchmark.",
        ["tryon doctor", "tryon doctor --checkpoint realtime/weights/glasses_lite.pt"])
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--export-dir", type=Path, help="folder written by 'tryon export'")
    src.add_argument("--checkpoint", type=Path, help="checkpoint to export first")
    parser.add_argument("--out", type=Path, help="output folder (default: EXPORT_DIR/engines)")
    parser.add_argument("--data", type=Path, help="STRAT split for parity inputs (default: synthetic)")
    parser.add_argument("--no-fp16", dest="fp16", action="store_false", help="fp32 frame engine")
    parser.add_argument("--samples", type=int, default=16, help="parity samples")
    parser.add_argument("--iters", type=int, default=200, help="timed infer calls")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first")
    parser.add_argument("--workspace", type=int, default=2048, help="TensorRT workspace (MiB)")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    checks = run_user_checks()
    print(format_checks(checks))
    if args.export_dir is None and args.checkpoint is None:
        return exit_status(checks)
    print()
    from engine_build.trt_builder import TrtBuildError
    from realtime.backends.trt_version import TrtVersionError
    from realtime.errors import BackendError

    try:
        report = run_doctor(args.export_dir, args.checkpoint, args.out, args.data, args.fp16, args.samples,
                            args.iters, args.warmup, args.workspace, args.device)
    except EnvironmentNotReady as exc:
        print("tryon doctor: cannot build or run TensorRT engines on this machine:")
        for problem in exc.problems:
            print(f"  - {problem}")
        return 2
    except TrtVersionError as exc:
        print(f"tryon doctor: this TensorRT cannot do what was asked:\n  - {exc}")
        return 2
    except TrtBuildError as exc:
        print(f"tryon doctor: building the engines failed:\n  - {exc}")
        return 1
    except BackendError as exc:  # engine/sidecar refused, CUDA failure while running
        print(f"tryon doctor: the engines could not be run:\n  - {exc}")
        return 1
    print(report.format_text())
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    return 0 if report.passed else 1
