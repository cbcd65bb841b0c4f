"""CPU runtimes for the shipped models, side by side in one run: per-frame inference and decode (issue 14).

Per model (shipped glasses and tie by default), the per-frame network path with the
accessory's features cached, on the same inputs, interleaved call by call (rotating order)
so that every ratio comes from the same moments of a shared machine:

* torch fp32, channels-last (the product's torch backend), 1 thread;
* onnxruntime fp32 on the exported graph, 1 thread;
* OpenVINO fp32 on the exported graph, 1 and 2 threads;
* OpenVINO with ``precision=auto`` (what the backend picks on this CPU: bf16 only on a bf16
  CPU with a passing stored check);
* OpenVINO fp32, 1 thread, with each CPU setting changed in turn (:data:`OV_SETTINGS`, on top
  of the backend's ``COMPILE_PROPERTIES``: no latency hint, denormals flushed, threads pinned,
  the static TBB partitioner, ACCURACY execution mode, a model cache); with the time each takes
  to compile (the cache's cold and warm start), whether the graphs' shapes are static (nothing
  to reshape then), and where OpenVINO's own per-layer counters (``PERF_COUNT``) put the time;
* OpenVINO fp32, 1 thread, on the per-frame graph cleaned by ONNX Runtime's offline basic
  optimisations (:data:`ORT_CLEANED`), with both graphs' node counts and the layer counts of what
  OpenVINO compiled from each;
* which nodes of the per-frame graph depend on the accessory's F_f alone (work that would belong
  in the foreground graph, run once per accessory).

``--repeats N`` runs the interleaved timing N times (fresh order each time) and reports each
repeat's ratio to torch fp32, so the spread of the ratios is in the result; ``--only`` keeps
some rows (torch fp32 is always timed).

Keypoint error of each runtime vs torch fp32 (decoded, pixels at network resolution, over
the verification inputs: bundled accessories on synthetic backgrounds). Decode time
(:meth:`realtime.codec.HeatmapCodec.decode_quad`, what the pipeline calls) on the torch
network's raw channels-last output (the layout ``TorchBackend.infer`` returned before
issue 14) vs the C-contiguous array every backend returns now.

The graphs come from the first-use export cache (:mod:`realtime.backends.export_cache`).

    python benchmarks/cpu_runtimes.py [--iters 30] [--repeats 1] [--models glasses_lite,tie_lite_nosm]
        [--only openvino_fp32_1t,openvino_ort_cleaned_graph]

Writes benchmarks/results/cpu_runtimes_<date>_<cpu>.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
#: CPU settings compared with the backend's own (None removes a property), 1 thread, fp32.
OV_SETTINGS: dict[str, dict[str, Any]] = {
    "openvino_no_hint": {"PERFORMANCE_HINT": None},
    "openvino_denormals_flushed": {"CPU_DENORMALS_OPTIMIZATION": True},
    "openvino_pinned": {"ENABLE_CPU_PINNING": True},
    "openvino_tbb_static": {"TBB_PARTITIONER": "STATIC"},
    "openvino_accuracy_mode": {"EXECUTION_MODE_HINT": "ACCURACY"},
    "openvino_model_cache": {"CACHE_DIR": "<a fresh temporary folder>"},  # replaced by one per model
    "openvino_no_hyper_threading": {"ENABLE_HYPER_THREADING": False},
}
#: The per-frame graph after ONNX Runtime's offline basic optimisations (constant folding, redundant
#: node elimination, Conv + BatchNorm / Add / Mul fusion: standard ONNX ops only), compiled like the
#: backend's: whether graph-level clean-up before OpenVINO changes anything.
ORT_CLEANED = "openvino_ort_cleaned_graph"
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


def accessory_only_nodes(graph_path: Path) -> list[str]:
    """``op_type:name`` of the per-frame graph's nodes whose inputs trace back to F_f and
    constants only (never to the background)."""
    import onnx

    from realtime.artifacts import BG_INPUT, FEATURES

    g = onnx.load(str(graph_path)).graph
    dep: dict[str, frozenset[str]] = {FEATURES: frozenset({"f_f"}), BG_INPUT: frozenset({"background"})}
    out = []
    for n in g.node:
        d = frozenset().union(*(dep.get(i, frozenset()) for i in n.input if i))
        for o in n.output:
            dep[o] = d
        if n.op_type != "Constant" and d == {"f_f"}:
            out.append(f"{n.op_type}:{n.name}")
    return out


def ort_cleaned_graph(graph_path: Path, out_path: Path) -> dict[str, int]:
    """Write ``graph_path`` after ONNX Runtime's offline basic optimisations to ``out_path``
    (the metadata kept, so the backend opens it); node counts before and after."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(out_path)
    ort.InferenceSession(str(graph_path), so, providers=["CPUExecutionProvider"])
    before, after = onnx.load(str(graph_path)), onnx.load(str(out_path))
    del after.metadata_props[:]
    after.metadata_props.extend(before.metadata_props)
    onnx.save(after, str(out_path))
    return {"nodes_before": len(before.graph.node), "nodes_after": len(after.graph.node)}


def _runtime_layers(compiled: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        kind = str(op.get_rt_info()["layerType"].astype(str))
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def bench_model(name: str, iters: int, samples: int, repeats: int = 1, only: set[str] | None = None,
                work_dir: Path | None = None) -> dict[str, Any]:
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
    compile_s: dict[str, float] = {}

    def timed(key: str, make: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = make()
        compile_s[key] = round(time.perf_counter() - t0, 3)
        return out

    def wanted(key: str) -> bool:
        return only is None or key in only or key in ("torch_fp32", "openvino_fp32_1t", "openvino_auto_1t")

    runtimes = {
        "torch_fp32": TorchBackend.from_path(ckpt),
        "onnxruntime_fp32": OnnxBackend(frame, providers=["CPUExecutionProvider"], intra_op_threads=1),
        "openvino_fp32_1t": timed("openvino_fp32_1t", lambda: OpenVinoBackend(frame, threads=1, precision="fp32")),
        "openvino_fp32_2t": OpenVinoBackend(frame, threads=2, precision="fp32"),
        "openvino_auto_1t": OpenVinoBackend(frame, threads=1, precision="auto"),
    }
    with tempfile.TemporaryDirectory(prefix="ov_cache_") as cache_dir:
        for key, props in OV_SETTINGS.items():
            if not wanted(key):
                continue
            props = {k: (cache_dir if k == "CACHE_DIR" else v) for k, v in props.items()}
            if "CACHE_DIR" in props:  # the first compile fills the cache, the row's own loads from it
                timed(key + "_cold", lambda: OpenVinoBackend(frame, threads=1, precision="fp32", properties=props))
            runtimes[key] = timed(key, lambda: OpenVinoBackend(frame, threads=1, precision="fp32", properties=props))
    cleaned_dir = Path(tempfile.mkdtemp(prefix="ort_cleaned_", dir=work_dir))
    cleaned = cleaned_dir / frame.name
    cleanup = ort_cleaned_graph(frame, cleaned)
    if wanted(ORT_CLEANED):
        fg_path = runtimes["openvino_fp32_1t"].info.meta["fg_path"]
        runtimes[ORT_CLEANED] = timed(ORT_CLEANED, lambda: OpenVinoBackend(cleaned, fg_path=fg_path, threads=1,
                                                                           precision="fp32"))
        cleanup["openvino_layers_original"] = _runtime_layers(runtimes["openvino_fp32_1t"].frame_compiled)
        cleanup["openvino_layers_cleaned"] = _runtime_layers(runtimes[ORT_CLEANED].frame_compiled)
    runtimes = {k: v for k, v in runtimes.items() if wanted(k)}
    ov = runtimes["openvino_fp32_1t"]
    static = all(p.get_partial_shape().is_static for c in (ov.fg_compiled, ov.frame_compiled) for p in c.inputs)
    cfg = runtimes["torch_fp32"].info.config
    pairs, described = synthetic_pairs(cfg, samples, seed=7)
    pts, _ = compare_keypoints(None, runtimes, pairs)
    errors = {k: KeypointErrorStats.between(v, pts["torch_fp32"]).__dict__ for k, v in pts.items() if k != "torch_fp32"}

    fg_in, _ = foreground_input(pairs[0][0], cfg.input_size)
    bg_in = background_input(pairs[0][1])
    for b in runtimes.values():
        b.set_foreground(fg_in)
    fns = {k: (lambda b=b: b.infer(bg_in)) for k, b in runtimes.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    repeat_ratios: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        names = list(fns)
        names = names[r % len(names):] + names[:r % len(names)]  # a different order each repeat
        got = _interleaved({k: fns[k] for k in names}, iters)
        torch_p50 = float(np.median(got["torch_fp32"]))
        for k, v in got.items():
            times[k] += v
            repeat_ratios[k].append(round(float(np.median(v)) / torch_p50, 4))
    layers = _layer_profile(frame, fg_in, bg_in)
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
            "ratio_to_torch_fp32_p50_per_repeat": repeat_ratios, "repeats": repeats,
            "ort_cleanup": cleanup, "accessory_only_nodes": accessory_only_nodes(frame),
            "openvino_auto_precision": runtimes["openvino_auto_1t"].info.precision,
            "openvino_auto_reason": runtimes["openvino_auto_1t"].choice.reason,
            "compile_s": compile_s, "static_input_shapes": static, "openvino_layer_profile": layers,
            "raw_torch_output_strides": list(raw.strides), "decode_ms": decode,
            "decode_ratio_channels_last_to_contiguous": decode["channels_last"]["p50"] / decode["contiguous"]["p50"]}


def _layer_profile(frame: Path, fg_in: np.ndarray, bg_in: np.ndarray) -> dict[str, Any]:
    """OpenVINO's per-layer counters for one per-frame inference (fp32, 1 thread): the share of
    the time per kernel implementation and per layer type."""
    from realtime.backends.openvino_backend import OpenVinoBackend

    b = OpenVinoBackend(frame, threads=1, precision="fp32", properties={"PERF_COUNT": True})
    b.set_foreground(fg_in)
    for _ in range(3):
        b.infer(bg_in)
    by_exec: dict[str, float] = {}
    by_type: dict[str, float] = {}
    for layer in b._request.get_profiling_info():
        us = layer.real_time.total_seconds() * 1e6
        by_exec[layer.exec_type] = by_exec.get(layer.exec_type, 0.0) + us
        by_type[layer.node_type] = by_type.get(layer.node_type, 0.0) + us
    total = sum(by_exec.values()) or 1.0

    def top(d: dict[str, float]) -> dict[str, float]:
        return {k: round(v / total, 4) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:6]}

    return {"total_ms": round(total / 1e3, 2), "share_by_kernel": top(by_exec), "share_by_layer_type": top(by_type)}


def _top(counts: dict[str, int], n: int = 6) -> str:
    return ", ".join(f"{k} {v}" for k, v in list(counts.items())[:n])


def to_markdown(report: dict[str, Any]) -> str:
    hw = report["hardware"]
    lines = [f"# CPU runtimes, per-frame inference and decode ({report['date']})", "",
             f"Machine: {hw.get('cpu')}, {hw.get('cores')} logical cores, shared with other engineers' jobs "
             f"(load average {report['load_before']} before, {report['load_after']} after). OpenVINO "
             f"{report['versions']['openvino']}, onnxruntime {report['versions']['onnxruntime']}, torch "
             f"{report['versions']['torch']}. CPU capabilities (OpenVINO): {', '.join(report['cpu_capabilities'])}.",
             "", f"{report['iters']} interleaved calls per runtime (rotating order) x {report.get('repeats', 1)} "
             "repeat(s), F_f cached, p50 / p95 ms over all calls; ratios are p50 / torch fp32 p50 in the same run "
             "(per repeat: each repeat's own p50s). Keypoint error: decoded corners vs torch fp32 "
             "(pixels at network resolution).", ""]
    for m in report["models"]:
        lines += [f"## {m['model']} ({m['input_size']} px)", "",
                  "| runtime | p50 ms | p95 ms | ratio to torch fp32 | ratio per repeat | keypoint error vs torch, max / p99 px |",
                  "|---|---|---|---|---|---|"]
        for k, s in m["infer_ms"].items():
            err = m["keypoint_error_vs_torch_fp32_px"].get(k)
            e = f"{err['max_px']:.4f} / {err['p99_px']:.4f}" if err else "reference"
            per = " ".join(f"{v:.2f}" for v in m.get("ratio_to_torch_fp32_p50_per_repeat", {}).get(k, []))
            lines.append(f"| {k} | {s['p50']:.1f} | {s['p95']:.1f} | {m['ratio_to_torch_fp32_p50'][k]:.2f} | {per} | {e} |")
        c = m.get("ort_cleanup", {})
        if c:
            lines += ["", f"Graph clean-up (`{ORT_CLEANED}`): ONNX Runtime's basic offline optimisations take the "
                      f"per-frame graph from {c['nodes_before']} to {c['nodes_after']} nodes; OpenVINO compiles "
                      f"{sum(c.get('openvino_layers_original', {}).values())} runtime layers from the original "
                      f"({_top(c.get('openvino_layers_original', {}))}) and "
                      f"{sum(c.get('openvino_layers_cleaned', {}).values())} from the cleaned one "
                      f"({_top(c.get('openvino_layers_cleaned', {}))}). Per-frame nodes that depend on F_f alone "
                      f"(would belong in the run-once foreground graph): "
                      f"{', '.join(m['accessory_only_nodes']) or '**none**'}."]
        d = m["decode_ms"]
        prof = m["openvino_layer_profile"]
        share = ", ".join(f"{k} {v:.0%}" for k, v in prof["share_by_kernel"].items())
        types = ", ".join(f"{k} {v:.0%}" for k, v in prof["share_by_layer_type"].items())
        comp = ", ".join(f"{k} {v:.2f} s" for k, v in m["compile_s"].items())
        lines += ["", f"OpenVINO settings rows: the backend's fp32 1-thread compile with one property changed "
                  f"({', '.join(f'`{k}`: {v}' for k, v in report['ov_settings'].items())}). Input shapes static: "
                  f"**{m['static_input_shapes']}** (nothing to reshape). Backend construction (both graphs compiled): "
                  f"{comp}.", "", f"OpenVINO's per-layer counters, one fp32 inference, {prof['total_ms']} ms: by kernel "
                  f"{share}; by layer type {types}."]
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
    p.add_argument("--repeats", type=int, default=1, help="interleaved timing runs (the ratios' spread)")
    p.add_argument("--only", help="comma-separated rows to time besides torch_fp32 and the backend's own "
                                  "(openvino_fp32_1t, openvino_auto_1t)")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.repeats < 1 or args.iters < 1:
        p.error("--repeats and --iters must be >= 1")
    only = set(args.only.split(",")) if args.only else None
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="cpu_runtimes_") as work:
        models = [bench_model(n, args.iters, args.samples, args.repeats, only, Path(work))
                  for n in args.models.split(",")]
    hw = hardware_info()
    report = {"date": dt.date.today().isoformat(), "hardware": hw, "iters": args.iters, "models": models,
              "repeats": args.repeats, "only": sorted(only) if only else None,
              "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
              "ov_settings": {k: v for k, v in OV_SETTINGS.items()},
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
