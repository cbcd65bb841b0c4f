"""Parity of the converted BlazeFace with MediaPipe's own, and its box calibration on TRAIN photos.

1. MediaPipe's ``face_detection`` (short range) runs in the teacher venv
   (``training/teacher/blazeface_reference.py``) on ``--photos`` TRAIN photos of the identity
   split (seeded choice), upright and turned by each ``--rolls`` angle (clockwise about the
   photo centre, black corners); the project's ``blazeface`` detector runs on the same images.
   Each reference face is matched to our best-overlapping detection: IoU, keypoint distance
   (px and share of the box side), score difference, faces missed / extra.
2. The fixed mapping of BlazeFace's box to the teacher's mesh box (the convention
   ``benchmarks/detection.py`` scores against; ``/work``-side teacher cache of the photos,
   ``--teacher-cache``), median over the upright TRAIN photos only, and the cascade-convention
   constants ``BOX_SCALE`` / ``BOX_DY`` of :class:`realtime.live.detectors.BlazeFaceDetector`
   derived from it; with rolls, how the axis-aligned box grows with the roll.

    TEACHER_VENV=... python benchmarks/blazeface_parity.py [--photos 100] [--rolls 30,45]

Writes benchmarks/results/blazeface_parity_<date>_<cpu>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from realtime.geometry import roll_from_eyes
from realtime.bench.report import environment, hardware_slug, run_context_line, write_report
from realtime.live.detectors import BlazeFaceDetector
from training.splits import load_split
from training.teacher.cache import load_teacher_record, teacher_python

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE = REPO / "training" / "teacher" / "blazeface_reference.py"
#: The teacher box in cascade sides and its centre below the cascade's (see DlibHogDetector).
TEACHER_IN_CASCADE = (0.97, 1.09, 0.028)


def turned(img: np.ndarray, roll: float) -> np.ndarray:
    """The photo turned clockwise on screen by ``roll`` degrees about its centre (the reference's turn)."""
    if not roll:
        return img
    h, w = img.shape[:2]
    mat = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), -roll, 1.0)
    return cv2.warpAffine(img, mat, (w, h), borderMode=cv2.BORDER_CONSTANT)


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def run_reference(rows: list[tuple[Path, float]], venv: str | None) -> dict[str, list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory() as tmp:
        lst, out = Path(tmp) / "list.txt", Path(tmp) / "ref.json"
        lst.write_text("".join(f"{p}\t{r:g}\n" for p, r in rows))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        proc = subprocess.run([str(teacher_python(venv)), str(REFERENCE), "--list", str(lst), "--out", str(out)],
                              env=env, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{REFERENCE.name} failed (exit {proc.returncode})")
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos-root", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    ap.add_argument("--split", type=Path, default=REPO / "training" / "splits" / "faces_split_v1.json")
    ap.add_argument("--teacher-cache", type=Path, default=REPO.parent / "cache" / "teacher",
                    help="the MediaPipe mesh teacher's cache of the photos (training/teacher/cache.py layout)")
    ap.add_argument("--photos", type=int, default=100, help="TRAIN photos")
    ap.add_argument("--rolls", default="30,45", help="turned copies (degrees) besides the upright photo")
    ap.add_argument("--venv", default=None, help="teacher venv (default $TEACHER_VENV)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    split = load_split(args.split)
    train = sorted(k for k, (s, _) in split.files.items() if s == "train")
    rng = np.random.default_rng(7)
    picked = []
    for i in rng.permutation(len(train)):
        folder, name = train[i]
        rec_path = args.teacher_cache / folder / f"{Path(name).stem}.json"
        photo = args.photos_root / folder / name
        if photo.is_file() and rec_path.is_file():
            rec = load_teacher_record(rec_path)
            if rec.faces and rec.reject is None:
                picked.append((photo, np.asarray(rec.faces[0].bbox_xyxy, np.float64)))
        if len(picked) >= args.photos:
            break
    rolls = [0.0] + [float(r) for r in args.rolls.split(",") if r.strip()]
    rows = [(p, r) for p, _ in picked for r in rolls]
    ref = run_reference(rows, args.venv)
    det = BlazeFaceDetector(threads=1)
    ious, kp_px, kp_rel, dscore, missed, extra = {r: [] for r in rolls}, [], [], [], {r: 0 for r in rolls}, []
    calib, sides, eye_roll = [], {}, {}
    for photo, tbox in tqdm(picked, desc="blazeface parity", unit="photo"):
        img = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        for r in rolls:
            image = turned(img, r)
            ours = det.detections(image)
            theirs = ref[f"{photo}\t{r:g}"]
            extra.append(max(0, len(ours) - len(theirs)))
            for t in theirs:
                tb = np.asarray(t["box_xyxy"])
                best = max(ours, key=lambda o: box_iou(o[1], tb), default=None)
                if best is None or box_iou(best[1], tb) < 0.3:
                    missed[r] += 1
                    continue
                ious[r].append(box_iou(best[1], tb))
                side = math.sqrt((tb[2] - tb[0]) * (tb[3] - tb[1]))
                d = np.linalg.norm(best[2] - np.asarray(t["keypoints_xy"]), axis=1)
                kp_px.extend(d.tolist())
                kp_rel.extend((d / side).tolist())
                dscore.append(best[0] - t["score"])
            # our box side at this roll, for the growth with roll (the largest face: the photo's subject)
            if ours:
                o = max(ours, key=lambda o: (o[1][2] - o[1][0]) * (o[1][3] - o[1][1]))
                sides.setdefault(str(photo), {})[r] = math.sqrt((o[1][2] - o[1][0]) * (o[1][3] - o[1][1]))
                eye_roll.setdefault(str(photo), {})[r] = roll_from_eyes(o[2][0], o[2][1])
                if r == 0.0:
                    b = o[1]
                    s = sides[str(photo)][0.0]
                    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                    tcx, tcy = (tbox[0] + tbox[2]) / 2, (tbox[1] + tbox[3]) / 2
                    if math.hypot(tcx - cx, tcy - cy) < 0.4 * s:
                        calib.append(((tbox[2] - tbox[0]) / s, (tbox[3] - tbox[1]) / s, (tcx - cx) / s, (tcy - cy) / s))
    tw, th, tdx, tdy = (float(v) for v in np.median(np.array(calib), axis=0))
    cw, ch, cdy = TEACHER_IN_CASCADE
    box_scale = math.sqrt(tw * th / (cw * ch))
    box_dy = tdy / box_scale - cdy
    growth = {f"{r:g}": float(np.median([v[r] / v[0.0] for v in sides.values() if 0.0 in v and r in v]))
              for r in rolls[1:]}
    roll_err = {f"{r:g}": float(np.median([abs((v[r] - v[0.0] - r + 180) % 360 - 180) for v in eye_roll.values()
                                           if 0.0 in v and r in v])) for r in rolls[1:]}
    report: dict[str, Any] = {
        "kind": "blazeface_parity", **environment(1), "split": args.split.name, "train_photos": len(picked),
        "rolls": rolls, "reference": "mediapipe face_detection model_selection=0 (short range), min score 0.5",
        "ours": f"realtime/weights/blazeface_short.onnx on {det.backend}, threshold {det.threshold}",
        "parity": {f"{r:g}": {"faces": len(ious[r]) + missed[r], "matched": len(ious[r]), "missed": missed[r],
                              "iou_median": float(np.median(ious[r])) if ious[r] else None,
                              "iou_min": float(np.min(ious[r])) if ious[r] else None,
                              "iou_ge_0.9": float(np.mean(np.array(ious[r]) >= 0.9)) if ious[r] else None}
                   for r in rolls},
        "extra_detections": int(sum(extra)),
        "keypoint_px": {"median": float(np.median(kp_px)), "p95": float(np.percentile(kp_px, 95))},
        "keypoint_rel_side": {"median": float(np.median(kp_rel)), "p95": float(np.percentile(kp_rel, 95))},
        "score_diff": {"median": float(np.median(dscore)), "max_abs": float(np.max(np.abs(dscore)))},
        "teacher_box": {"w": tw, "h": th, "dx": tdx, "dy": tdy, "photos": len(calib),
                        "note": "teacher mesh box in BlazeFace box sides (sqrt(w h)), median over upright TRAIN photos"},
        "cascade_convention": {"BOX_SCALE": box_scale, "BOX_DY": box_dy},
        "side_growth_with_roll": growth,
        "eye_roll_error_deg_median": roll_err,
    }
    lines = [f"# BlazeFace parity and calibration ({report['date']})", "", run_context_line(report), "",
             f"{len(picked)} TRAIN photos of {report['split']} (seeded choice), upright and turned by "
             f"{', '.join(f'{r:g}' for r in rolls[1:])} degrees (black corners). Reference: {report['reference']}; "
             f"ours: {report['ours']}.", "",
             "| roll | reference faces | matched | missed | IoU median | IoU min | IoU >= 0.9 |", "|---|---|---|---|---|---|---|"]
    for r, v in report["parity"].items():
        lines.append(f"| {r} | {v['faces']} | {v['matched']} | {v['missed']} | "
                     + " | ".join("" if v[k] is None else f"{v[k]:.3f}" for k in ("iou_median", "iou_min", "iou_ge_0.9"))
                     + " |")
    k, kr, sd = report["keypoint_px"], report["keypoint_rel_side"], report["score_diff"]
    lines += ["", f"extra detections (ours, not the reference's): {report['extra_detections']}", "",
              f"keypoints (6 per face): median {k['median']:.2f} px, 95th percentile {k['p95']:.2f} px "
              f"({100 * kr['median']:.2f} % / {100 * kr['p95']:.2f} % of the face box side); score difference "
              f"median {sd['median']:+.4f}, largest {sd['max_abs']:.4f}", "",
              f"Teacher mesh box in BlazeFace sides (upright TRAIN photos, {len(calib)}): w {tw:.3f}, h {th:.3f}, "
              f"centre dx {tdx:+.3f}, dy {tdy:+.3f}. Cascade convention: BOX_SCALE {box_scale:.3f}, "
              f"BOX_DY {box_dy:+.3f}.", "",
              "BlazeFace box side at a roll / upright (median): "
              + ", ".join(f"{r} deg x{v:.3f}" for r, v in growth.items()), "",
              "Roll from the eye keypoints, |(roll at the turn - roll upright) - turn| median: "
              + ", ".join(f"{r} deg {v:.1f} deg" for r, v in roll_err.items()), ""]
    md = "\n".join(lines) + "\n"
    print(md)
    for p in write_report(report, args.out_dir / f"blazeface_parity_{report['date']}_{hardware_slug(report)}.json", md):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
