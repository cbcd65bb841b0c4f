"""Memory and FPS soak of the live pipeline (``tryon bench --soak N``)."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from realtime.bench.latency import CAMERA_FPS
from realtime.bench.report import fmt, run_context_line
from realtime.live.capture import GeneratedSource
from realtime.live.display import PreviewBuffer
from realtime.live.pipeline import FrameLoop, Output, TryOnPipeline


def rss_mib() -> float:
    """Resident set size of this process, MiB (/proc/self/status VmRSS; peak RSS from
    ``resource`` where /proc is missing)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 1024.0)


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(slope, intercept, residual standard deviation) of a least-squares line."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if len(x) < 2:
        return float("nan"), float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    return float(slope), float(intercept), float(np.std(resid))


def run_soak(pipeline: TryOnPipeline, frames: Sequence[np.ndarray] | Callable[[int], np.ndarray], count: int,
             every: int = 500, fps: float = CAMERA_FPS, warmup_frac: float = 0.1) -> dict[str, Any]:
    """Push ``count`` frames through a :class:`FrameLoop` (sync, every frame inferred and
    composited, the display stage's work done) and sample RSS and FPS every ``every`` frames.

    Growth is judged after the first ``warmup_frac`` of the samples (allocator and cache
    warm-up): the RSS slope (MiB per 1000 frames) over the run, the total change that
    slope implies, and whether that exceeds 3 residual standard deviations and 1 MiB
    ("growth beyond noise"). FPS drift: the slope of the per-window FPS, over the run, as
    % of the fitted start; on a shared machine the other jobs move it, so the process CPU
    time per frame (all threads, which contention disturbs far less) is fitted the same way.

    Args:
        pipeline: the pipeline to soak.
        frames: BGR frames (cycled) or ``index -> frame``.
        count: frames to push.
        every: sampling period, frames.
    """
    from tqdm import tqdm

    if count < 2 * every:
        raise ValueError(f"soak: count ({count}) must be at least 2 x every ({every})")
    get = frames if callable(frames) else (lambda i: frames[i % len(frames)])
    source = GeneratedSource(get, fps=fps, count=count, name="in-memory")
    samples: list[dict[str, float]] = []
    state = {"n": 0, "t": time.perf_counter(), "cpu": time.process_time()}
    bar = tqdm(total=count, desc="soak", unit="frame", leave=False)
    preview = PreviewBuffer()

    def sink(out: Output) -> None:
        preview.compose(out.composite, hud=(["soak"], None))
        state["n"] += 1
        bar.update(1)
        if state["n"] % every == 0:
            now, cpu = time.perf_counter(), time.process_time()
            samples.append({"frame": state["n"], "rss_mib": rss_mib(), "fps": every / (now - state["t"]),
                             "cpu_ms_per_frame": (cpu - state["cpu"]) * 1e3 / every})
            state["t"], state["cpu"] = now, cpu

    samples.append({"frame": 0, "rss_mib": rss_mib(), "fps": float("nan"), "cpu_ms_per_frame": float("nan")})
    try:
        report = FrameLoop(source, pipeline, [sink], mode="sync").run()
    finally:
        bar.close()
    rows = samples[1:]
    skip = int(len(rows) * warmup_frac)
    used = rows[skip:] if len(rows) - skip >= 2 else rows
    x = np.array([r["frame"] for r in used]) / 1000.0
    slope, _, resid = linear_fit(x, np.array([r["rss_mib"] for r in used]))
    fps_slope, fps_icpt, fps_resid = linear_fit(x, np.array([r["fps"] for r in used]))
    cpu_slope, cpu_icpt, _ = linear_fit(x, np.array([r["cpu_ms_per_frame"] for r in used]))
    span = float(x[-1] - x[0]) if len(x) else 0.0
    implied = slope * span
    return {"frames": report.frames_out, "every": every, "samples": samples, "warmup_samples": skip,
            "rss_start_mib": samples[0]["rss_mib"], "rss_end_mib": rows[-1]["rss_mib"] if rows else float("nan"),
            "rss_slope_mib_per_kframe": slope, "rss_resid_std_mib": resid, "rss_growth_fit_mib": implied,
            "growth_beyond_noise": bool(implied > max(3.0 * resid, 1.0)),
            "fps_mean": float(np.mean([r["fps"] for r in used])) if used else float("nan"),
            "fps_slope_per_kframe": fps_slope, "fps_resid_std": fps_resid,
            "fps_drift_pct": float(100.0 * fps_slope * span / fps_icpt) if fps_icpt else float("nan"),
            "cpu_ms_per_frame_mean": float(np.mean([r["cpu_ms_per_frame"] for r in used])) if used else float("nan"),
            "cpu_drift_pct": float(100.0 * cpu_slope * span / cpu_icpt) if cpu_icpt else float("nan"),
            "wall_s": report.wall_s, "mode": report.mode}


def soak_markdown(report: dict[str, Any]) -> str:
    """The soak report as Markdown."""
    s = report["soak"]
    verdict = "**growth beyond noise**" if s["growth_beyond_noise"] else "no growth beyond noise"
    lines = [f"# Soak — {report['date']}", "", run_context_line(report) + ".", "",
             f"Model: {report['model']['description']} (input {report['model']['input_size']}); placement "
             f"{report.get('placement', 'network')}; "
             f"{report['resolution']} frames from memory; {s['mode']} mode (every frame inferred, composited and "
             f"prepared for display); RSS (VmRSS) and FPS sampled every {s['every']} frames; the first "
             f"{s['warmup_samples']} samples are warm-up and excluded from the fits.", "",
             "| frames | RSS start (MiB) | RSS end (MiB) | RSS slope (MiB / 1000 frames) | fitted growth (MiB) | "
             "residual std (MiB) | mean FPS | FPS slope (/ 1000 frames) | FPS drift over the run | "
             "CPU ms / frame | CPU-time drift over the run |",
             "|---|---|---|---|---|---|---|---|---|---|---|",
             f"| {s['frames']} | {fmt(s['rss_start_mib'], 1)} | {fmt(s['rss_end_mib'], 1)} | "
             f"{fmt(s['rss_slope_mib_per_kframe'], 3)} | {fmt(s['rss_growth_fit_mib'], 2)} | "
             f"{fmt(s['rss_resid_std_mib'], 2)} | {fmt(s['fps_mean'], 1)} | {fmt(s['fps_slope_per_kframe'], 3)} | "
             f"{fmt(s['fps_drift_pct'], 1)} % | {fmt(s['cpu_ms_per_frame_mean'])} | {fmt(s['cpu_drift_pct'], 1)} % |",
             "", f"Verdict: {verdict}.", "", "Samples:", "",
             "| frame | RSS (MiB) | FPS (window) | CPU ms / frame (window) |", "|---|---|---|---|"]
    lines += [f"| {r['frame']} | {r['rss_mib']:.1f} | {fmt(r['fps'], 1)} | {fmt(r['cpu_ms_per_frame'])} |"
              for r in s["samples"]]
    return "\n".join(lines) + "\n"
