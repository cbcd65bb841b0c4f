"""Training throughput on the CPU: samples/s of a full training step, fp32 vs bf16.

A step = forward of the whole network (both encoders, DAF, both decoders) under the
precision's autocast, the paper's loss (weighted AWing + 0.1 x semantic CE, in fp32),
backward and an Adam step, channels-last, in train mode. Inputs are random tensors
already on the device: data loading is NOT included (in ``tryon train`` it runs in
DataLoader workers, in parallel). For each (preset, size) the fp32 and bf16 steps are
interleaved, so their ratio comes from the same moments of a shared machine.

Sizes follow the paper: 224 (glasses; 12 semantic classes) and 448 (tie; 8 classes).
Threads = all cores unless ``--threads`` (several counts may be given: on a machine shared
with other jobs, fewer threads than cores can be faster, as OpenMP threads that wait for a
busy core stall the whole step). Writes
``benchmarks/results/train_throughput_<date>.{md,json}``.

    python benchmarks/train_throughput.py [--presets paper lite] [--batch 8] [--iters 3] [--threads 2 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from realtime.codec import HeatmapCodec
from realtime.config import model_preset
from realtime.model import TryOnNet
from training.losses import LossConfig, total_loss

RESULTS = Path(__file__).resolve().parent / "results"
PRECISIONS = ("fp32", "bf16")


def _step_fn(net: TryOnNet, batch: int, precision: str, seed: int = 0):
    """A closure running one training step on fixed random data."""
    cfg = net.cfg
    s = cfg.input_size
    gen = torch.Generator().manual_seed(seed)
    bg = torch.randn(batch, 3, s, s, generator=gen).contiguous(memory_format=torch.channels_last)
    fg = torch.randn(batch, 4, s, s, generator=gen).contiguous(memory_format=torch.channels_last)
    pts = np.random.default_rng(seed).uniform(0, s - 1, size=(batch, 4, 2))
    codec = HeatmapCodec(cfg.codec)
    target = torch.from_numpy(np.stack([codec.encode(p, (s, s)) for p in pts]))
    labels = torch.randint(0, cfg.num_classes, (batch, s, s), generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, weight_decay=1e-5)
    loss_cfg = LossConfig()

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            hm, sem = net(bg, fg)
        loss, _ = total_loss(hm, target, sem, labels, loss_cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def bench(preset: str, category: str, batch: int, warmup: int, iters: int, threads: int) -> list[dict]:
    """fp32 and bf16 rows for one preset, size and thread count (interleaved timings)."""
    torch.set_num_threads(threads)
    cfg = model_preset(preset, category)
    steps = {}
    for precision in PRECISIONS:
        torch.manual_seed(0)
        net = TryOnNet(cfg).to(memory_format=torch.channels_last).train()
        steps[precision] = _step_fn(net, batch, precision)
    times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for i in range(warmup + iters):
        for precision in PRECISIONS:
            t0 = time.perf_counter()
            steps[precision]()
            if i >= warmup:
                times[precision].append(time.perf_counter() - t0)
    rows = []
    for precision in PRECISIONS:
        t = np.asarray(times[precision])
        rows.append({"preset": preset, "size": cfg.input_size, "category": category, "precision": precision,
                     "threads": threads,
                     "batch": batch, "iters": iters, "step_s_median": float(np.median(t)),
                     "step_s_min": float(t.min()), "samples_per_s": float(batch / np.median(t)),
                     "samples_per_s_best": float(batch / t.min())})
        print(f"{preset} {cfg.input_size} {precision} {threads} thr: {rows[-1]['samples_per_s']:.2f} samples/s "
              f"(median step {rows[-1]['step_s_median']:.2f} s, batch {batch})", flush=True)
    return rows


def to_markdown(report: dict) -> str:
    hw = report["hardware"]
    lines = [f"# Training throughput (CPU) — {report['date']}", "",
             f"CPU: {hw['cpu']} ({hw['cores']} cores), torch {hw.get('torch', '?')}, threads {report['threads']}. "
             f"Full training step (forward + paper loss + backward + Adam), channels-last, random inputs "
             f"(data loading excluded), batch {report['batch']}, median of {report['iters']} steps after "
             f"{report['warmup']} warm-up; fp32 and bf16 interleaved.",
             "",
             f"Shared machine (load average {report['load_before']} before, {report['load_after']} after, on "
             f"{hw['cores']} cores): absolute numbers are noisy and pessimistic; the fp32/bf16 ratio is the "
             f"robust part.", "",
             "| preset | size | threads | precision | samples/s (median) | samples/s (best) | step (s) |",
             "|---|---|---:|---|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['preset']} | {r['size']} | {r['threads']} | {r['precision']} | "
                     f"{r['samples_per_s']:.2f} | {r['samples_per_s_best']:.2f} | {r['step_s_median']:.2f} |")
    lines += ["", "| preset | size | threads | bf16 / fp32 speed-up |", "|---|---|---:|---:|"]
    by = {(r["preset"], r["size"], r["threads"], r["precision"]): r for r in report["rows"]}
    for (preset, size, threads, precision), r in by.items():
        if precision == "bf16" and (preset, size, threads, "fp32") in by:
            ratio = r["samples_per_s"] / by[(preset, size, threads, "fp32")]["samples_per_s"]
            lines.append(f"| {preset} | {size} | {threads} | {ratio:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from realtime.sysinfo import hardware_info

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["paper", "lite"])
    parser.add_argument("--categories", nargs="+", default=["glasses", "tie"], help="glasses = 224, tie = 448")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    for threads in args.threads:
        for preset in args.presets:
            for category in args.categories:
                rows += bench(preset, category, args.batch, args.warmup, args.iters, threads)
    report = {"date": dt.date.today().isoformat(), "hardware": hardware_info(),
              "threads": ", ".join(str(t) for t in args.threads),
              "batch": args.batch, "warmup": args.warmup, "iters": args.iters, "load_before": load_before,
              "load_after": ", ".join(f"{x:.2f}" for x in os.getloadavg()), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"train_throughput_{report['date']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
