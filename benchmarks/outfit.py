"""Outfit mode (glasses + hat + tie at once) vs one category: display FPS and inference rates.

The live loop as ``tryon live --outfit glasses,hat,tie`` runs it, headless: the astronaut
under synthetic camera motion, paced like a 30 fps camera (newest frame only), the shipped
models, inference asynchronous (``--mode async``: the worker infers one category per call, in
turn, so each category is updated at a third of the inference rate while every camera frame
is composited with the newest keypoints of all three). Each configuration runs ``--seconds``
after a warm-up; configurations alternate ``--rounds`` times so both see the same moments of a
shared machine.

Writes benchmarks/results/outfit_<date>_<hardware>.{md,json}.

    python benchmarks/outfit.py [--seconds 20] [--rounds 2] [--resolution 1280x720]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from realtime.backends.resolver import ModelResolver, default_threads
from realtime.bench.report import environment, fmt, hardware_slug, run_context_line, write_report
from realtime.config import CATEGORIES
from realtime.live.app import parse_resolution
from realtime.live.capture import GeneratedSource, PortraitMotionSource, RealtimePacer
from realtime.live.pipeline import FrameLoop, TryOnPipeline
from realtime.procedural import bundled_accessories

RESULTS = Path(__file__).resolve().parent / "results"


def run_once(outfit: tuple[str, ...], seconds: float, size_wh: tuple[int, int], threads: int) -> dict[str, Any]:
    from skimage.data import astronaut

    resolver = ModelResolver("torch", threads=threads)
    pipe = TryOnPipeline(resolver, {c: bundled_accessories(c) for c in CATEGORIES}, category="glasses")
    if len(outfit) > 1:
        pipe.set_outfit(outfit)
    warm = _frame(size_wh)
    for _ in range(3):  # warm-up (first calls allocate; outfit: every category), not timed
        pipe.estimate(warm)
    pipe.reset()
    # Frames rendered beforehand (2 s, played forwards and backwards): rendering the synthetic motion costs
    # more than a camera delivering a frame, and would cap the display rate instead of the pipeline.
    motion = PortraitMotionSource(astronaut(), size_wh=size_wh, fps=30.0, seconds=2.0)
    clip = [motion._get(i) for i in range(motion.frame_count)]
    loop = clip + clip[::-1]
    source = RealtimePacer(GeneratedSource(lambda i: loop[i % len(loop)], fps=30.0, count=int((seconds + 5) * 30)))
    shown = []
    try:
        report = FrameLoop(source, pipe, [lambda out: shown.append(out.frame.index)], mode="async",
                           duration_s=seconds).run()
    finally:
        source.close()
        resolver.close()
    infer = np.asarray(report.stats.samples.get("infer", [np.nan]))
    return {"outfit": list(outfit), "frames_out": report.frames_out, "frames_offered": (shown[-1] - shown[0] + 1),
            "wall_s": report.wall_s, "display_fps": report.display_fps, "inference_hz": report.inference_hz,
            "per_category_hz": report.inference_hz / len(outfit), "infer_p50_ms": float(np.median(infer))}


def _frame(size_wh: tuple[int, int]):
    from skimage.data import astronaut

    from realtime.live.capture import Frame

    src = PortraitMotionSource(astronaut(), size_wh=size_wh, fps=30.0, seconds=1.0)
    return Frame(src._get(0), 0, 0.0)


def to_markdown(report: dict[str, Any]) -> str:
    rows = ["| configuration | round | display fps | camera frames shown | inference Hz (all) | per category Hz "
            "| infer p50 ms (one category) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        rows.append(f"| {' + '.join(r['outfit'])} | {r['round']} | {fmt(r['display_fps'], 1)} | "
                    f"{r['frames_out']} of {r['frames_offered']} | {fmt(r['inference_hz'], 2)} | "
                    f"{fmt(r['per_category_hz'], 2)} | {fmt(r['infer_p50_ms'], 0)} |")
    return "\n".join([
        f"# Outfit mode: display and inference rates ({report['date']})", "",
        run_context_line(report), "",
        f"Source: the astronaut under synthetic camera motion (2 s rendered beforehand, played back and forth), "
        f"{report['resolution']}, paced at 30 fps (newest frame only), {report['seconds']:g} s per run after a "
        "warm-up; shipped models, torch fp32, "
        "`--mode async` (the worker infers one category per call, in turn). Display fps = frames composited and "
        "handed to the sinks per second of wall time (no window: the window's own cost is not included).", "",
        *rows, ""])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--resolution", type=parse_resolution, default="1280x720")
    p.add_argument("--threads", type=int, default=default_threads())
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    report = {**environment(args.threads), "resolution": "x".join(map(str, args.resolution)),
              "seconds": args.seconds, "runs": []}
    for rnd in range(args.rounds):
        for outfit in (("glasses",), ("tie", "glasses", "hat")):
            run = run_once(outfit, args.seconds, args.resolution, args.threads)
            run["round"] = rnd + 1
            report["runs"].append(run)
            print(f"{'+'.join(outfit)}: display {run['display_fps']:.1f} fps, inference {run['inference_hz']:.2f} Hz",
                  flush=True)
            time.sleep(1.0)
    report["load_avg_end"] = list(os.getloadavg())
    path = RESULTS / f"outfit_{report['date']}_{hardware_slug(report)}.json"
    for written in write_report(report, path, to_markdown(report)):
        print(f"wrote {written}")


if __name__ == "__main__":
    main()
