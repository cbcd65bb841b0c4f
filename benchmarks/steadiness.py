"""Steadiness benchmark: upstream jitter sources, the smoothing sweep, out-of-domain photos.

Uses :mod:`realtime.bench.stability` (synthetic camera motion with a known trajectory, the
estimator run synchronously on every frame). Three parts:

1. **Upstream**: the raw (unsmoothed) keypoints' jitter / lag under variants of the stages
   before the smoothing: sensor noise off, the codec's sub-pixel refinement off, the ROI
   tracker's face-box smoothing stronger, re-detection less often / never. Each variant
   re-runs the pipeline.
2. **Sweep**: on the default pipeline's recordings, the smoothing parameters are swept by
   replaying the smoothing stage alone (:func:`realtime.bench.stability.sweep_smoothing`), drawn
   as jitter vs lag, and defaults chosen (Pareto front, targets jitter <= 0.2 % of the quad
   diagonal on the static hold, lag <= 1 frame on the slow pan).
3. **Out of domain**: the same measurement on real photos (the astronaut and, when given,
   a few photos of a folder such as Helen) with the chosen defaults.

Photos: in-domain portraits drawn by ``training.synthetic`` (the generator the model was
trained on, a split name it never used), kept when scikit-image's LBP face cascade finds
the face (the ROI stage needs it); written to ``out/stability/photos`` for re-runs with
``tryon bench --stability --photos``.

Writes benchmarks/results/steadiness_<date>_<hw>.{json,md} and
benchmarks/results/smoothing_sweep_<date>.{png,json,md}.

    python benchmarks/steadiness.py --checkpoint runs/synth_glasses_40ep/best.pt \
        [--photos 6] [--real-photos ../shared/data/faces/helen --real-limit 4] \
        [--set min_cutoff=1.0 --set beta=4.0 ...]  # the starting ("previous") smoothing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.backends.resolver import ModelResolver
from realtime.bench import latency
from realtime.bench import report as bench_report
from realtime.bench import stability as st
from realtime.codec import HeatmapCodec
from realtime.config import IMAGE_SUFFIXES, load_config
from realtime.framing import RoiConfig, roi_config
from realtime.live.pipeline import TryOnPipeline
from realtime.live.smoothing import SmoothingConfig
from realtime.live.detectors import CascadeDetector
from realtime.procedural import bundled_accessories

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PHOTO_DIR = ROOT / "out" / "stability" / "photos"
log = logging.getLogger("steadiness")

#: Upstream variants: (label, RoiConfig overrides, codec refine or None, sensor noise or None = default).
UPSTREAM_VARIANTS: tuple[tuple[str, dict[str, Any], str | None, float | None], ...] = (
    ("pipeline as shipped", {}, None, None),
    ("no sensor noise", {}, None, 0.0),
    ("codec refine: none (pure soft-argmax)", {}, "none", None),
    ("ROI face-box filter 4x slower (min_cutoff 0.175, beta 0.75)", {"min_cutoff": 0.175, "beta": 0.75}, None, None),
    ("ROI re-detection every 15 frames (not 5)", {"detect_every": 15}, None, None),
    ("ROI re-detection off (keypoint follow only)", {"detect_every": 10**9}, None, None),
    ("ROI re-detection dead-band off (every correction applied)", {"redetect_deadband": 0.0}, None, None),
    ("ROI re-detection dead-band 0.1 face sizes", {"redetect_deadband": 0.1}, None, None),
    ("ROI re-detection dead-band 0.3 face sizes", {"redetect_deadband": 0.3}, None, None),
)


def synthetic_photos(count: int, trajectory: st.Trajectory, noise: float, seed: int = 2026) -> list[tuple[str, Any]]:
    """In-domain portraits whose face the LBP cascade finds in the first frame."""
    from training.synthetic import render_sample, sample_rng

    detector = CascadeDetector(min_neighbors=roi_config("glasses").min_neighbors)
    out = []
    for i in range(40 * count):
        sample = render_sample("glasses", 512, sample_rng(seed, "glasses", "stability", i))
        first = st.TrajectorySource(sample.background, trajectory, noise_sigma=noise)._render(0)
        if detector.detect(first):
            out.append((f"synthetic_{seed}_{i:03d}", sample.background))
            if len(out) == count:
                break
    if len(out) < count:
        log.warning("only %d synthetic portraits with a detectable face", len(out))
    PHOTO_DIR.mkdir(parents=True, exist_ok=True)
    for name, img in out:
        cv2.imwrite(str(PHOTO_DIR / f"{name}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return out


def held_out_photos(folder: Path, count: int, trajectory: st.Trajectory, noise: float,
                    split_file: Path | None) -> list[tuple[str, Any]]:
    """Real photos of ``folder`` (sorted by name) that the split file puts in ``test`` (all
    photos without a split file), kept when the LBP cascade finds the face in the first frame."""
    from training.splits import load_split

    split = load_split(split_file) if split_file is not None else None
    detector = CascadeDetector(min_neighbors=roi_config("glasses").min_neighbors)
    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        if split is not None and split.split_of(folder.name, path.name) != "test":
            continue
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if detector.detect(st.TrajectorySource(rgb, trajectory, noise_sigma=noise)._render(0)):
            out.append((path.stem, rgb))
            if len(out) == count:
                break
    if not out:
        raise FileNotFoundError(f"no held-out photo with a detectable face in {folder}")
    return out


def scores_row(label: str, recs: list[st.Recording], previous: SmoothingConfig,
               chosen: SmoothingConfig) -> dict[str, Any]:
    """Mean scores of one upstream variant: raw, with the previous and with the chosen smoothing."""
    return {"variant": label, "photos": len(recs), "raw": st.mean_scores([st.score(r, r.raw, r.visible) for r in recs]),
            "previous": st.evaluate_config(recs, previous), "chosen": st.evaluate_config(recs, chosen)}


def _fmt(v: float | None, nd: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def upstream_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| variant | raw jitter (% diag) | raw lag slow / fast pan / zoom / roll / squeeze (frames) | "
             "raw motion error (% diag) | visible | jitter previous / chosen smoothing | lag slow pan previous / "
             "chosen | motion error previous / chosen |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        raw, prev, new = r["raw"], r["previous"], r["chosen"]
        lags = " / ".join(_fmt(raw["lag_frames"].get(k), 1) for k in ("slow pan", "fast pan", "zoom", "roll",
                                                                       "squeeze"))
        lines.append(f"| {r['variant']} | {_fmt(raw['jitter_pct'], 3)} | {lags} | {_fmt(raw['motion_error_pct'])} | "
                     f"{_fmt(raw['visible_frac'])} | {_fmt(prev['jitter_pct'], 3)} / {_fmt(new['jitter_pct'], 3)} | "
                     f"{_fmt(prev['lag_frames']['slow pan'])} / {_fmt(new['lag_frames']['slow pan'])} | "
                     f"{_fmt(prev['motion_error_pct'])} / {_fmt(new['motion_error_pct'])} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="trained glasses checkpoint (the steadiness model)")
    parser.add_argument("--photos", type=int, default=6, help="number of photos for the main measurement")
    parser.add_argument("--photo-dir", type=Path, help="real photos for the main measurement (default: synthetic "
                        "portraits drawn by training.synthetic, for a model trained on them)")
    parser.add_argument("--split-file", type=Path, help="with --photo-dir: use only the photos this split file "
                        "(training/splits/*.json) holds out as 'test'")
    parser.add_argument("--real-photos", type=Path, help="folder of real photos for the out-of-domain part")
    parser.add_argument("--real-limit", type=int, default=4)
    parser.add_argument("--noise", type=float, default=st.DEFAULT_NOISE_SIGMA)
    parser.add_argument("--skip-upstream", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="the 'previous' smoothing (SmoothingConfig options, e.g. --set beta=4) (default: SmoothingConfig's defaults), where the sweep starts")
    args = parser.parse_args()
    results = args.out_dir
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import torch

    torch.set_num_threads(1)
    resolver = ModelResolver("torch", checkpoints=[args.checkpoint], threads=1)
    backend = resolver("glasses")
    accessory = bundled_accessories("glasses")[0]
    base = load_config(SmoothingConfig, overrides=args.overrides)  # where the sweep starts
    trajectory = st.Trajectory()
    if args.photo_dir:
        photos = held_out_photos(args.photo_dir, args.photos, trajectory, args.noise, args.split_file)
        photo_text = (f"{len(photos)} real photos from {args.photo_dir}"
                      + (f" held out by {args.split_file}" if args.split_file else ""))
    else:
        photos = synthetic_photos(args.photos, trajectory, args.noise)
        photo_text = f"{len(photos)} in-domain synthetic portraits (training.synthetic, split 'stability')"

    def pipeline_for(roi: RoiConfig, refine: str | None) -> TryOnPipeline:
        pipe = TryOnPipeline(resolver, {"glasses": [accessory]}, smoothing=base, roi_configs={"glasses": roi})
        if refine is not None:
            pipe.codec = HeatmapCodec(dataclasses.replace(pipe.codec.config, refine=refine))
        return pipe

    env = bench_report.environment(1)
    model = latency.model_info(backend, resolver.untrained("glasses"), resolver.describe("glasses"))
    model["checkpoint"] = str(args.checkpoint)
    date = env["date"]

    # 1. Upstream variants (the first one, the pipeline as shipped, feeds the sweep).
    recordings = []
    variants = UPSTREAM_VARIANTS[:1] if args.skip_upstream else UPSTREAM_VARIANTS
    for label, roi_over, refine, noise in variants:
        pipe = pipeline_for(roi_config("glasses", **roi_over), refine)
        recordings.append((label, st.record_photos(lambda p=pipe: p, photos, trajectory,
                                                   args.noise if noise is None else noise)))
        log.info("recorded: %s", label)
    default_recs = recordings[0][1]

    # 2. The sweep, on the shipped pipeline's recordings; then every variant under both smoothings.
    sweep = st.sweep_smoothing(default_recs, base)
    chosen = SmoothingConfig(**sweep["chosen_config"])
    upstream = [scores_row(label, recs, base, chosen) for label, recs in recordings]
    sweep_report = {"kind": "smoothing_sweep", **env, "model": model, "accessory": accessory.name,
                    "photos": [r.name for r in default_recs], "skipped_photos": len(photos) - len(default_recs),
                    "noise_sigma": args.noise, "frame_size": f"{trajectory.size_wh[0]}x{trajectory.size_wh[1]}",
                    "fps": trajectory.fps, "script": [dataclasses.asdict(s) for s in trajectory.script],
                    "smoothing": dataclasses.asdict(chosen),
                    "per_photo": [{"photo": r.name, "diagonal_px": r.diagonal, "raw": st.score(r, r.raw, r.visible),
                                   "smoothed": st.score(r, *st.replay_smoothing(r, chosen))} for r in default_recs],
                    "targets": {"jitter_pct": st.TARGET_JITTER_PCT, "slow_pan_lag_frames": st.TARGET_LAG_FRAMES},
                    "sweep": sweep}
    sweep_report["raw"] = st.mean_scores([p["raw"] for p in sweep_report["per_photo"]])
    sweep_report["smoothed"] = st.mean_scores([p["smoothed"] for p in sweep_report["per_photo"]])
    png = results / f"smoothing_sweep_{date}.png"
    st.plot_sweep(sweep, png, title=st.sweep_title(sweep_report))
    sweep_report["sweep_png"] = str(png.relative_to(ROOT)) if png.is_relative_to(ROOT) else str(png)
    bench_report.write_report(sweep_report, results / f"smoothing_sweep_{date}.json", st.to_markdown(sweep_report))

    # 3. Out of domain: real photos with the chosen defaults (and the previous ones).
    ood = []
    real = st.load_photos(None) + (st.load_photos(args.real_photos, args.real_limit) if args.real_photos else [])
    pipe = pipeline_for(roi_config("glasses"), None)
    for name, img in real:
        try:
            (rec,) = st.record_photos(lambda p=pipe: p, [(name, img)], trajectory, args.noise)
        except ValueError as exc:
            log.warning("out-of-domain photo %s: %s", name, exc)
            ood.append({"photo": name, "error": str(exc)})
            continue
        ood.append({"photo": name, "confidence_median": float(np.nanmedian(rec.confidence)),
                    "raw": st.score(rec, rec.raw, rec.visible),
                    "previous": st.score(rec, *st.replay_smoothing(rec, base)),
                    "chosen": st.score(rec, *st.replay_smoothing(rec, chosen))})

    report = {"kind": "steadiness", **env, "model": model, "upstream": upstream, "sweep_file":
              f"benchmarks/results/smoothing_sweep_{date}.json", "previous_smoothing": dataclasses.asdict(base),
              "chosen_smoothing": dataclasses.asdict(chosen), "out_of_domain": ood,
              "photos": [n for n, _ in photos], "noise_sigma": args.noise}
    lines = [f"# Steadiness: upstream jitter sources and real photos — {date}", "",
             bench_report.run_context_line(env) + ".", "",
             f"Model: {model['description']} ({args.checkpoint}; input {model['input_size']}, width "
             f"x{model['width_mult']}). Photos: {photo_text}, {trajectory.size_wh[0]}x"
             f"{trajectory.size_wh[1]} at {trajectory.fps:g} fps, sensor noise {args.noise:g}. Estimator "
             "synchronous. Metrics as in realtime/bench/stability.py (% of the quad diagonal; lags in frames behind the "
             "ground truth).", "", "## Upstream variants (raw = before the smoothing stage)", ""]
    lines += upstream_markdown(upstream)
    lines += ["", f"Smoothing 'previous': min_cutoff {base.min_cutoff}, beta {base.beta}, d_cutoff {base.d_cutoff}, "
              f"shape {base.shape_min_cutoff}/{base.shape_beta}; 'chosen' (this sweep): min_cutoff "
              f"{chosen.min_cutoff}, beta {chosen.beta}, d_cutoff {chosen.d_cutoff}, shape "
              f"{chosen.shape_min_cutoff}/{chosen.shape_beta}."]
    lines += ["", f"## Smoothing: before / after (sweep: benchmarks/results/smoothing_sweep_{date}.md)", "",
              "| smoothing | jitter (% diag) | lag slow pan | lag fast pan | filter lag squeeze | motion error |",
              "|---|---|---|---|---|---|"]
    for label, row in (("off", sweep["raw"]), ("previous default", sweep["base"]), ("chosen", sweep["chosen"])):
        lines.append(f"| {label} ({row['min_cutoff']}/{row['beta']}, shape {row['shape_min_cutoff']}/"
                     f"{row['shape_beta']}) | {_fmt(row['jitter_pct'], 3)} | {_fmt(row['lag_frames']['slow pan'])} | "
                     f"{_fmt(row['lag_frames']['fast pan'])} | {_fmt(row['filter_lag_frames']['squeeze'])} | "
                     f"{_fmt(row['motion_error_pct'])} |")
    lines += ["", "## Other photos (the astronaut and --real-photos), chosen smoothing", "",
              "| photo | median confidence | jitter raw / previous / chosen (% diag) | lag slow pan raw / previous / "
              "chosen | motion error raw / chosen |", "|---|---|---|---|---|"]
    for o in ood:
        if "error" in o:
            lines.append(f"| {o['photo']} | {o['error']} | | | |")
            continue
        lines.append(f"| {o['photo']} | {_fmt(o['confidence_median'])} | "
                     + " / ".join(_fmt(o[k]["jitter_pct"], 3) for k in ("raw", "previous", "chosen")) + " | "
                     + " / ".join(_fmt(o[k]["lag_frames"]["slow pan"]) for k in ("raw", "previous", "chosen"))
                     + f" | {_fmt(o['raw']['motion_error_pct'])} / {_fmt(o['chosen']['motion_error_pct'])} |")
    stem = results / f"steadiness_{date}_{bench_report.hardware_slug(env)}"
    bench_report.write_report(report, stem.with_suffix(".json"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(sweep["chosen_config"], indent=1))


if __name__ == "__main__":
    main()
