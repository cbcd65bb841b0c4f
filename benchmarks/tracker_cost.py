"""The tracker's own cost per frame at 1280x720, detection amortised, with and without the
network confirming the face (issue 13 target: <= 2 ms a frame on one CPU core).

The astronaut portrait, its face 30 % of the frame height, panned sinusoidally for 5 s
(150 frames, as ``benchmarks/detection.py``'s tracker row). Two ways of running the
tracker (:class:`realtime.live.tracking.RoiTracker`), interleaved so their ratio comes
from the same moments of a shared machine:

* **detection only**: :meth:`~RoiTracker.update` alone, nothing fed back (the face box
  is the last detection; every ``roi.detect_every`` frames a window search);
* **network confirms**: after each update, :meth:`~RoiTracker.observe` with a confident
  quad that moves with the face (a perfect network): the keypoints follow the face and
  re-detection runs every ``roi.confirmed_detect_every`` frames.

Each configuration is reported twice: the mean over all frames, and the mean without
the first frame (the full-frame acquisition, which runs once per person).

    PYTHONPATH=. python benchmarks/tracker_cost.py [--reps 2] [--set confirmed_detect_every=5]

Writes benchmarks/results/tracker_cost_<date>_<cpu>.{md,json}.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.bench.report import environment, hardware_slug, run_context_line, write_report
from realtime.config import parse_overrides
from realtime.framing import roi_config
from realtime.live.detectors import DEFAULT_DETECTOR, detector_names, make_detector
from realtime.live.tracking import RoiTracker

SIZE_WH = (1280, 720)
FRAMES = 150


def clip(detector) -> tuple[list[np.ndarray], np.ndarray]:
    """The panned frames and, per frame, the glasses quad on the face (frame px)."""
    from skimage.data import astronaut

    photo = np.ascontiguousarray(astronaut()[..., ::-1])
    faces = detector.detect(photo)
    if not faces:
        raise SystemExit(f"tracker_cost: detector {detector.name} finds no face in the astronaut portrait")
    w, h = SIZE_WH
    k = 0.3 * h / faces[0].side
    base = cv2.warpAffine(photo, np.float64([[k, 0, w / 2 - k * faces[0].cx], [0, k, h / 2 - k * faces[0].cy]]),
                          (w, h))
    s = 0.3 * h
    quad = np.array([[-0.45, -0.2], [0.45, -0.2], [0.45, 0.05], [-0.45, 0.05]]) * s + [w / 2, h / 2]
    frames, quads = [], []
    for i in range(FRAMES):
        dx, dy = 60 * math.sin(i / 20), 20 * math.sin(i / 13)
        frames.append(cv2.warpAffine(base, np.float64([[1, 0, dx], [0, 1, dy]]), (w, h)))
        quads.append(quad + [dx, dy])
    return frames, np.array(quads)


def run_once(detector, cfg, frames, quads, feed: bool) -> dict[str, Any]:
    tracker = RoiTracker(cfg, 224, detector=detector)
    times = []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        roi = tracker.update(frame, i / 30.0)
        if feed and roi is not None:
            tracker.observe(quads[i], True, 0.0, confidence=0.9)
        times.append(time.perf_counter() - t0)
    ms = 1e3 * np.array(times)
    return {"mean_ms": float(ms.mean()), "mean_ms_after_acquisition": float(ms[1:].mean()),
            "median_ms": float(np.median(ms)), "detections": tracker.detections}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--detector", choices=detector_names(), default=DEFAULT_DETECTOR)
    p.add_argument("--reps", type=int, default=2, help="runs of each configuration (default 2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="roi option (realtime.framing.RoiConfig), e.g. --set confirmed_detect_every=5")
    p.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--tag", default="", help="suffix of the result files (e.g. the code version measured)")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be >= 1")
    cv2.setNumThreads(1)
    try:
        cfg = roi_config("glasses", **parse_overrides(args.overrides))
    except (TypeError, ValueError) as exc:
        p.error(f"--set: {exc}")
    detector = make_detector(args.detector, cfg)
    frames, quads = clip(detector)
    runs: dict[str, list[dict[str, Any]]] = {"detection only": [], "network confirms": []}
    for rep in range(args.reps):
        order = list(runs) if rep % 2 == 0 else list(runs)[::-1]
        for name in order:
            runs[name].append(run_once(detector, cfg, frames, quads, feed=name == "network confirms"))
    report = environment(1)  # the tracker itself is single-threaded (cv2 set to 1 thread)
    report.update({"detector": args.detector, "roi": {k: getattr(cfg, k) for k in
                                                      ("detect_every", "confirmed_detect_every", "lost_detect_every")},
                   "frames": FRAMES, "size_wh": SIZE_WH, "runs": runs})
    lines = [f"# Tracker cost at {SIZE_WH[0]}x{SIZE_WH[1]} — {report['date']}", "",
             run_context_line(report) + ".", "",
             f"Detector {args.detector}; roi.detect_every {cfg.detect_every}, roi.confirmed_detect_every "
             f"{cfg.confirmed_detect_every}; {FRAMES} frames of a panned astronaut (benchmarks/tracker_cost.py).", "",
             "| run | mean ms/frame | without the acquisition | median | detections |", "|---|---|---|---|---|"]
    for name, rows in runs.items():
        for r in rows:
            lines.append(f"| {name} | {r['mean_ms']:.2f} | {r['mean_ms_after_acquisition']:.2f} | "
                         f"{r['median_ms']:.2f} | {r['detections']} |")
    lines += ["", "Target: <= 2 ms a frame on average (detection amortised) on one CPU core.", ""]
    markdown = "\n".join(lines)
    print(markdown)
    tag = "_".join([o.replace("=", "-") for o in args.overrides] + ([args.tag] if args.tag else []))
    name = f"tracker_cost_{report['date']}_{hardware_slug(report)}{'_' + tag if tag else ''}.json"
    for path in write_report(report, args.out_dir / name, markdown):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
