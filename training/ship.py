"""Ship a trained model as a default: fp16 weights, held-out metrics, a result grid, a model card.

``tryon ship --checkpoint runs/glasses_lite/best.pt --data data/pseudo_strat/glasses``
writes, into ``realtime/weights/`` (where :mod:`realtime.backends.resolver` finds per-category
defaults):

* ``<name>.pt``: the weights stored as fp16 (no optimiser state), with the checkpoint's
  metadata (model config, mean training quad, training config, epoch);
* ``<name>_grid.png``: 16 held-out test photos with the accessory where the model puts
  it (small; the only derived images of the photos that may be committed);
* ``<name>.md``: the model card: training data and its terms, placement-rule version,
  config, training (epochs, hardware, time), metrics on the held-out split measured on
  the shipped fp16 file (LSSIM / IoU / Disp beside the mean-quad baseline and the teacher
  ceiling) and, for glasses with ``--helen``, the Helen pupil check run through the live
  pipeline (face detection, crop, network, decode) on the held-out Helen photos;
* ``<name>.json``: the same numbers, machine-readable.

Every number in the card is measured by this command when it runs; nothing is copied in
by hand.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.cli import command_parser
from realtime.backends.resolver import WEIGHTS_DIR
from realtime.checkpoint import load_checkpoint, save_checkpoint
from realtime.config import ModelConfig
from realtime.io import atomic_write_bytes, file_sha256

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
TERMS = ("research and demonstration use only: the training photos come from the Helen subset "
         "(zhfe99/helen, \"free for use in research projects\") and the Face-Mask-Detection "
         "`without_mask` photos (chandrikadeb7/Face-Mask-Detection, MIT repository, image rights "
         "unclear); see ../shared/data/PROVENANCE.md. A model trained on them inherits these terms.")
GRID_TILES = 16
GRID_TILE_PX = 160


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------

def write_shipped_weights(checkpoint: str | Path, out_path: str | Path) -> dict[str, Any]:
    """Store ``checkpoint``'s weights as fp16 at ``out_path`` (no optimiser state); returns its meta."""
    blob = load_checkpoint(checkpoint)
    config = ModelConfig.from_dict(blob["model_config"])
    meta = dict(blob.get("meta", {}))
    meta["shipped"] = {"source": str(checkpoint), "source_sha256": file_sha256(checkpoint),
                       "date": _dt.date.today().isoformat(), "storage": "fp16"}
    save_checkpoint(out_path, blob["model"], config, meta=meta, half=True)
    return meta


# --------------------------------------------------------------------------------------
# Held-out grid
# --------------------------------------------------------------------------------------

def grid_indices(n: int, count: int = GRID_TILES) -> list[int]:
    """``count`` sample indices spread evenly over ``n`` (all of them when n <= count)."""
    if n <= count:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, count)})


def result_grid(backend, dataset, path: str | Path, count: int = GRID_TILES, tile_px: int = GRID_TILE_PX) -> Path:
    """A 4-wide grid of held-out composites: the accessory where the model puts it."""
    from realtime.codec import HeatmapCodec
    from training.evaluate import predict_vertices
    from training.figures import _safe_composite, _write_png

    codec = HeatmapCodec(backend.info.config.codec)
    tiles = []
    for i in grid_indices(len(dataset), count):
        sample = dataset[i]
        pred, _ = predict_vertices(backend, codec, sample)
        tiles.append(cv2.resize(_safe_composite(sample, pred), (tile_px, tile_px), interpolation=cv2.INTER_AREA))
    while len(tiles) % 4:
        tiles.append(np.full((tile_px, tile_px, 3), 255, np.uint8))
    rows = [np.concatenate(tiles[r:r + 4], axis=1) for r in range(0, len(tiles), 4)]
    return _write_png(path, np.concatenate(rows, axis=0))


# --------------------------------------------------------------------------------------
# Helen pupil check through the live pipeline
# --------------------------------------------------------------------------------------

def pupil_errors(quad_xy: np.ndarray, pupils_xy: np.ndarray) -> dict[str, float]:
    """Quad centre vs the pupils' midpoint (fraction of the inter-pupil distance) and the
    absolute angle (degrees) between the quad's top edge and the pupil line."""
    q, p = np.asarray(quad_xy, np.float64), np.asarray(pupils_xy, np.float64)
    ipd = float(np.linalg.norm(p[1] - p[0]))
    if ipd < 1.0:
        raise ValueError("annotated pupils coincide")
    top, eyes = q[1] - q[0], p[1] - p[0]
    roll = math.degrees(math.atan2(top[1], top[0]) - math.atan2(eyes[1], eyes[0]))
    roll = (roll + 180.0) % 360.0 - 180.0
    return {"quad_centre": float(np.linalg.norm(q.mean(axis=0) - p.mean(axis=0))) / ipd, "roll_deg": abs(roll)}


def pipeline_pupil_check(backend, helen_dir: str | Path, split_file: str | Path | None = None,
                         accessory_name: str | None = None) -> dict[str, Any]:
    """The model's glasses on held-out Helen photos, through the live pipeline, against the pupils.

    Each photo is one still frame: face detection, the glasses crop, the network, decode,
    back to photo pixels (no smoothing history: the tracker is reset per photo).
    """
    from realtime.live.capture import Frame
    from realtime.live.pipeline import TryOnPipeline
    from realtime.procedural import accessory_by_name
    from training.pseudo_strat import (CHECK_GLASSES_ACCESSORY, LFPW_FILE, LFPW_PUPIL_LEFT, LFPW_PUPIL_RIGHT,
                                       summary_stats)
    from training.splits import DEFAULT_SPLIT_FILE, list_photos, load_split

    helen = Path(helen_dir)
    annotations = json.loads((helen / LFPW_FILE).read_text())
    split = load_split(split_file or DEFAULT_SPLIT_FILE)
    acc = accessory_by_name(accessory_name or CHECK_GLASSES_ACCESSORY)
    pipe = TryOnPipeline(lambda _c: backend, {"glasses": [acc]})
    rows: dict[str, list[float]] = {"quad_centre": [], "roll_deg": []}
    names, skipped = [], {"no_face": 0, "not_held_out": 0, "no_annotation": 0}
    for name in list_photos(helen):
        if split.split_of(helen.name, name) != "test":
            skipped["not_held_out"] += 1
            continue
        if name not in annotations:
            skipped["no_annotation"] += 1
            continue
        image = cv2.imread(str(helen / name), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"cannot read {helen / name}")
        pipe.reset()
        est = pipe.estimate(Frame(image, 0, 0.0))
        if est.raw_pts_xy is None:
            skipped["no_face"] += 1
            continue
        pts = np.asarray(annotations[name], np.float64)
        for k, v in pupil_errors(est.raw_pts_xy, pts[[LFPW_PUPIL_LEFT, LFPW_PUPIL_RIGHT]]).items():
            rows[k].append(v)
        names.append(name)
    if not names:
        raise ValueError(f"{helen}: no held-out annotated photo where the face was found")
    return {"n": len(names), "skipped": skipped, "accessory": acc.name, "photos": names,
            **{k: summary_stats(v) for k, v in rows.items()}}


# --------------------------------------------------------------------------------------
# Training summary from the run folder
# --------------------------------------------------------------------------------------

def training_summary(meta: dict[str, Any], run_dir: Path | None) -> dict[str, Any]:
    """Epochs, wall time and validation history of the run that made the checkpoint."""
    cfg = meta.get("train_config", {})
    out: dict[str, Any] = {"epoch": meta.get("epoch"), "planned_epochs": cfg.get("optim", {}).get("epochs"),
                           "precision": meta.get("precision"), "train_size": meta.get("train_size"),
                           "init_from": cfg.get("init_from"), "optim": cfg.get("optim"),
                           "augment": (cfg.get("augment") or {}).get("enabled"), "seed": cfg.get("seed")}
    init = cfg.get("init_from")
    if init and Path(init).is_file():
        parent = load_checkpoint(init)
        pcfg = ModelConfig.from_dict(parent["model_config"])
        out["init_from_desc"] = (f"{pcfg.category} model, width x{pcfg.width_mult:g}, input {pcfg.input_size}, "
                                 f"after epoch {parent.get('meta', {}).get('epoch')}")
    log_csv = run_dir / "log.csv" if run_dir else None
    if log_csv and log_csv.is_file():
        with log_csv.open() as f:
            rows = list(csv.DictReader(f))
        out["wall_hours"] = round(sum(float(r["epoch_time_s"] or 0) for r in rows) / 3600.0, 2)
        out["validation"] = [{"epoch": int(r["epoch"]), "lssim": float(r["val_lssim"]), "iou": float(r["val_iou"]),
                              "disp": float(r["val_disp"])} for r in rows if r.get("val_iou")]
    return out


# --------------------------------------------------------------------------------------
# The card
# --------------------------------------------------------------------------------------

BARS = {"glasses": {"iou": 0.80, "disp": 0.015}, "hat": {"iou": 0.80, "disp": 0.015}, "tie": {"iou": 0.50}}


def _f(v: Any, nd: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def card_markdown(report: dict[str, Any]) -> str:
    """The model card text of a :func:`ship` report."""
    cat, name, cfg, tr = report["category"], report["name"], report["model_config"], report["training"]
    ev, data = report["eval"], report["data"]
    lines = [f"# Model card: `{name}` ({cat})", "",
             f"Default {cat} model of `tryon live` / `record` / `demo` (found in `realtime/weights/` by "
             "`realtime.backends.resolver`; `--checkpoint` / `--onnx` / `--engine` override it). Written by "
             f"`tryon ship` on {report['date']}; every number below was measured by that command.", "",
             "## Intended use and terms", "", f"Virtual try-on demos. Terms: {TERMS}", "",
             "## Training data", "",
             f"Pseudo-STRAT {cat} set built by `tryon make-dataset pseudo-strat` (`training/pseudo_strat.py`, "
             f"placement rules {data.get('placement_rules', 'n/a')}, see `docs/pseudo_strat.md`): real photos of "
             "`../shared/data/faces/{helen,fmd}` labelled by the MediaPipe 0.10.21 face-mesh/pose teacher, "
             "with the accessories of `../shared/data/accessories/` and procedural ones composited by the rules. "
             f"Train {data['train']} samples, held-out test {data['test']} samples; the split is by identity "
             "(`training/splits/faces_split_v1.json`: no person on both sides).", "",
             "## Model", "",
             f"`{cfg['width_mult']}`x width of the paper network (SPEC section 1), input {cfg['input_size']} px, fusion "
             f"`{cfg['fusion']}`, semantic decoder {'on' if cfg['semantic'] else 'off (the paper w/o sm variant)'}, "
             f"codec beta {cfg['codec']['beta']:g} + `{cfg['codec']['refine']}` refinement, corners with a heatmap peak "
             f"below {cfg['codec'].get('complete_below', 0):g} completed from the accessory's shape. "
             f"{report['params'] / 1e6:.2f} M parameters; stored fp16: {report['size_mb']:.2f} MB "
             f"(`{name}.pt`, sha256 {report['sha256']}).", "",
             "## Training", "",
             f"`tryon train` ({tr.get('precision')} autocast), {tr.get('epoch')} epochs of {tr.get('train_size')} "
             f"samples, augmentation {'on' if tr.get('augment') else 'off'}, Adam lr {tr['optim']['lr']:g} "
             f"(linear to {tr['optim']['final_lr']:g} from epoch {tr['optim']['decay_start_epoch']:g} to "
             f"{tr['optim']['epochs']}), batch {tr['optim']['batch_size']}, seed {tr.get('seed')}. "
             + (f"Warm start: every tensor of `{tr['init_from']}` ({tr.get('init_from_desc', 'file not present')}) "
                "that matched by name and shape (no ImageNet weights exist here). " if tr.get("init_from") else "Encoders from scratch (no ImageNet weights exist here). ")
             + f"Hardware: {report['hardware']}; wall time of this run {tr.get('wall_hours', 'n/a')} h "
               "(on a CPU shared with other jobs).", ""]
    if tr.get("validation"):
        lines += ["Validation during training (held-out split):", "", "| epoch | LSSIM | IoU | Disp |", "|---|---|---|---|"]
        lines += [f"| {v['epoch']} | {_f(v['lssim'])} | {_f(v['iou'])} | {_f(v['disp'])} |" for v in tr["validation"]]
        lines.append("")
    lines += ["## Held-out metrics (the shipped fp16 file, torch CPU fp32 compute)", "",
              "| | LSSIM ↑ | IoU ↑ | Disp ↓ | n |", "|---|---|---|---|---|",
              f"| **{name}** | {_f(ev['lssim'])} | {_f(ev['iou'])} | {_f(ev['disp'])} | {ev['n']} |"]
    for label, row in report["baselines"].items():
        lines.append(f"| {label} | {_f(row['lssim'])} | {_f(row['iou'])} | {_f(row['disp'])} | {row['n']} |")
    paper = report.get("paper_table1")
    if paper:
        lines.append(f"| paper Table 1 (STRAT, not comparable data) | {paper[0]} | {paper[1]} | {paper[2]} | |")
    bar = BARS[cat]
    verdict = []
    for k, v in bar.items():
        ok = ev[k] >= v if k == "iou" else ev[k] <= v
        verdict.append(f"{'IoU' if k == 'iou' else 'Disp'} {'≥' if k == 'iou' else '≤'} {v}: "
                       f"{'met' if ok else 'not met'} ({ev[k]:.4f})")
    lines += ["", "Bar (issue 8): " + "; ".join(verdict) + ".", "",
              "LSSIM, IoU and Disp as in SPEC section 5 (`training/metrics.py`). The teacher row is the ceiling: "
              "the labels are the teacher's output.", ""]
    pc = report.get("pupil_check")
    if pc:
        m, r = pc["model"], pc.get("rule")
        lines += ["## Helen pupil check (glasses)", "",
                  f"Held-out Helen photos with the 29 LFPW landmarks, each run as one still frame through the live "
                  f"pipeline (LBP face detection, glasses crop, this network, decode, back to photo pixels) with "
                  f"`{m['accessory']}`; error of the quad centre from the annotated pupils' midpoint as a fraction "
                  "of the inter-pupil distance, and the angle between the quad's top edge and the pupil line.", "",
                  "| | photos | centre error mean / median / p90 (IPD) | roll error mean / median / p90 (deg) |",
                  "|---|---|---|---|",
                  f"| {name} through the pipeline | {m['n']} | {m['quad_centre']['mean']} / "
                  f"{m['quad_centre']['median']} / {m['quad_centre']['p90']} | {m['roll_deg']['mean']} / "
                  f"{m['roll_deg']['median']} / {m['roll_deg']['p90']} |"]
        if r:
            lines.append(f"| placement rule on the teacher (the labels), same photos | {r['n']} | "
                         f"{r['quad_centre']['mean']} / {r['quad_centre']['median']} / {r['quad_centre']['p90']} | "
                         f"lens line: {r['roll_deg']['mean']} / {r['roll_deg']['median']} / {r['roll_deg']['p90']} |")
        lines += ["", f"Skipped: {pc['model']['skipped']}.", ""]
    lines += ["## Held-out results", "", f"![16 held-out test photos]({name}_grid.png)", "",
              f"`{name}_grid.png`: {report['grid_n']} held-out test samples spread over the split, each with the "
              "accessory where this model puts it (composited by `training.strat.composite_sample`).", "",
              "## Limitations", "",
              "Trained on teacher labels (MediaPipe), not human annotation: it inherits the teacher's and the "
              "rules' errors (see the pupil check). Frontal and near-frontal faces dominate the photos. Trained "
              "on a shared 2-core CPU for a short time: see the validation history for where it was still "
              "improving.", ""]
    return "\n".join(lines)


PAPER_TABLE1 = {"glasses": ("0.7038", "0.7814", "0.0122"), "hat": ("0.5718", "0.8239", "0.0147"),
                "tie": ("0.3229", "0.4832", "0.0093")}


def ship(checkpoint: str | Path, data: str | Path, name: str | None = None, out_dir: str | Path = WEIGHTS_DIR,
         run_dir: str | Path | None = None, helen: str | Path | None = None, split_file: str | Path | None = None,
         cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Write ``<name>.pt`` (fp16), ``<name>_grid.png``, ``<name>.md`` and ``<name>.json`` into ``out_dir``."""
    from realtime.backends.base import OpenOptions
    from realtime.backends.opener import open_artifact
    from realtime.sysinfo import hardware_line
    from training.evaluate import evaluate
    from training.placement import PLACEMENT_RULES_VERSION
    from training.strat import StratDataset

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    blob = load_checkpoint(checkpoint)
    config = ModelConfig.from_dict(blob["model_config"])
    cat = config.category
    name = name or f"{cat}_w{config.width_mult:g}"
    if not name.startswith(cat):
        raise ValueError(f"--name {name!r} must start with the category {cat!r} (realtime.backends.resolver finds it that way)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.pt"
    meta = write_shipped_weights(checkpoint, weights)
    log.info("wrote %s (%.2f MB)", weights, weights.stat().st_size / 1e6)

    report_eval = evaluate(weights, data, progress=progress)
    backend = open_artifact(weights, OpenOptions(device="cpu", precision="fp32"))
    try:
        test = StratDataset(data, cat, config.input_size, split="test")
        train_n = len(StratDataset(data, cat, config.input_size, split="train"))
        grid = result_grid(backend, test, out / f"{name}_grid.png")
        pupil = None
        if helen is not None and cat == "glasses":
            from training.pseudo_strat import check_glasses

            model_check = pipeline_pupil_check(backend, helen, split_file)
            rule = check_glasses(helen, cache_dir, only=set(model_check["photos"])) if cache_dir else None
            pupil = {"model": model_check, "rule": rule}
    finally:
        backend.close()
    params = sum(int(np.prod(v.shape)) for v in blob["model"].values())
    report = {"name": name, "category": cat, "date": _dt.date.today().isoformat(),
              "checkpoint": str(checkpoint), "sha256": file_sha256(weights), "size_mb": weights.stat().st_size / 1e6,
              "params": params, "model_config": config.to_dict(),
              "data": {"root": str(data), "train": train_n, "test": len(test), "placement_rules": PLACEMENT_RULES_VERSION},
              "training": training_summary(meta, Path(run_dir) if run_dir else checkpoint.parent),
              "hardware": meta.get("hardware") or f"{hardware_line()} (the machine that ran tryon ship; the "
                                                     "checkpoint does not record its own)", "eval": report_eval.metrics.as_dict(),
              "baselines": {k: {kk: v[kk] for kk in ("lssim", "iou", "disp", "n")}
                            for k, v in report_eval.baselines.items()},
              "paper_table1": PAPER_TABLE1[cat], "pupil_check": pupil, "grid": grid.name,
              "grid_n": len(grid_indices(len(test)))}
    atomic_write_bytes(out / f"{name}.md", card_markdown(report).encode())
    atomic_write_bytes(out / f"{name}.json", (json.dumps(report, indent=1, default=str) + "\n").encode())
    return report


def main(argv: list[str] | None = None) -> int:
    p = command_parser("tryon ship", __doc__.splitlines()[0],
                       "tryon ship --checkpoint runs/glasses_lite/best.pt --data data/pseudo_strat/glasses "
                       "--name glasses_lite --helen HELEN_DIR --teacher-cache data/teacher_cache")
    p.add_argument("--checkpoint", required=True, help="trained .pt checkpoint (e.g. RUN/best.pt)")
    p.add_argument("--data", required=True, help="the pseudo-STRAT dataset root it was trained on (train/ + test/)")
    p.add_argument("--name", help="file stem, starting with the category (default: <category>_w<width>)")
    p.add_argument("--out", default=str(WEIGHTS_DIR), help=f"output folder (default: {WEIGHTS_DIR})")
    p.add_argument("--run-dir", help="the training run folder (default: the checkpoint's folder) for log.csv")
    p.add_argument("--helen", help="glasses: Helen photo folder with landmarks_lfpw29.json for the pupil check")
    p.add_argument("--split-file", help="identity split file (default: training/splits/faces_split_v1.json)")
    p.add_argument("--teacher-cache", help="teacher cache, to put the placement rule's own pupil errors beside")
    args = p.parse_args(argv)
    report = ship(args.checkpoint, args.data, args.name, args.out, args.run_dir, args.helen, args.split_file,
                  args.teacher_cache)
    ev = report["eval"]
    print(f"{report['name']}: LSSIM {ev['lssim']:.4f} IoU {ev['iou']:.4f} Disp {ev['disp']:.4f} "
          f"(n={ev['n']}); card {Path(args.out) / (report['name'] + '.md')}")
    return 0
