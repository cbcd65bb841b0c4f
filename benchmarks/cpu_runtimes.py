"""CPU runtimes for the shipped models, side by side in one run: per-frame inference and decode (issue 14).

Per model (shipped glasses and tie by default), the per-frame network path with the
accessory's features cached, on the same inputs, interleaved call by call (rotating order)
so that every ratio comes from the same moments of a shared machine:

* torch fp32, channels-last (the product's torch backend), 1 thread;
* onnxruntime fp32 on the exported graph, 1 thread;
* OpenVINO fp32 on the exported graph, 1 and 2 threads;
* OpenVINO with ``precision=auto`` (what the backend picks on this CPU: bf16 only on a bf16
  CPU with a passing stored check).

Keypoint error of each runtime vs torch fp32 (decoded, pixels at network resolution, over
the verification inputs: bundled accessories on synthetic backgrounds). Decode time
(:meth:`realtime.codec.HeatmapCodec.decode_quad`, what the pipeline calls) on the torch
network's raw channels-last output (the layout ``TorchBackend.infer`` returned before
issue 14) vs the C-contiguous array every backend returns now.

The graphs come from the first-use export cache (:mod:`realtime.backends.export_cache`).

    python benchmarks/cpu_runtimes.py [--iters 30] [--models glasses_lite,tie_lite_nosm]

Writes benchmarks/results/cpu_runtimes_<date>_<cpu>.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
WEIGHTS = Path(__file__).resolve().parents[1] / "realtime" / "weights"


def _interleaved(fns: dict[str, Callable[[], Any]], iters: int, warmup: int = 2) -> dict[str, list[float]]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    out: dict[str, list[float]] = {k: [] for k in names}
    for i in range(iters):
        order = names[i % len(names):] + names[:i % len(names)]
        for k in order:
            t0 = time.perf_counter()
            fns[k]()
            out[k].append(time.perf_counter() - t0)
    return out


def bench_model(name: str, iters: int, samples: int) -> dict[str, Any]:
    import torch

    from realtime.backends.export_cache import cached_export
    from realtime.backends.graph_export import KeypointErrorStats, compare_keypoints, synthetic_pairs
    from realtime.backends.onnx_backend import OnnxBackend
    from realtime.backends.openvino_backend import OpenVinoBackend, finish_export
    from realtime.backends.torch_backend import TorchBackend
    from realtime.codec import HeatmapCodec
    from realtime.preprocess import background_input, foreground_input
    from realtime.sysinfo import summarize_ms

    torch.set_num_threads(1)
    ckpt = WEIGHTS / f"{name}.pt"
    frame = cached_export(ckpt, finish_export)
    runtimes = {
        "torch_fp32": TorchBackend.from_path(ckpt),
        "onnxruntime_fp32": OnnxBackend(frame, providers=["CPUExecutionProvider"], intra_op_threads=1),
        "openvino_fp32_1t": OpenVinoBackend(frame, threads=1, precision="fp32"),
        "openvino_fp32_2t": OpenVinoBackend(frame, threads=2, precision="fp32"),
        "openvino_auto_1t": OpenVinoBackend(frame, threads=1, precision="auto"),
    }
    cfg = runtimes["torch_fp32"].info.config
    pairs, described = synthetic_pairs(cfg, samples, seed=7)
    pts, _ = compare_keypoints(None, runtimes, pairs)
    errors = {k: KeypointErrorStats.between(v, pts["torch_fp32"]).__dict__ for k, v in pts.items() if k != "torch_fp32"}

    fg_in, _ = foreground_input(pairs[0][0], cfg.input_size)
    bg_in = background_input(pairs[0][1])
    for b in runtimes.values():
        b.set_foreground(fg_in)
    times = _interleaved({k: (lambda b=b: b.infer(bg_in)) for k, b in runtimes.items()}, iters)
    infer = {k: summarize_ms(v) for k, v in times.items()}
    ratios = {k: infer[k]["p50"] / infer["torch_fp32"]["p50"] for k in infer}

    # decode: the torch network's own output layout (channels-last) vs the C-contiguous copy
    tb = runtimes["torch_fp32"]
    with torch.inference_mode():
        raw = tb.net.forward_frame(tb._tensor(bg_in), tb._f_f, semantic_logits=False)[0].float().numpy()
    contiguous = np.ascontiguousarray(raw)
    codec = HeatmapCodec(cfg.codec)
    init = np.array([[0, 0], [100, 0], [100, 40], [0, 40]], np.float64)
    dec = _interleaved({"channels_last": lambda: codec.decode_quad(raw[0], init),
                        "contiguous": lambda: codec.decode_quad(contiguous[0], init),
                        "copy_then_decode": lambda: codec.decode_quad(np.ascontiguousarray(raw)[0], init)},
                       iters * 3)
    decode = {k: summarize_ms(v) for k, v in dec.items()}
    return {"model": name, "input_size": cfg.input_size, "graph": str(frame), "inputs": described,
            "infer_ms": infer, "ratio_to_torch_fp32_p50": ratios, "keypoint_error_vs_torch_fp32_px": errors,
            "openvino_auto_precision": runtimes["openvino_auto_1t"].info.precision,
            "openvino_auto_reason": runtimes["openvino_auto_1t"].choice.reason,
            "raw_torch_output_strides": list(raw.strides), "decode_ms": decode,
            "decode_ratio_channels_last_to_contiguous": decode["channels_last"]["p50"] / decode["contiguous"]["p50"]}


def to_markdown(report: dict[str, Any]) -> str:
    hw = report["hardware"]
    lines = [f"# CPU runtimes, per-frame inference and decode ({report['date']})", "",
             f"Machine: {hw.get('cpu')}, {hw.get('cores')} logical cores, shared with other engineers' jobs "
             f"(load average {report['load_before']} before, {report['load_after']} after). OpenVINO "
             f"{report['versions']['openvino']}, onnxruntime {report['versions']['onnxruntime']}, torch "
             f"{report['versions']['torch']}. CPU capabilities (OpenVINO): {', '.join(report['cpu_capabilities'])}.",
             "", f"{report['iters']} interleaved calls per runtime (rotating order), F_f cached, p50 / p95 ms; "
             "ratios are p50 / torch fp32 p50 in the same run. Keypoint error: decoded corners vs torch fp32 "
             "(pixels at network resolution).", ""]
    for m in report["models"]:
        lines += [f"## {m['model']} ({m['input_size']} px)", "",
                  "| runtime | p50 ms | p95 ms | ratio to torch fp32 | keypoint error vs torch, max / p99 px |",
                  "|---|---|---|---|---|"]
        for k, s in m["infer_ms"].items():
            err = m["keypoint_error_vs_torch_fp32_px"].get(k)
            e = f"{err['max_px']:.4f} / {err['p99_px']:.4f}" if err else "reference"
            lines.append(f"| {k} | {s['p50']:.1f} | {s['p95']:.1f} | {m['ratio_to_torch_fp32_p50'][k]:.2f} | {e} |")
        d = m["decode_ms"]
        lines += ["", f"OpenVINO `precision=auto` here: **{m['openvino_auto_precision']}** ({m['openvino_auto_reason']}).",
                  "", f"Decode (`decode_quad`) of the torch network's raw output, strides {m['raw_torch_output_strides']} "
                  f"(channels-last): {d['channels_last']['p50']:.3f} ms p50; of the C-contiguous array every backend "
                  f"returns now: {d['contiguous']['p50']:.3f} ms; copy + decode: {d['copy_then_decode']['p50']:.3f} ms. "
                  f"Ratio channels-last / contiguous: **{m['decode_ratio_channels_last_to_contiguous']:.1f}x**.", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import os

    import onnxruntime
    import openvino
    import torch

    from realtime.backends.openvino_backend import cpu_capabilities
    from realtime.sysinfo import hardware_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="glasses_lite,tie_lite_nosm")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--samples", type=int, default=8, help="inputs for the keypoint comparison")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    load_before = round(os.getloadavg()[0], 2)
    models = [bench_model(n, args.iters, args.samples) for n in args.models.split(",")]
    hw = hardware_info()
    report = {"date": dt.date.today().isoformat(), "hardware": hw, "iters": args.iters, "models": models,
              "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
              "cpu_capabilities": cpu_capabilities(openvino.Core()),
              "versions": {"openvino": openvino.__version__, "onnxruntime": onnxruntime.__version__,
                           "torch": torch.__version__}}
    from realtime.bench.report import hardware_slug, write_report

    markdown = to_markdown(report)
    paths = write_report(report, args.out_dir / f"cpu_runtimes_{report['date']}_{hardware_slug(report)}.json", markdown)
    print(markdown)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
