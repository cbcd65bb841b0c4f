"""Steadiness (``tryon bench --stability``) on several held-out photos, one photo at a time,
resumable.

The photos are the TEST side of the identity split (``training/splits/faces_split_v1.json``),
taken in turn from each source folder (Helen, FMD, ...) in name order, kept when the LBP cascade
finds the face in the clip's first frame (:func:`steadiness.held_out_photos`). Each photo's
report is written as soon as it is done (``<out-dir>/stability_<date>_<hw>_<photo>.{json,md}``)
and a later run with the same ``--out-dir`` skips the photos that already have one, so a run cut
short by a shared machine loses at most one photo. The summary (``stability_heldout_<date>_<hw>.md``)
tabulates every photo report found in ``--out-dir`` and their mean.

Speed: the network is the cost (every frame is inferred). Two things make several photos fit:
the ``targets`` script (the default here, :data:`realtime.bench.stability.TARGETS_SCRIPT`: the
issue-13 targets' segments only, 645 frames instead of the full script's 1065) and the OpenVINO
backend (the default here), which runs the shipped model about twice as fast as torch on a CPU
(benchmarks/results/bench_2026-12-01_*).

    PYTHONPATH=. python benchmarks/stability_heldout.py --photos 6 \
        --faces ../shared/data/faces --out-dir benchmarks/results/stability_heldout [--set crop_lead=0]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from steadiness import held_out_photos  # noqa: E402  (the same photo choice as the steadiness benchmark)

from realtime.backends.resolver import ModelResolver  # noqa: E402
from realtime.bench import stability as st  # noqa: E402
from realtime.bench.latency import model_info  # noqa: E402
from realtime.bench.report import environment, hardware_slug, run_context_line, write_report  # noqa: E402
from realtime.config import parse_overrides  # noqa: E402
from realtime.framing import roi_config  # noqa: E402
from realtime.live.detectors import DEFAULT_DETECTOR, detector_names, make_detector  # noqa: E402
from realtime.live.pipeline import TryOnPipeline  # noqa: E402
from realtime.live.smoothing import SmoothingConfig  # noqa: E402
from realtime.procedural import bundled_accessories  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("stability_heldout")
#: The smoothing defaults before this measurement (replayed on each photo's raw keypoints).
PREVIOUS_SMOOTHING = {"beta": 8.0}


def pick_photos(faces: Path, count: int, split_file: Path, trajectory: st.Trajectory,
                noise: float) -> list[tuple[str, np.ndarray]]:
    """``count`` held-out photos, taken in turn from each sub-folder of ``faces``."""
    folders = sorted(p for p in faces.iterdir() if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"no photo folders (helen/, fmd/, ...) in {faces}")
    per = [held_out_photos(f, count, trajectory, noise, split_file) for f in folders]
    out: list[tuple[str, np.ndarray]] = []
    for i in range(count):
        for folder, photos in zip(folders, per):
            if i < len(photos) and len(out) < count:
                out.append((f"{folder.name}-{photos[i][0]}", photos[i][1]))
    return out


def summary(reports: list[dict[str, Any]], out_dir: Path) -> str:
    """Markdown: one row per photo report and their mean (smoothed keypoints)."""
    rows = []
    for r in reports:
        (p,) = r["per_photo"]
        rows.append((r["photos"][0], p["smoothed"], p["raw"], r))
    first = reports[0]
    mean = st.mean_scores([s for _, s, _, _ in rows])
    mean_raw = st.mean_scores([s for _, _, s, _ in rows])
    lines = [f"# Steadiness on {len(rows)} held-out photos — {first['date']}", "",
             run_context_line(first) + " (the first photo's run; each photo's report names its own load).", "",
             f"Model: {first['model'].get('description')} (backend {first['model'].get('backend')}). Detector "
             f"{first.get('detector')}. Script: " + "; ".join(f"{s['name']} {s['seconds']:g} s" for s in first["script"])
             + f" ({first['fps']:g} fps, "
             f"{first['frame_size']}); per-photo reports in {out_dir.name}/ "
             "(benchmarks/stability_heldout.py).", "",
             "| photo | jitter (% diag) | lag slow pan (raw) | jitter / lag slow pan, previous smoothing | "
             "visible with a face | visible at +45 (hold) | "
             "roll error +45 hold (deg) | accessory with no face | frames to re-acquire (re-entry / 30 deg cut) | "
             "load at start |", "|---|---|---|---|---|---|---|---|---|---|"]

    def reacq(sc: dict[str, Any]) -> str:
        vals = [row.get("reacquire_frames") for row in sc.get("segments", []) if "reacquire_frames" in row]
        return " / ".join("never" if v is None else str(v) for v in vals)

    def hold45(sc: dict[str, Any], key: str) -> float | None:
        return next((row.get(key) for row in sc.get("segments", []) if row["name"] == "hold +45"), None)

    def row(name: str, sc: dict[str, Any], raw: dict[str, Any], prev: dict[str, Any] | None, tail: str) -> str:
        old = "n/a" if prev is None else f"{st._fmt(prev['jitter_pct'], 3)} / {st._fmt(prev['lag_frames']['slow pan'])}"
        return (f"| {name} | {st._fmt(sc['jitter_pct'], 3)} | {st._fmt(sc['lag_frames']['slow pan'])} "
                f"({st._fmt(raw['lag_frames']['slow pan'])}) | {old} | {st._fmt(sc['visible_frac'], 3)} | "
                f"{st._fmt(hold45(sc, 'visible_frac'))} | {st._fmt(hold45(sc, 'roll_error_deg'), 1)} | "
                f"{st._fmt(sc['false_accessory_frac'], 3)} | {tail} |")

    for name, sc, raw, r in rows:
        load = ", ".join(f"{v:.1f}" for v in r.get("load_avg", [])[:1])
        lines.append(row(name, sc, raw, r.get("previous_smoothing", {}).get("smoothed"), f"{reacq(sc)} | {load}"))
    prevs = [r["previous_smoothing"]["smoothed"] for r in reports if "previous_smoothing" in r]
    lines.append(row("**mean**", mean, mean_raw, st.mean_scores(prevs) if len(prevs) == len(reports) else None, " | "))
    worst_lag = max(s["lag_frames"]["slow pan"] for _, s, _, _ in rows)
    worst_jit = max(s["jitter_pct"] for _, s, _, _ in rows)
    worst_false = max(s["false_accessory_frac"] for _, s, _, _ in rows)
    lines += ["", f"Targets: jitter <= {st.TARGET_JITTER_PCT} % (worst photo {worst_jit:.3f}), slow-pan lag <= "
                  f"{st.TARGET_LAG_FRAMES} frame (worst {worst_lag:.2f}), accessory on <= 1 % of the frames with no "
                  f"face (worst {100 * worst_false:.1f} %).", "", *st.segment_table(mean)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=int, default=6, help="held-out photos (default 6)")
    p.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "data" / "faces",
                   help="folder of photo folders (default ../shared/data/faces)")
    p.add_argument("--split-file", type=Path, default=ROOT / "training" / "splits" / "faces_split_v1.json")
    p.add_argument("--checkpoint", default=str(ROOT / "realtime" / "weights" / "glasses_lite.pt"))
    p.add_argument("--backend", default="openvino", help="model backend (default openvino: ~2x torch on a CPU)")
    p.add_argument("--detector", choices=detector_names(), default=DEFAULT_DETECTOR)
    p.add_argument("--script", choices=list(st.SCRIPTS), default="targets",
                   help="camera script (default targets: the issue-13 targets in ~half the full script's frames)")
    p.add_argument("--noise", type=float, default=st.DEFAULT_NOISE_SIGMA)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="glasses crop/tracking option (realtime.framing.RoiConfig), e.g. --set crop_lead=0")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results" / "stability_heldout")
    p.add_argument("--summarise", action="store_true",
                   help="only tabulate the photo reports already in --out-dir (e.g. after a run cut short)")
    args = p.parse_args(argv)
    if args.summarise:
        reports = [json.loads(f.read_text()) for f in sorted(args.out_dir.glob("stability_*.json"))]
        if not reports:
            p.error(f"--summarise: no stability_*.json report in {args.out_dir}")
        return _write_summary(reports, args.out_dir, "")
    if args.photos < 1:
        p.error("--photos must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        roi_over = parse_overrides(args.overrides)
        roi = roi_config("glasses", **roi_over)
    except (TypeError, ValueError) as exc:
        p.error(f"--set: {exc}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    trajectory = st.Trajectory(st.SCRIPTS[args.script])
    photos = pick_photos(args.faces, args.photos, args.split_file, trajectory, args.noise)
    resolver = ModelResolver(args.backend, checkpoints=[args.checkpoint], threads=1)
    accessory = bundled_accessories("glasses")[0]
    detector = make_detector(args.detector, roi)
    env = environment(1)
    slug = hardware_slug(env)
    tag = f"_{args.script}_{args.detector}" + "".join(f"_{k}-{v}" for k, v in roi_over.items())
    reports = []
    for name, img in photos:
        done = sorted(args.out_dir.glob(f"stability_*_{slug}{tag}_{name}.json"))
        if done:
            log.info("%s: already measured (%s), skipped", name, done[-1].name)
            reports.append(json.loads(done[-1].read_text()))
            continue
        env = environment(1)  # this photo's own date and load
        pipe = TryOnPipeline(resolver, {"glasses": [accessory]}, detector=detector, roi_configs={"glasses": roi})
        (rec,) = st.record_photos(lambda: pipe, [(name, img)], trajectory, args.noise)
        report = st.stability_report([rec], pipe.smoother.cfg, args.noise)
        # The smoothing is downstream of everything that feeds back: the previous default's scores
        # come from replaying it on the same raw keypoints (exact, realtime.bench.stability).
        report["previous_smoothing"] = {"config": PREVIOUS_SMOOTHING,
                                        "smoothed": st.score(rec, *st.replay_smoothing(
                                            rec, SmoothingConfig(**PREVIOUS_SMOOTHING)))}
        report.update(env)
        report["model"] = model_info(resolver("glasses"), resolver.untrained("glasses"), resolver.describe("glasses"))
        report["accessory"], report["detector"], report["roi_overrides"] = accessory.name, args.detector, roi_over
        write_report(report, args.out_dir / f"stability_{env['date']}_{slug}{tag}_{name}.json", st.to_markdown(report))
        reports.append(report)
        log.info("%s: jitter %.3f %%, slow-pan lag %.2f frames, accessory with no face %.3f", name,
                 report["smoothed"]["jitter_pct"], report["smoothed"]["lag_frames"]["slow pan"],
                 report["smoothed"]["false_accessory_frac"])
    resolver.close()
    return _write_summary(reports, args.out_dir, tag)


def _write_summary(reports: list[dict[str, Any]], out_dir: Path, tag: str) -> int:
    text = summary(reports, out_dir)
    out = out_dir / f"stability_heldout_{reports[-1]['date']}_{hardware_slug(reports[-1])}{tag}.md"
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
