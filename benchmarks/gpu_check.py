"""The prepared GPU check: everything that only an NVIDIA GPU can show, in one offline run (< 10 min).

    bash benchmarks/gpu_check.sh            # or: python benchmarks/gpu_check.py [--quick]

Stages (each is recorded as ok / failed / skipped with its numbers; one failing stage does
not stop the others):

1. ``torch_parity``: every shipped model (``realtime/weights/*.pt``): keypoints of torch CUDA
   FP16 (channels-last), eager and replayed as a CUDA graph, against torch CPU fp32, in
   pixels at network resolution, on the export's synthetic verification inputs; plus the
   per-call latency of both (``infer`` incl. H2D and D2H);
2. ``bench``: ``tryon bench`` per stage, torch CUDA FP16, glasses (224 px) and tie (448 px)
   at 1280x720 and 1920x1080;
3. ``native_cuda``: the CUDA preprocess/composite kernels against their CPU references (the
   ``gpu``-marked test of tests/realtime/test_native.py; skipped when the native library
   was built without CUDA, with the reason);
4. ``tensorrt`` (if ``tensorrt`` and ``pycuda`` import): per shipped model, ``tryon doctor``
   (export, fp32 fg + FP16 frame engines, keypoint parity against ONNX Runtime fp32, engine
   latency with and without CUDA graphs).

Writes ``benchmarks/results/gpu_check_<date>_<gpu>.json`` and ``.md`` with the GPU, driver,
CUDA, torch / TensorRT / onnxruntime versions. Exits 0 when every stage that ran passed,
1 when one failed, 2 when there is no CUDA GPU (nothing is run or written then).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
#: Keypoint parity limits in pixels at network resolution (the export's FP16 bound).
FP16_LIMIT_PX = 1.0


class NoCudaError(RuntimeError):
    """No CUDA GPU is visible: the check refuses to run."""


def shipped_models(weights_dir: Path | None = None) -> list[Path]:
    """The shipped default checkpoints, in name order."""
    from realtime.backends.resolver import WEIGHTS_DIR

    return sorted(Path(weights_dir or WEIGHTS_DIR).glob("*.pt"))


def cuda_environment() -> dict[str, Any]:
    """GPU, driver and versions; raises :class:`NoCudaError` when torch sees no CUDA device."""
    import torch

    if not torch.cuda.is_available():
        raise NoCudaError(f"no CUDA GPU visible to torch {torch.__version__} (CUDA build: {torch.version.cuda}); "
                          f"this check needs an NVIDIA GPU and a CUDA build of torch. Nothing was run.")
    from realtime.backends.trt_install import cuda_version_text, driver_cuda_version
    from realtime.sysinfo import nvidia_smi, hardware_info

    props = torch.cuda.get_device_properties(0)
    env = {**hardware_info(), "gpu_name": props.name, "compute_capability": f"{props.major}.{props.minor}",
           "gpu_memory_gib": round(props.total_memory / 2**30, 1), "driver": nvidia_smi("driver_version"),
           "driver_cuda": cuda_version_text(driver_cuda_version()), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    for mod in ("tensorrt", "onnxruntime", "pycuda"):
        try:
            m = __import__(mod)
            env[mod] = str(getattr(m, "__version__", getattr(m, "VERSION_TEXT", "?")))
        except Exception as exc:  # noqa: BLE001 - an optional package that fails to load is reported, not fatal
            env[mod] = f"not importable ({type(exc).__name__}: {exc})"
    return env


def run_stage(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one stage; its result dict gets ``status`` (ok unless it says otherwise) and ``seconds``.
    An exception becomes ``status: failed`` with the error and the traceback's last lines."""
    t0 = time.perf_counter()
    try:
        out = dict(fn())
        out.setdefault("status", "ok")
    except Exception as exc:  # noqa: BLE001 - a stage failure is data for the report
        out = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc().strip().splitlines()[-6:]}
    out["seconds"] = round(time.perf_counter() - t0, 2)
    print(f"[gpu_check] {name}: {out['status']} ({out['seconds']} s)", flush=True)
    return out


# ------------------------------------------------------------------ 1. torch parity
class CudaGraphFrame:
    """``forward_frame`` captured once as a CUDA graph and replayed (static input/output tensors)."""

    def __init__(self, backend: Any, example_bg: np.ndarray) -> None:
        import torch

        self.torch, self.backend = torch, backend
        net, f_f = backend.net, backend._f_f
        self.static_in = backend._tensor(example_bg)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):  # warm-up on a side stream before capture (torch CUDA graphs notes)
                net.forward_frame(self.static_in, f_f, semantic_logits=False, fp32_head=True)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.static_out = net.forward_frame(self.static_in, f_f, semantic_logits=False, fp32_head=True)[0]

    def infer(self, bg: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            self.static_in.copy_(self.backend._tensor(bg))
            self.graph.replay()
            return self.static_out.float().cpu().numpy()


def torch_parity(checkpoint: Path, samples: int = 16, device: str = "cuda", precision: str = "fp16",
                 cuda_graph: bool = True, iters: int = 100) -> dict[str, Any]:
    """Keypoint error (px) of ``device``/``precision`` (eager, and CUDA graph) vs CPU fp32, and latency."""
    import copy
    import functools

    from engine_build.export import KeypointErrorStats, verification_pairs
    from realtime.backends.torch_backend import TorchBackend
    from realtime.checkpoint import load_model
    from realtime.codec import HeatmapCodec
    from realtime.preprocess import background_input, foreground_input
    from realtime.sysinfo import summarize_ms, time_calls

    net, cfg, _ = load_model(checkpoint)
    ref = TorchBackend(copy.deepcopy(net).float(), device="cpu", precision="fp32")
    dut = TorchBackend(copy.deepcopy(net).float(), device=device, precision=precision, channels_last=True)
    codec = HeatmapCodec(cfg.codec)
    pairs, described = verification_pairs(cfg, samples=samples, seed=7)
    inputs = [(foreground_input(fg, cfg.input_size)[0], background_input(bg)) for fg, bg in pairs]
    pts: dict[str, list[np.ndarray]] = {"ref": [], "eager": [], "graph": []}
    for fg_in, bg_in in inputs:
        for backend, key in ((ref, "ref"), (dut, "eager")):
            backend.set_foreground(fg_in)
            pts[key].append(codec.decode(backend.infer(bg_in)).pts_xy[0])
        if cuda_graph:
            pts["graph"].append(codec.decode(CudaGraphFrame(dut, bg_in).infer(bg_in)).pts_xy[0])
    out: dict[str, Any] = {"model": checkpoint.name, "input_size": cfg.input_size, "inputs": described,
                           "device": device, "precision": precision, "channels_last": True,
                           "limit_px": FP16_LIMIT_PX}
    ref_pts = np.stack(pts["ref"])
    for key in ("eager", "graph"):
        if pts[key]:
            stats = KeypointErrorStats.between(np.stack(pts[key]), ref_pts)
            out[f"{key}_vs_cpu_fp32"] = {"mean_px": stats.mean_px, "p95_px": stats.p95_px, "max_px": stats.max_px,
                                         "n": stats.n}
    fg0, bg0 = inputs[0]
    dut.set_foreground(fg0)
    timing = {"eager": summarize_ms(time_calls(functools.partial(dut.infer, bg0), iters, 10, sync=dut.synchronize))}
    if cuda_graph:
        runner = CudaGraphFrame(dut, bg0)
        timing["cuda_graph"] = summarize_ms(time_calls(functools.partial(runner.infer, bg0), iters, 10,
                                                       sync=dut.synchronize))
    out["latency_ms"] = timing
    out["latency_includes"] = "H2D of the (1,3,S,S) input + network + D2H of the heatmaps + sync"
    worst = max(v["max_px"] for k, v in out.items() if k.endswith("_vs_cpu_fp32"))
    out["status"] = "ok" if worst <= FP16_LIMIT_PX else "failed"
    return out


# ------------------------------------------------------------------ 2./3. subprocess stages
def _run(cmd: list[str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def bench_stage(out_dir: Path, frames: int, timeout: int = 300) -> dict[str, Any]:
    json_path = out_dir / "bench_cuda_fp16.json"
    cmd = [sys.executable, "-m", "realtime.cli", "bench", "--backend", "torch", "--device", "cuda", "--precision",
           "fp16", "--category", "glasses,tie", "--resolution", "1280x720,1920x1080", "--frames", str(frames),
           "--warmup", "10", "--async-seconds", "0", "--json", str(json_path)]
    proc = _run(cmd, timeout)
    out: dict[str, Any] = {"command": " ".join(cmd[1:]), "returncode": proc.returncode,
                           "stdout_tail": proc.stdout.strip().splitlines()[-40:],
                           "status": "ok" if proc.returncode == 0 else "failed"}
    if proc.returncode != 0:
        out["stderr_tail"] = proc.stderr.strip().splitlines()[-20:]
    if json_path.is_file():
        out["report"] = json.loads(json_path.read_text())
    return out


def native_cuda_stage(timeout: int = 240) -> dict[str, Any]:
    from realtime.live import native

    if not native.cuda_available():
        return {"status": "skipped", "reason": f"native library without CUDA: {native.reason()} (build it with "
                                               f"CUDA: see CMakeLists.txt / engine_build/native)"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
           "tests/realtime/test_native.py::test_cuda_kernels_match_cpu"]
    proc = _run(cmd, timeout)
    tail = proc.stdout.strip().splitlines()[-15:]
    status = "ok" if proc.returncode == 0 and any("1 passed" in line for line in tail) else \
        ("skipped" if any("skipped" in line for line in tail) and proc.returncode == 0 else "failed")
    return {"status": status, "command": " ".join(cmd[1:]), "pytest_tail": tail}


# ------------------------------------------------------------------ 4. TensorRT
def tensorrt_stage(models: list[Path], work: Path, samples: int, iters: int,
                   deadline: float | None = None) -> dict[str, Any]:
    try:
        import pycuda.driver  # noqa: F401
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - missing or broken install: reported as a skip with the reason
        from realtime.backends.trt_install import install_hint

        return {"status": "skipped", "reason": f"tensorrt/pycuda not importable ({type(exc).__name__}: {exc}); "
                                               f"{install_hint()}"}
    from engine_build.doctor import run_doctor

    per_model: dict[str, Any] = {}
    for ckpt in models:
        if deadline is not None and time.perf_counter() > deadline:
            per_model[ckpt.stem] = {"status": "skipped", "reason": "time budget of the 10-minute check spent",
                                    "seconds": 0.0}
            continue
        per_model[ckpt.stem] = run_stage(f"tensorrt {ckpt.stem}", lambda ckpt=ckpt: _doctor_dict(
            run_doctor(checkpoint=ckpt, out_dir=work / ckpt.stem, samples=samples, iters=iters, warmup=20)))
    failed = [k for k, v in per_model.items() if v["status"] == "failed"]
    return {"status": "failed" if failed else "ok", "models": per_model}


def _doctor_dict(report: Any) -> dict[str, Any]:
    out = report.to_dict()
    out["status"] = "ok" if report.passed else "failed"
    return out


# ------------------------------------------------------------------ report
def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "gpu"


def to_markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"# GPU check {report['date']}", "",
             f"GPU {env.get('gpu_name')} (sm {env.get('compute_capability')}, {env.get('gpu_memory_gib')} GiB), "
             f"driver {env.get('driver')} (CUDA {env.get('driver_cuda')}), torch {env.get('torch')} "
             f"(CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}), TensorRT {env.get('tensorrt')}, "
             f"onnxruntime {env.get('onnxruntime')}, pycuda {env.get('pycuda')}; CPU {env.get('cpu')}", "",
             "| stage | status | seconds | notes |", "|---|---|---|---|"]
    for name, st in report["stages"].items():
        note = st.get("reason") or st.get("error") or ""
        lines.append(f"| {name} | {st['status']} | {st['seconds']} | {note} |")
    parity = report["stages"].get("torch_parity", {}).get("models", {})
    if parity:
        lines += ["", "## torch CUDA FP16 (channels-last) vs CPU fp32, keypoints in px at network resolution", "",
                  "| model | size | eager max px | graph max px | eager p50 ms | graph p50 ms |",
                  "|---|---|---|---|---|---|"]
        for name, r in parity.items():
            if r.get("status") == "failed" and "error" in r:
                lines.append(f"| {name} | | failed: {r['error']} | | | |")
                continue
            e, g = r.get("eager_vs_cpu_fp32", {}), r.get("graph_vs_cpu_fp32", {})
            t = r.get("latency_ms", {})
            lines.append(f"| {name} | {r.get('input_size')} | {e.get('max_px', float('nan')):.4f} | "
                         f"{g.get('max_px', float('nan')):.4f} | {t.get('eager', {}).get('p50', float('nan')):.3f} | "
                         f"{t.get('cuda_graph', {}).get('p50', float('nan')):.3f} |")
    trt = report["stages"].get("tensorrt", {}).get("models", {})
    for name, r in trt.items():
        if r["status"] == "skipped" or "error" in r:
            lines += ["", f"## TensorRT {name}: {r['status']} ({r.get('reason') or r.get('error')})"]
            continue
        p = r.get("parity") or {}
        lines += ["", f"## TensorRT {name}: {r['status']}", "",
                  f"parity vs ONNX Runtime fp32: max {p.get('max_px')} px (limit {p.get('tolerance_px')})"]
        for k, v in (r.get("benchmark") or {}).get("timings_ms", {}).items():
            lines.append(f"- {k}: p50 {v['p50']:.3f} ms, p99 {v['p99']:.3f} ms")
    bench = report["stages"].get("bench", {})
    if bench.get("stdout_tail"):
        lines += ["", "## tryon bench (torch CUDA fp16)", "", "```", *bench["stdout_tail"], "```"]
    lines += ["", f"result: {report['result']}"]
    return "\n".join(lines) + "\n"


#: Seconds after which the TensorRT stage builds no further model (the wrapper stops at 600).
TIME_BUDGET_S = 480.0


def run_check(args: argparse.Namespace) -> tuple[int, list[Path]]:
    """Run every stage; the JSON + Markdown are rewritten after each stage, so a run stopped by
    the wrapper's timeout still leaves what it measured."""
    env = cuda_environment()  # raises NoCudaError first: nothing is run or written without a GPU
    from realtime.io import atomic_write_bytes

    t0 = time.perf_counter()
    date = dt.date.today().isoformat()
    out_dir = Path(args.out_dir)
    base = out_dir / f"gpu_check_{date}_{slug(env['gpu_name'])}"
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="tryon_gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)  # exports, engines, bench JSON: not part of the results
    models = shipped_models(args.weights)
    samples, iters = (4, 30) if args.quick else (16, 100)
    paths = [base.with_suffix(".json"), base.with_suffix(".md")]
    report: dict[str, Any] = {"date": date, "environment": env, "models": [m.name for m in models], "stages": {},
                              "work_dir": str(work), "result": "INCOMPLETE"}

    def save() -> None:
        atomic_write_bytes(paths[0], (json.dumps(report, indent=1, default=str) + "\n").encode())
        atomic_write_bytes(paths[1], to_markdown(report).encode())

    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("torch_parity", lambda: _per_model(models, samples, iters)),
        ("bench", lambda: bench_stage(work, frames=30 if args.quick else 100)),
        ("native_cuda", native_cuda_stage),
        ("tensorrt", lambda: tensorrt_stage(models[:1] if args.quick else models, work, samples, iters * 2,
                                            deadline=t0 + TIME_BUDGET_S)),
    ]
    for name, fn in plan:
        report["stages"][name] = run_stage(name, fn)
        save()
    failed = [k for k, v in report["stages"].items() if v["status"] == "failed"]
    report["result"] = f"FAIL ({', '.join(failed)})" if failed else "PASS"
    report["seconds"] = round(time.perf_counter() - t0, 1)
    save()
    return (1 if failed else 0), paths


def _per_model(models: list[Path], samples: int, iters: int) -> dict[str, Any]:
    if not models:
        raise FileNotFoundError("no shipped models (realtime/weights/*.pt)")
    res = {m.stem: run_stage(f"torch_parity {m.stem}", lambda m=m: torch_parity(m, samples, iters=iters))
           for m in models}
    return {"status": "failed" if any(r["status"] != "ok" for r in res.values()) else "ok", "models": res}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="where the JSON + Markdown go")
    p.add_argument("--weights", type=Path, default=None, help="checkpoint folder (default realtime/weights)")
    p.add_argument("--quick", action="store_true", help="fewer samples and iterations (a smoke run)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="keep the exported graphs and engines here (default: a temporary folder)")
    args = p.parse_args(argv)
    try:
        code, paths = run_check(args)
    except NoCudaError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
