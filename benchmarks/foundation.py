"""Foundation benchmark: network forward latency on CPU and ROI vs full-frame composite.

Measures (all on the CPU, batch 1, after warm-up, interleaving the variants being
compared so that ratios come from the same moments of a shared machine):
    * the paper network at 224 and 448: fp32 vs bf16 autocast, full network (foreground
      re-encoded every call) vs per-frame path with cached F_f;
    * the ROI-restricted uint8 composite vs the full-frame float reference at 720p and
      1080p, for a glasses-sized footprint.

Writes benchmarks/results/foundation_<date>.{md,json}.

    python benchmarks/foundation.py [--iters 10] [--preset paper]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
import torch

from realtime.config import model_preset
from realtime.geometry import PreparedAccessory, composite_reference, composite_roi, homography_from_quads
from realtime.model import TryOnNet
from realtime.sysinfo import hardware_info, summarize_ms, time_calls

RESULTS = Path(__file__).resolve().parent / "results"


def bench_network(preset: str, iters: int) -> list[dict]:
    rows = []
    for category in ("glasses", "tie"):  # 224 and 448
        cfg = model_preset(preset, category)
        net = TryOnNet(cfg).eval().to(memory_format=torch.channels_last)
        s = cfg.input_size
        bg = torch.randn(1, 3, s, s).contiguous(memory_format=torch.channels_last)
        fg = torch.randn(1, 4, s, s).contiguous(memory_format=torch.channels_last)
        for precision in ("fp32", "bf16"):
            ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else \
                (lambda: torch.autocast("cpu", enabled=False))
            with torch.inference_mode(), ctx():
                f_f = net.encode_foreground(fg)
                full, frame = [], []
                for _ in range(iters):  # interleave the two paths
                    full += time_calls(lambda: net(bg, fg), 1, warmup=1 if not full else 0)
                    frame += time_calls(lambda: net.forward_frame(bg, f_f, semantic_logits=False), 1,
                                        warmup=1 if not frame else 0)
            rows.append({"preset": preset, "size": s, "precision": precision,
                         "full_ms": summarize_ms(full), "frame_ms": summarize_ms(frame)})
            print(f"{preset} {s} {precision}: full p50 {rows[-1]['full_ms']['p50']:.1f} ms, "
                  f"per-frame p50 {rows[-1]['frame_ms']['p50']:.1f} ms", flush=True)
    return rows


def bench_composite(iters: int) -> list[dict]:
    rng = np.random.default_rng(0)
    acc_rgba = np.zeros((120, 300, 4), np.uint8)
    acc_rgba[10:110, 10:290] = (40, 40, 40, 255)
    acc_rgba[25:95, 25:140, 3] = 90  # tinted lens
    acc = PreparedAccessory.from_rgba(acc_rgba)
    rows = []
    for w, h in ((1280, 720), (1920, 1080)):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cx, cy = w / 2, h / 2
        dst = np.array([[cx - 150, cy - 55], [cx + 150, cy - 65], [cx + 150, cy + 60], [cx - 150, cy + 55]])
        mat = homography_from_quads(acc.corners_xy, dst)
        roi, ref = [], []
        for _ in range(iters):
            roi += time_calls(lambda: composite_roi(frame, acc, mat), 5, warmup=1)
            ref += time_calls(lambda: composite_reference(frame, acc, mat), 1, warmup=0)
        r = {"resolution": f"{w}x{h}", "roi_ms": summarize_ms(roi), "reference_ms": summarize_ms(ref)}
        r["speedup_p50"] = r["reference_ms"]["p50"] / r["roi_ms"]["p50"]
        rows.append(r)
        print(f"composite {w}x{h}: ROI p50 {r['roi_ms']['p50']:.3f} ms, full-frame float p50 "
              f"{r['reference_ms']['p50']:.2f} ms, x{r['speedup_p50']:.0f}", flush=True)
    return rows


def to_markdown(report: dict) -> str:
    hw = report["hardware"]
    lines = [f"# Foundation benchmark — {report['date']}", "",
             f"CPU: {hw['cpu']} ({hw['cores']} cores), torch {hw.get('torch')}, threads {report['threads']}. "
             "Batch 1, after warm-up; variants interleaved. Shared machine: absolute numbers are noisy, ratios "
             "are from the same run.", "",
             "## Network forward (CPU)", "",
             "| preset | size | precision | full net p50 (ms) | per-frame (cached F_f) p50 (ms) | full / per-frame |",
             "|---|---|---|---|---|---|"]
    for r in report["network"]:
        lines.append(f"| {r['preset']} | {r['size']} | {r['precision']} | {r['full_ms']['p50']:.1f} | "
                     f"{r['frame_ms']['p50']:.1f} | {r['full_ms']['p50'] / r['frame_ms']['p50']:.2f} |")
    by = {(r["size"], r["precision"]): r for r in report["network"]}
    lines += ["", "| size | fp32 / bf16 (per-frame p50) |", "|---|---|"]
    for s in sorted({r["size"] for r in report["network"]}):
        lines.append(f"| {s} | {by[(s, 'fp32')]['frame_ms']['p50'] / by[(s, 'bf16')]['frame_ms']['p50']:.2f} |")
    lines += ["", "## Warp + composite (glasses footprint ~300x120 px)", "",
              "| frame | ROI uint8 p50 (ms) | full-frame float p50 (ms) | ratio |", "|---|---|---|---|"]
    for r in report["composite"]:
        lines.append(f"| {r['resolution']} | {r['roi_ms']['p50']:.3f} | {r['reference_ms']['p50']:.2f} | "
                     f"{r['speedup_p50']:.0f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args()
    report = {"date": dt.date.today().isoformat(), "hardware": hardware_info(), "threads": torch.get_num_threads(),
              "composite": bench_composite(args.iters), "network": bench_network(args.preset, args.iters)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"foundation_{report['date']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
