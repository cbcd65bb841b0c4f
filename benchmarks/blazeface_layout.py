"""Fit BlazeFace's keypoint layout check on TRAIN photos and measure the full-frame checks on TRAIN-side no-face images.

The ``blazeface`` detector keeps a full-frame candidate only when its 6 keypoints lie where a
face's would (:class:`realtime.live.blazeface.KeypointLayout`, a Gaussian of
:func:`realtime.live.blazeface.keypoint_layout`), it scores ``verify_threshold`` again in a window
of 3 of its sizes, and again in that window turned upright by its eyes
(:meth:`realtime.live.detectors.BlazeFaceDetector.verified`). This script

1. collects every full-frame candidate (:meth:`~realtime.live.detectors.BlazeFaceDetector.full_frame`,
   no check) at the face of ``--photos`` TRAIN photos of the identity split (seeded choice;
   ground truth: the MediaPipe teacher's mesh box, ``--teacher-cache``), each scaled to 640 px
   and turned by 0, +-15, +-30, +-45, +-60 (and 75, 90: reported, not fitted) degrees about the
   face, pasted into a 640x480 clutter frame with the face 15 / 30 / 50 / 80 % of its height
   (a small face's keypoints are coarser), darkened, blurred and tightly cropped (the variants of
   ``benchmarks/detection.py``, other seeds and backdrops);
2. fits the layout model on the variants up to 60 degrees, its limit the ``--quantile`` of their
   own distances, and with ``--write`` stores it as ``realtime/weights/blazeface_short_layout.json``;
3. runs the same candidates on TRAIN-side no-face images -- procedural clutter
   (``training.face_detector.clutter``), photo regions away from the faces of other TRAIN photos,
   mosaics of those regions turned and scaled with drawn ellipses, the accessory sprites over
   clutter -- searched once and in every view the tracker cycles through while nobody is
   followed (``ACQUIRE_VIEWS``); never the detection benchmark's no-face images;
4. reports per variant the faces each set of checks keeps and the false detections it lets through.

    python benchmarks/blazeface_layout.py [--photos 150] [--write]

Writes benchmarks/results/blazeface_layout_<date>_<cpu>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from realtime.bench.report import environment, hardware_slug, run_context_line, write_report
from realtime.live.blazeface import KeypointLayout, box_iou, keypoint_layout
from realtime.live.detectors import ACQUIRE_VIEWS, BlazeFaceDetector, acquire_view
from training.splits import load_split

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
FIT_ROLLS = (0, 15, -15, 30, -30, 45, -45, 60, -60)
EXTRA_ROLLS = (75, 90)
SCALES = (0.15, 0.3, 0.5, 0.8)
#: Seeds of the photo choice and the negatives (the detection benchmark uses 0 and 1).
PHOTO_SEED, NEGATIVE_SEED = 777, 424242
#: The checks compared: name -> (layout, window, upright).
CHECKS = {"none": (False, False, False), "window (before)": (False, True, False),
          "layout + window": (True, True, False), "layout + window + upright (default)": (True, True, True)}


def train_faces(photos_root: Path, teacher_cache: Path, split_file: Path, n: int, seed: int, skip=()) -> list:
    """[(key, BGR photo, teacher boxes)] of ``n`` seeded TRAIN photos with a cached teacher face."""
    split = load_split(split_file)
    train = [k for k in sorted(k for k, (s, _) in split.files.items() if s == "train") if k not in set(skip)]
    rng = np.random.default_rng(seed)
    out = []
    for folder, name in (train[i] for i in sorted(rng.choice(len(train), min(n, len(train)), replace=False))):
        rec = teacher_cache / folder / f"{Path(name).stem}.json"
        if not rec.is_file():
            continue
        faces = json.loads(rec.read_text()).get("faces") or []
        img = cv2.imread(str(photos_root / folder / name), cv2.IMREAD_COLOR)
        if not faces or img is None:
            continue
        out.append(((folder, name), img, [np.asarray(f["bbox_xyxy"], np.float64) for f in faces]))
    return out


def face_variants(img: np.ndarray, box: np.ndarray, rng: np.random.Generator):
    """Yield (variant, image, teacher centre, teacher height) in that image's pixels."""
    from training.face_detector import clutter

    k = 640 / max(img.shape[:2])
    img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_AREA)
    box = box * k
    c, fh = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), box[3] - box[1]
    for roll in FIT_ROLLS + EXTRA_ROLLS:
        m = cv2.getRotationMatrix2D(c, -roll, 1.0)
        yield f"roll {roll}", cv2.warpAffine(img, m, (img.shape[1], img.shape[0]),
                                             borderMode=cv2.BORDER_REFLECT101), np.array(c), fh
    dark = 255.0 * (img / 255.0) ** 1.5 * 0.3 + rng.normal(0, 2.0, img.shape)
    yield "dark", np.clip(dark, 0, 255).astype(np.uint8), np.array(c), fh
    yield "blur", cv2.GaussianBlur(img, (0, 0), max(0.5, 0.03 * fh)), np.array(c), fh
    for share in SCALES:  # pasted into a 640x480 clutter frame, the face this share of its height
        kk = share * 480 / fh
        tx, ty = rng.uniform(0.3, 0.7) * 640, rng.uniform(0.35, 0.65) * 480
        frame = cv2.GaussianBlur(clutter(rng, 640, 480), (0, 0), 1.5)
        cv2.warpAffine(img, np.array([[kk, 0, tx - kk * c[0]], [0, kk, ty - kk * c[1]]]), (640, 480), dst=frame,
                       flags=cv2.INTER_AREA if kk < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        yield f"scale {round(100 * share)} %", frame, np.array([tx, ty]), share * 480
    x0, y0, x1, y1 = box + 0.05 * np.array([-(box[2] - box[0]), -fh, box[2] - box[0], fh])
    kk = 480 / (y1 - y0)
    m = np.array([[kk, 0, -kk * x0], [0, kk, -kk * y0]])
    yield "tight", cv2.warpAffine(img, m, (max(16, round((x1 - x0) * kk)), 480)), \
        np.array([kk * (c[0] - x0), kk * (c[1] - y0)]), fh * kk


def candidate_checks(det: BlazeFaceDetector, image: np.ndarray, cand) -> dict[str, Any]:
    """One full-frame candidate: its layout and the scores of its two re-checks."""
    score, box, kps = cand
    side = math.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1e-6))
    cx, cy, half = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3]), 1.5 * side
    window = max((d[0] for d in det.detections(image, (cx - half, cy - half, 2 * half, 2 * half))
                  if box_iou(box, d[1][None])[0] > 0.3), default=0.0)
    return {"score": float(score), "layout": keypoint_layout(box, kps).tolist(), "window": float(window),
            "upright": float(det.upright_score(image, box, kps))}


def negative_images(photos: list, rng: np.random.Generator, n_clutter: int, n_mosaic: int) -> list:
    """[(kind, 640x480 BGR)]: clutter, photo regions away from faces, their mosaics, sprites over clutter."""
    from training.face_detector import Face, _region_away_from_faces, clutter

    out = [("clutter", clutter(rng, 640, 480)) for _ in range(n_clutter)]
    regions = []
    for _, img, boxes in photos:
        faces = [Face((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, max(b[2] - b[0], b[3] - b[1]), 0.0) for b in boxes]
        r = _region_away_from_faces(rng, img, faces, 640, 480)
        if r is not None:
            regions.append(r)
    out += [("photo region", r) for r in regions]
    for _ in range(n_mosaic if regions else 0):
        g = int(rng.integers(1, 4))
        frame = np.zeros((480, 640, 3), np.uint8)
        cw, ch = 640 // g, 480 // g
        for iy in range(g):
            for ix in range(g):
                p = regions[int(rng.integers(len(regions)))]
                m = cv2.getRotationMatrix2D((p.shape[1] / 2, p.shape[0] / 2), float(rng.uniform(-60, 60)),
                                            float(rng.uniform(0.5, 1.8)) * max(cw / p.shape[1], ch / p.shape[0]))
                m[:, 2] += (cw / 2 - p.shape[1] / 2, ch / 2 - p.shape[0] / 2)
                frame[iy * ch:(iy + 1) * ch, ix * cw:(ix + 1) * cw] = cv2.warpAffine(
                    p, m, (cw, ch), borderMode=cv2.BORDER_REFLECT101)
        for _ in range(int(rng.integers(3, 10))):
            col = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.ellipse(frame, tuple(int(v) for v in rng.integers(0, (640, 480))),
                        tuple(int(v) for v in rng.integers(5, 80, 2)), float(rng.uniform(0, 180)), 0, 360, col,
                        -1 if rng.random() < 0.5 else 2)
        out.append(("region mosaic", frame))
    sprites = REPO.parent / "shared" / "data" / "accessories"
    for f in sorted(sprites.glob("*.png")) if sprites.is_dir() else []:
        a = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if a is None or a.ndim != 3 or a.shape[2] != 4:
            continue
        bg = clutter(rng, 640, 480)
        k = 300 / max(a.shape[:2])
        a = cv2.resize(a, (max(1, round(a.shape[1] * k)), max(1, round(a.shape[0] * k))))
        al = a[..., 3:] / 255.0
        roi = bg[90:90 + a.shape[0], 170:170 + a.shape[1]]
        roi[:] = (al * a[..., :3] + (1 - al) * roi).astype(np.uint8)
        out.append(("sprite", bg))
    return out


def views_of(det: BlazeFaceDetector, frame: np.ndarray):
    """(view name, image) of the upright search and every ``ACQUIRE_VIEWS`` view (as detect_acquire_view)."""
    yield "upright", frame
    for roll, pad in dict.fromkeys(ACQUIRE_VIEWS):
        m, wh = acquire_view(frame.shape[:2], det.detect_width, roll, pad)
        yield f"roll {roll} pad {pad}", cv2.warpAffine(frame, np.ascontiguousarray(m[:2]), wh, flags=cv2.INTER_LINEAR,
                                                       borderMode=cv2.BORDER_CONSTANT)


def passes(c: dict[str, Any], check: tuple[bool, bool, bool], model: KeypointLayout, thr: float) -> bool:
    layout, window, upright = check
    return ((not layout or model.distance_of(np.array(c["layout"])) <= model.limit)
            and (not window or c["window"] >= thr) and (not upright or c["upright"] >= thr))


def to_markdown(r: dict[str, Any]) -> str:
    lines = ["# BlazeFace keypoint layout check and full-frame re-checks (TRAIN side)", "", run_context_line(r), "",
             f"Faces: {r['photos']} TRAIN photos (seed {PHOTO_SEED}) of {r['split']}, teacher boxes; a variant counts "
             "a face when a kept candidate lies within 0.3 face heights of the teacher box centre at 0.5-1.6 of its "
             f"height. Layout model fitted on {r['fit_candidates']} candidates at rolls up to 60 degrees, face "
             f"scales 15-80 %, dark, blur, tight; limit = the {r['quantile']} quantile of their Mahalanobis distances = **{r['limit']:.2f}**. "
             f"No-face images (seed {NEGATIVE_SEED}): {r['negatives']}.", "",
             "| variant | " + " | ".join(CHECKS) + " |", "|---|" + "---|" * len(CHECKS)]
    for v, row in r["recall"].items():
        lines.append(f"| {v} | " + " | ".join(f"{100 * row[c]:.1f} % ({row['n']})" for c in CHECKS) + " |")
    lines += ["", "| false detections | " + " | ".join(CHECKS) + " |", "|---|" + "---|" * len(CHECKS)]
    for mode in ("single", "views"):
        fp = r["false"][mode]
        lines.append(f"| {mode}: per 100 images (images with any) | "
                     + " | ".join(f"{100 * fp[c]['per_image']:.1f} ({fp[c]['images']})" for c in CHECKS) + " |")
    lines += ["", "By kind (views mode, default checks): " + ", ".join(
        f"{k} {v['images']} / {v['n']}" for k, v in r["false"]["by_kind"].items()), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos-root", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    ap.add_argument("--split", type=Path, default=REPO / "training" / "splits" / "faces_split_v1.json")
    ap.add_argument("--teacher-cache", type=Path, default=REPO.parent / "cache" / "teacher",
                    help="the MediaPipe teacher's records of the photos (training/teacher/cache.py layout)")
    ap.add_argument("--photos", type=int, default=150, help="TRAIN photos for the fit")
    ap.add_argument("--negative-photos", type=int, default=400, help="other TRAIN photos to take no-face regions from")
    ap.add_argument("--clutter", type=int, default=150, help="procedural clutter images")
    ap.add_argument("--mosaics", type=int, default=100, help="mosaics of photo regions")
    ap.add_argument("--quantile", type=float, default=0.999, help="the limit: this quantile of the TRAIN distances")
    ap.add_argument("--write", action="store_true", help="store the model as the shipped layout file")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    det = BlazeFaceDetector(layout=None, threads=1)
    thr = det.verify_threshold
    photos = train_faces(args.photos_root, args.teacher_cache, args.split, args.photos, PHOTO_SEED)
    if not photos:
        raise SystemExit(f"no TRAIN photo with a teacher record under {args.teacher_cache} and {args.photos_root}")
    rng = np.random.default_rng(PHOTO_SEED)
    faces: dict[str, list] = {}  # variant -> per photo: candidates at the face
    for _, img, boxes in tqdm(photos, desc="TRAIN faces", unit="photo"):
        for variant, image, tc, th in face_variants(img, boxes[0], rng):
            at_face = []
            for cand in det.full_frame(image):
                b = cand[1]
                ctr = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
                if math.hypot(*(ctr - tc)) < 0.3 * th and 0.5 < math.sqrt((b[2] - b[0]) * (b[3] - b[1])) / th < 1.6:
                    at_face.append(candidate_checks(det, image, cand))
            faces.setdefault(variant, []).append(at_face)
    fit_variants = [v for v in faces if not any(v == f"roll {a}" for a in EXTRA_ROLLS)]
    fit = np.array([c["layout"] for v in fit_variants for cs in faces[v] for c in cs])
    model = KeypointLayout.fit(fit, args.quantile, info={
        "fitted_on": f"{len(fit)} full-frame candidates at the face of {len(photos)} TRAIN photos of {args.split.name} "
                     f"(seed {PHOTO_SEED}; rolls {', '.join(map(str, FIT_ROLLS))}, face 15-80 % of a 640x480 "
                     "clutter frame, dark, blur, tight)",
        "limit": f"the {args.quantile} quantile of their own distances", "script": "benchmarks/blazeface_layout.py"})
    skip = [k for k, _, _ in photos]
    negs = negative_images(train_faces(args.photos_root, args.teacher_cache, args.split, args.negative_photos,
                                       NEGATIVE_SEED, skip=skip), np.random.default_rng(NEGATIVE_SEED),
                           args.clutter, args.mosaics)
    neg: list[tuple[str, str, list]] = []  # (kind, view, candidates)
    for kind, img in tqdm(negs, desc="TRAIN-side no-face images", unit="image"):
        for view, image in views_of(det, img):
            neg.append((kind, view, [candidate_checks(det, image, c) for c in det.full_frame(image)]))
    recall = {v: {"n": len(per), **{c: float(np.mean([any(passes(x, chk, model, thr) for x in cs) for cs in per]))
                                    for c, chk in CHECKS.items()}} for v, per in faces.items()}
    false: dict[str, Any] = {}
    n_img = len(negs)
    for mode in ("single", "views"):
        rows = [(i // (1 + len(dict.fromkeys(ACQUIRE_VIEWS))), k, v, cs) for i, (k, v, cs) in enumerate(neg)]
        rows = [r for r in rows if mode == "views" or r[2] == "upright"]
        false[mode] = {}
        for c, chk in CHECKS.items():
            hits = [(i, sum(passes(x, chk, model, thr) for x in cs)) for i, _, _, cs in rows]
            false[mode][c] = {"per_image": sum(h for _, h in hits) / n_img, "images": len({i for i, h in hits if h})}
    default = CHECKS["layout + window + upright (default)"]
    kinds = [k for k, _ in negs]
    false["by_kind"] = {k: {"n": kinds.count(k), "images": len({i // (1 + len(dict.fromkeys(ACQUIRE_VIEWS)))
                                                                for i, (kk, _, cs) in enumerate(neg)
                                                                if kk == k and any(passes(x, default, model, thr)
                                                                                   for x in cs)})}
                        for k in dict.fromkeys(kinds)}
    report: dict[str, Any] = {"kind": "blazeface_layout", **environment(1), "split": args.split.name,
                              "photos": len(photos), "fit_candidates": len(fit), "quantile": args.quantile,
                              "limit": model.limit, "verify_threshold": thr,
                              "negatives": f"{n_img} ({', '.join(f'{k} {kinds.count(k)}' for k in dict.fromkeys(kinds))})",
                              "recall": recall, "false": false, "model": model.to_dict(),
                              "load_avg_end": list(os.getloadavg())}
    md = to_markdown(report)
    print(md)
    for p in write_report(report, args.out_dir / f"blazeface_layout_{report['date']}_{hardware_slug(report)}.json", md):
        print(f"wrote {p}")
    if args.write:
        from realtime.io import atomic_write_bytes

        atomic_write_bytes(BlazeFaceDetector.LAYOUT, (json.dumps(model.to_dict(), indent=1) + "\n").encode())
        print(f"wrote {BlazeFaceDetector.LAYOUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
