"""Row-sampled whole-frame letterbox (issue 14): does the default detector find the same faces on
4K frames when its letterbox reads every k-th row, and what does it save?

The full-frame search letterboxes the whole frame into BlazeFace's 128 x 128 input; at 3840x2160
that is 30 source rows per output row, and the area resize read all 25 MB of the frame (7.0 ms p50
on 2026-12-02). :func:`realtime.live.native.shrink_rows_sampled` (what the detectors now pass to
:func:`realtime.geometry.letterbox`) reads every 5th row there. This script runs the detector on the
same 4K frames with each shrink and compares what it returns:

* frames: identity-safe TEST photos of ``training/splits/faces_split_v1.json`` (evenly spread),
  each scaled to 3/4 of the frame height and pasted at a seeded position on a blurred, cluttered
  4K backdrop (``large``), and at 1/3 of the height (``small``, a webcam user sitting back);
* per frame and shrink: ``BlazeFaceDetector.detections`` on the whole frame (the raw network view:
  boxes and scores) and ``detect`` (the product's full-frame search, candidates verified in a
  window);
* compared: whether a face was found, the best box's IoU between the two shrinks, the centre shift
  as a fraction of the box side, the score difference; the letterbox time of each, interleaved.

Usage: ``PYTHONPATH=. python benchmarks/sampled_letterbox.py [--photos DIR] [--limit N]``.
Writes ``results/sampled_letterbox_<date>_<machine>.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from tqdm import tqdm

from realtime.bench.report import environment, hardware_slug, run_context_line, write_report
from realtime.geometry import letterbox
from realtime.live import native
from realtime.live.detectors import DEFAULT_DETECTOR, make_detector
from realtime.sysinfo import summarize_ms
from training.splits import load_split

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FRAME_WH = (3840, 2160)
SCALES = {"large": 0.75, "small": 1 / 3}


def test_photos(root: Path, split_file: Path, limit: int) -> list[tuple[str, np.ndarray]]:
    split = load_split(split_file)
    keys = sorted(k for k, (s, _) in split.files.items() if s == "test")
    keys = [k for k in keys if (root / k[0] / k[1]).is_file()]
    if not keys:
        raise FileNotFoundError(f"no TEST photo of {split_file} under {root}")
    keys = keys[::max(1, len(keys) // limit)][:limit]
    out = []
    for folder, name in keys:
        img = cv2.imread(str(root / folder / name), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"{root / folder / name}: cannot read the photo")
        out.append((f"{folder}/{name}", img))
    return out


def frame_4k(photo: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    """``photo`` scaled to ``frac`` of the 4K frame's height, pasted at a seeded position on a
    blurred noise-and-shapes backdrop."""
    w, h = FRAME_WH
    small = rng.integers(0, 256, (27, 48, 3), dtype=np.uint8)
    frame = cv2.resize(small, FRAME_WH, interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(frame, (x, y), (x + int(rng.integers(50, 600)), y + int(rng.integers(50, 600))),
                      rng.integers(0, 256, 3).tolist(), -1)
    frame = cv2.GaussianBlur(frame, (0, 0), 3)
    ph = int(round(h * frac))
    pw = min(w, int(round(photo.shape[1] * ph / photo.shape[0])))
    img = cv2.resize(photo, (pw, ph), interpolation=cv2.INTER_CUBIC)
    x0, y0 = int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))
    frame[y0:y0 + ph, x0:x0 + pw] = img
    return frame


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def every_row(fn: Callable[[], Any]) -> Any:
    """``fn()`` with the detectors' letterbox reading every row (the native area resize, as
    before :func:`realtime.live.native.shrink_rows_sampled`); ``benchmarks/frame_scaling.py``
    times the full-frame search through it too."""
    sampled = native.shrink_rows_sampled
    native.shrink_rows_sampled = native.resize_area
    try:
        return fn()
    finally:
        native.shrink_rows_sampled = sampled


def compare(det: Any, frame: np.ndarray) -> dict[str, Any]:
    raw = {"area": every_row(lambda: det.detections(frame)), "sampled": det.detections(frame)}
    full = {"area": every_row(lambda: det.detect(frame)), "sampled": det.detect(frame)}
    row: dict[str, Any] = {"raw_found": {k: len(v) for k, v in raw.items()},
                           "search_found": {k: len(v) for k, v in full.items()}}
    if raw["area"] and raw["sampled"]:
        a, b = np.asarray(raw["area"][0][1], float), np.asarray(raw["sampled"][0][1], float)
        side = max(a[2] - a[0], a[3] - a[1])
        row.update(raw_iou=iou(a, b), raw_shift=float(np.hypot(*((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2)) / side),
                   raw_score_diff=float(raw["sampled"][0][0] - raw["area"][0][0]))
    if full["area"] and full["sampled"]:
        fa, fb = full["area"][0], full["sampled"][0]
        row.update(search_shift=float(np.hypot(fa.cx - fb.cx, fa.cy - fb.cy)) / fa.side,
                   search_side_ratio=float(fb.side / fa.side))
    return row


def time_letterbox(det: Any, frame: np.ndarray, iters: int) -> dict[str, dict[str, float]]:
    whole = (0.0, 0.0, float(frame.shape[1]), float(frame.shape[0]))
    fns = {"area": native.resize_area, "sampled": native.shrink_rows_sampled}
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(iters):
        for k in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            t0 = time.perf_counter()
            letterbox(frame, whole, (det.size, det.size), fns[k])
            samples[k].append(time.perf_counter() - t0)
    return {k: summarize_ms(v) for k, v in samples.items()}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scale in SCALES:
        rs = [r for r in rows if r["scale"] == scale]
        agree_raw = sum(bool(r["raw_found"]["area"]) == bool(r["raw_found"]["sampled"]) for r in rs)
        agree_search = sum(bool(r["search_found"]["area"]) == bool(r["search_found"]["sampled"]) for r in rs)
        ious = [r["raw_iou"] for r in rs if "raw_iou" in r]
        shifts = [r["search_shift"] for r in rs if "search_shift" in r]
        out[scale] = {"frames": len(rs), "found_area": sum(bool(r["search_found"]["area"]) for r in rs),
                      "found_sampled": sum(bool(r["search_found"]["sampled"]) for r in rs),
                      "raw_found_area": sum(bool(r["raw_found"]["area"]) for r in rs),
                      "raw_found_sampled": sum(bool(r["raw_found"]["sampled"]) for r in rs),
                      "agree_raw": agree_raw, "agree_search": agree_search,
                      "raw_iou_min": min(ious, default=float("nan")),
                      "raw_iou_median": float(np.median(ious)) if ious else float("nan"),
                      "raw_score_diff_max": max((abs(r["raw_score_diff"]) for r in rs if "raw_score_diff" in r),
                                                default=float("nan")),
                      "search_shift_max": max(shifts, default=float("nan")),
                      "search_shift_median": float(np.median(shifts)) if shifts else float("nan")}
    return out


def to_markdown(report: dict[str, Any]) -> str:
    t = report["letterbox_ms"]
    lines = [f"# Row-sampled whole-frame letterbox vs the full area resize, 4K frames ({report['date']})", "",
             run_context_line(report) + ".", "",
             f"Detector `{report['detector']}`; {report['photos']} identity-safe TEST photos, each pasted into a "
             f"3840x2160 frame at 3/4 (large) and 1/3 (small) of its height on a cluttered backdrop; rows read: every "
             f"{report['rows_step']}th (`native.sampled_rows`). Raw view: `detections(frame)` (one network run on "
             "the whole frame); search: `detect(frame)` (the product's full-frame search, candidates verified in a "
             "window). What is compared: benchmarks/sampled_letterbox.py.", "",
             f"Whole-frame letterbox at 4K, p50 ms (interleaved, {report['iters']} each): area (every row) "
             f"**{t['area']['p50']:.2f}** (p95 {t['area']['p95']:.2f}) -> rows sampled **{t['sampled']['p50']:.2f}** "
             f"(p95 {t['sampled']['p95']:.2f}), x{t['sampled']['p50'] / t['area']['p50']:.2f}.", "",
             "| face size | frames | faces found by the search: area / sampled | same found-or-not: raw / search "
             "| raw best box IoU, min / median | raw score diff, max | search box centre shift / side, median / max |",
             "|---|---|---|---|---|---|---|"]
    for scale, s in report["summary"].items():
        lines.append(f"| {scale} | {s['frames']} | {s['found_area']} / {s['found_sampled']} | {s['agree_raw']} / "
                     f"{s['agree_search']} | {s['raw_iou_min']:.3f} / {s['raw_iou_median']:.3f} | "
                     f"{s['raw_score_diff_max']:.3f} | {s['search_shift_median']:.4f} / {s['search_shift_max']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    ap.add_argument("--split", type=Path, default=REPO / "training" / "splits" / "faces_split_v1.json")
    ap.add_argument("--limit", type=int, default=60, help="TEST photos, evenly spread")
    ap.add_argument("--iters", type=int, default=30, help="letterbox timing repetitions")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    photos = test_photos(args.photos, args.split, args.limit)
    det = make_detector(DEFAULT_DETECTOR)
    rng = np.random.default_rng(0)
    rows = []
    first = None
    for i, (_, photo) in enumerate(tqdm(photos, desc="4K frames", unit="photo")):
        for scale, frac in SCALES.items():
            frame = frame_4k(photo, frac, rng)
            first = frame if first is None else first
            rows.append({"photo": i, "scale": scale, **compare(det, frame)})  # index, not the file name
    report: dict[str, Any] = {"kind": "sampled_letterbox", **environment(1), "detector": det.name,
                              "photos": len(photos), "frame": list(FRAME_WH), "iters": args.iters,
                              "rows_step": native.sampled_rows(FRAME_WH[1], det.size * FRAME_WH[1] // FRAME_WH[0]).step,
                              "letterbox_ms": time_letterbox(det, first, args.iters), "rows": rows}
    report["summary"] = summarize(rows)
    md = to_markdown(report)
    print(md)
    for p in write_report(report, args.out_dir / f"sampled_letterbox_{report['date']}_{hardware_slug(report)}.json", md):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
