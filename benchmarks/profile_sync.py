"""Where a synchronous ``tryon bench`` frame goes, by sampling profiler (py-spy), per stage and per function.

Runs ``tryon bench`` synchronously (every frame inferred, optimised pipeline only, no peer,
no async run) under ``py-spy record --format raw`` and attributes every sample taken inside
a frame (below the benchmark's per-frame ``step``) to the pipeline call it is under (the
first two frames below ``step``: e.g. ``TryOnPipeline.estimate > OpenVinoBackend.infer``) and
to the function it is in (the innermost frame). What is not inference is what the pipeline
can still remove; the inference share says what the network alone caps the frame rate at.

    PYTHONPATH=. python benchmarks/profile_sync.py [--category glasses] [--resolution 1280x720] [--frames 60]

Needs ``py-spy`` (``pip install py-spy``; it samples another process: root or ptrace rights).
Writes benchmarks/results/profile_sync_<date>_<cpu>_<category>.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
#: The benchmark's per-frame function (realtime/bench/latency.py): samples below it are per-frame work.
STEP = re.compile(r"^(\w+\.)?step \(realtime/bench/latency\.py")
#: Pipeline calls that are the network (the rest of a frame is what the pipeline adds).
INFERENCE = re.compile(r"\.infer$|\.infer >|set_foreground")


def _name(frame: str) -> str:
    return re.sub(r" \(.*\)$", "", frame.strip())


def aggregate(raw: str) -> dict[str, Any]:
    """Shares of the per-frame samples by pipeline call (2 levels below ``step``) and by function."""
    calls: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = in_frame = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        idx = next((i for i, f in enumerate(frames) if STEP.match(f)), None)
        if idx is None:
            continue
        in_frame += n
        below = [_name(f) for f in frames[idx + 1:]]
        calls[" > ".join(below[:2]) or "step itself"] += n
        leaves[frames[-1].strip()] += n
    if not in_frame:
        raise RuntimeError("no sample inside a benchmark frame: did tryon bench run?")
    inference = sum(v for k, v in calls.items() if INFERENCE.search(k))
    return {"samples": total, "in_frames": in_frame, "inference_share": inference / in_frame,
            "by_call": {k: v / in_frame for k, v in calls.most_common(20)},
            "by_function": {k: v / in_frame for k, v in leaves.most_common(20)}}


def to_markdown(report: dict[str, Any]) -> str:
    a = report["profile"]
    lines = [f"# Synchronous frame profile, {report['category']} at {report['resolution']} ({report['date']})", "",
             f"Machine: {report['hardware']}; load average {report['load_before']} before, {report['load_after']} "
             f"after. `py-spy record --rate {report['rate']}` on `{report['command']}`: {a['samples']} samples, "
             f"{a['in_frames']} inside frames (below the benchmark's per-frame step; the JPEG encode after each "
             "frame, not part of the frame time, is among them).", "",
             f"**Inference: {a['inference_share']:.1%} of a frame**; the rest is what the pipeline adds. "
             f"The bench's own per-stage timings: `{report['bench_json']}`.", "",
             "| pipeline call (below the frame step) | share of the frame |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in a["by_call"].items()]
    lines += ["", "| function the sample was in | share |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in a["by_function"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--category", default="glasses")
    p.add_argument("--resolution", default="1280x720")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--rate", type=int, default=200, help="samples per second")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        p.error("py-spy not found: pip install py-spy")
    from realtime.bench.report import hardware_slug, write_report
    from realtime.sysinfo import hardware_info, hardware_line

    with tempfile.TemporaryDirectory(prefix="profile_sync_") as tmp:
        raw_path, bench_json = Path(tmp) / "raw.txt", Path(tmp) / "bench.json"
        bench = [sys.executable, "-m", "realtime.cli", "bench", "--category", args.category, "--resolution",
                 args.resolution, "--frames", str(args.frames), "--warmup", "5", "--async-seconds", "0",
                 "--threads", "1", "--no-naive", "--peer", "off", "--json", str(bench_json)]
        load_before = round(os.getloadavg()[0], 2)
        log_path = Path(tmp) / "bench.log"
        with open(log_path, "w") as log:
            rc = subprocess.run([pyspy, "record", "--rate", str(args.rate), "--format", "raw", "--output",
                                 str(raw_path), "--", *bench], stdout=log, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise SystemExit(f"py-spy / tryon bench failed (exit {rc}): {log_path.read_text()[-2000:]}")
        profile = aggregate(raw_path.read_text())
        bench_report = bench_json.read_text()
    hw = hardware_info()
    report = {"date": dt.date.today().isoformat(), "hardware": hardware_line(hw), "category": args.category,
              "resolution": args.resolution, "rate": args.rate, "load_before": load_before,
              "load_after": round(os.getloadavg()[0], 2), "profile": profile,
              "command": "tryon " + " ".join(bench[3:-2]), "bench_json": "in this report's JSON (bench)"}
    import json

    report["bench"] = json.loads(bench_report)
    stem = f"profile_sync_{report['date']}_{hardware_slug({'hardware': hw})}_{args.category}"
    markdown = to_markdown(report)
    paths = write_report(report, args.out_dir / f"{stem}.json", markdown)
    print(markdown)
    print("wrote " + ", ".join(str(x) for x in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
