"""Native kernels vs the NumPy/OpenCV reference on the CPU (realtime.live.native).

Two kernels, at 720p and 1080p:
    * composite: warp + alpha composite in place, native vs ``composite_roi`` (OpenCV
      warpPerspective + cvtColor + multiply + add on the footprint box), for a glasses-
      sized footprint (~300x120 px) and a large one (~800x320 px);
    * preprocess: crop + resize + normalise into (1, 3, S, S), native vs
      ``background_input(cvtColor(warp_crop(...)))`` for S = 224 and 448.

Native variants: AVX2 rows on 1 thread (the default), the scalar rows on 1 thread, and
the AVX2 rows on 2 threads (rows split, second thread started per call). Every iteration runs every variant once, in rotating
order, so that ratios come from the same moments of a shared machine; timings include
the Python wrapper (argument checks, footprint box, ctypes call). The composite runs
repeatedly on the same frame (its cost does not depend on the frame's content).

Writes benchmarks/results/native_kernels_<date>.{md,json}.

    python benchmarks/native_kernels.py [--iters 300]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from tqdm import tqdm

from realtime.geometry import PreparedAccessory, composite_roi, crop_from_box, homography_from_quads, warp_crop
from realtime.live import native
from realtime.preprocess import background_input
from realtime.sysinfo import hardware_info, summarize_ms

RESULTS = Path(__file__).resolve().parent / "results"
RESOLUTIONS = ((1280, 720), (1920, 1080))
FOOTPRINTS = ((300, 120), (800, 320))
CROP_SIZES = (224, 448)  # realtime.config: glasses / hat 224, tie 448


def _accessory(w: int, h: int, rng: np.random.Generator) -> PreparedAccessory:
    """Glasses-like: thick soft-edged rims, translucent lenses, transparent elsewhere."""
    rgba = np.zeros((h, w, 4), np.uint8)
    for cx in (w // 4, 3 * w // 4):
        cv2.ellipse(rgba, (cx, h // 2), (w // 4 - 6, h // 2 - 6), 0, 0, 360, (40, 90, 160, 110), -1, cv2.LINE_AA)
        cv2.ellipse(rgba, (cx, h // 2), (w // 4 - 6, h // 2 - 6), 0, 0, 360, (25, 25, 25, 255), max(3, h // 16),
                    cv2.LINE_AA)
    rgba[..., :3] = np.clip(rgba[..., :3].astype(int) + rng.integers(-8, 9, (h, w, 3)), 0, 255)
    return PreparedAccessory.from_rgba(rgba)


Variant = tuple[Callable[[], Any] | None, Callable[[], Any]]  # (untimed setup, timed call)


def _variants(reference: Callable[[], Any], native_fn: Callable[[], Any]) -> dict[str, Variant]:
    """The reference plus three native variants; each native variant's setup sets SIMD / threads."""
    out: dict[str, Variant] = {"reference": (None, reference)}
    for name, simd, threads in (("native", True, 1), ("native_scalar", False, 1), ("native_2t", True, 2)):
        def setup(simd: bool = simd, threads: int = threads) -> None:
            native.set_simd(simd)
            native.set_num_threads(threads)
        out[name] = (setup, native_fn)
    return out


def _interleaved(variants: dict[str, Variant], iters: int, warmup: int = 5
                 ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU durations (s) per variant; each iteration runs every variant once, rotating."""
    names = list(variants)
    for name in names:
        setup, fn = variants[name]
        if setup:
            setup()
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for i in range(iters):
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            setup, fn = variants[name]
            if setup:
                setup()
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return wall, cpu


def _row(kind: str, scenario: str, timings: tuple[dict[str, list[float]], dict[str, list[float]]]
         ) -> dict[str, Any]:
    wall, cpu = ({name: summarize_ms(t) for name, t in d.items()} for d in timings)
    ref, ref_cpu = wall["reference"], cpu["reference"]
    return {"kernel": kind, "scenario": scenario, "ms": wall, "cpu_ms": cpu,
            "ratio_p50": {n: s["p50"] / ref["p50"] for n, s in wall.items() if n != "reference"},
            "ratio_p95": {n: s["p95"] / ref["p95"] for n, s in wall.items() if n != "reference"},
            "cpu_ratio_mean": {n: s["mean"] / ref_cpu["mean"] for n, s in cpu.items() if n != "reference"}}


def bench(iters: int) -> list[dict[str, Any]]:
    """All scenarios; each row holds p50/p95 per variant and native/reference ratios."""
    rng = np.random.default_rng(0)
    jobs = [("composite", res, fp) for res in RESOLUTIONS for fp in FOOTPRINTS] + \
           [("preprocess", res, s) for res in RESOLUTIONS for s in CROP_SIZES]
    rows = []
    for kind, (w, h), param in tqdm(jobs, desc="native kernels", unit="scenario"):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        frame = cv2.GaussianBlur(frame, (0, 0), 2)  # camera-like content
        if kind == "composite":
            acc = _accessory(*param, rng)
            src = acc.corners_xy
            # A slightly tilted quad at the frame centre, footprint about the accessory's size.
            dst = src - src.mean(0) + (w / 2, h / 2) + np.array([[-4, 6], [5, -7], [3, 8], [-6, -3]], float)
            mat = homography_from_quads(src, dst)
            frames = {"ref": frame.copy(), "nat": frame.copy()}
            timings = _interleaved(_variants(lambda: composite_roi(frames["ref"], acc, mat),
                                             lambda: native.composite(frames["nat"], acc, mat, prefer_native=True)),
                                   iters)
            rows.append(_row(kind, f"{w}x{h}, footprint {param[0]}x{param[1]}", timings))
        else:
            size = param
            m = crop_from_box((w / 2, h / 2), 0.5 * h, size, 8.0)
            out = np.empty((1, 3, size, size), np.float32)
            timings = _interleaved(_variants(
                lambda: background_input(cv2.cvtColor(warp_crop(frame, m, size), cv2.COLOR_BGR2RGB)),
                lambda: native.preprocess_crop(frame, m, size, out=out, prefer_native=True)), iters)
            rows.append(_row(kind, f"{w}x{h} -> {size}x{size}", timings))
    native.set_simd(True)
    native.set_num_threads(1)
    return rows


def to_markdown(report: dict[str, Any]) -> str:
    hw = report["hardware"]
    lines = [f"# Native kernels vs OpenCV/NumPy reference — {report['date']}", "",
             f"CPU: {hw['cpu']} ({hw['cores']} cores, shared with other engineers; load average at start "
             f"{report['loadavg']}). OpenCV {hw.get('cv2')} with {report['cv2_threads']} threads; native library: "
             f"{report['native_build']} (rows: {report['native_cpu_path']}). {report['iters']} iterations per "
             "variant, variants interleaved (rotating order) so ratios come from the same run; timings include "
             "the Python wrapper. Ratio = native p50 / reference p50 of wall time (< 1: native is faster). "
             "CPU = mean process CPU time per call (all threads: OpenCV's pool counts), which the other "
             "engineers' load disturbs far less than wall time.", ""]
    for kind, title in (("composite", "Warp + alpha composite (in place, footprint box)"),
                        ("preprocess", "Crop + resize + normalise -> (1, 3, S, S) float32")):
        lines += [f"## {title}", "",
                  "| scenario | reference p50 / p95 (ms) | native 1t p50 / p95 (ms) | native / ref | "
                  "scalar 1t / ref | native 2t / ref (p50, p95) | CPU ms ref / native 1t (ratio) |",
                  "|---|---|---|---|---|---|---|"]
        for r in report["rows"]:
            if r["kernel"] != kind:
                continue
            ms, q = r["ms"], r["ratio_p50"]
            lines.append(f"| {r['scenario']} | {ms['reference']['p50']:.3f} / {ms['reference']['p95']:.3f} | "
                         f"{ms['native']['p50']:.3f} / {ms['native']['p95']:.3f} | **{q['native']:.2f}** | "
                         f"{q['native_scalar']:.2f} | {q['native_2t']:.2f}, {r['ratio_p95']['native_2t']:.2f} | "
                         f"{r['cpu_ms']['reference']['mean']:.3f} / {r['cpu_ms']['native']['mean']:.3f} "
                         f"({r['cpu_ratio_mean']['native']:.2f}) |")
        lines.append("")
    lines += ["## Defaults this supports (realtime.live.native.PREFER_NATIVE)", ""]
    for kind in ("composite", "preprocess"):
        rows = [r for r in report["rows"] if r["kernel"] == kind]
        worst = {v: max(r["ratio_p50"][v] for r in rows) for v in ("native", "native_scalar", "native_2t")}
        lines.append(f"* {kind}: worst native/ref p50 ratio {worst['native']:.2f} with the AVX2 rows, "
                     f"{worst['native_scalar']:.2f} with the scalar rows, {worst['native_2t']:.2f} on 2 threads.")
    lines += ["", "A ratio above 1 means the reference wins there: the native kernel is the default only for "
              "the CPU paths whose worst ratio is below 1, and 1 thread is the default.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300, help="timed calls per variant and scenario")
    args = parser.parse_args(argv)
    if args.iters < 10:
        parser.error(f"--iters must be >= 10 for p95, got {args.iters}")
    if not native.available():
        parser.error(f"native library not available: {native.reason()}")
    report = {"date": dt.date.today().isoformat(), "hardware": hardware_info(), "loadavg": os.getloadavg(),
              "cv2_threads": cv2.getNumThreads(), "native_build": native.build_info(),
              "native_cpu_path": native.cpu_path(), "iters": args.iters}
    report["rows"] = bench(args.iters)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"native_kernels_{report['date']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text(to_markdown(report))
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
