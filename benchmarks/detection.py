"""Detection benchmark: recall, false detections and latency of every registered face detector.

Ground truth: the MediaPipe teacher's face box (``bbox_xyxy`` of the 478-landmark mesh,
``training/teacher``) of each identity-safe TEST photo of ``training/splits/faces_split_v1.json``.
The teacher runs here (its own venv, ``bash training/teacher/setup_env.sh``) on those
photos and on ``--calib`` TRAIN photos, cached under ``--cache``.

Box convention. Every detector returns a square in the cascade's convention
(:mod:`realtime.live.detectors`); the teacher's box is a rectangle from forehead to chin.
So each detector's square is mapped to a teacher-style rectangle by one fixed similarity
(centre offset and width / height in face sizes), the median over the calibration photos
(TRAIN split: never the photos it is scored on). A detection counts when its rectangle
has IoU >= 0.5 with the teacher box.

Variants (each photo first scaled so its longer side is 640 px, like a webcam frame):

* ``upright``: the photo as it is;
* ``roll 15/30/45/60``: turned clockwise about the face centre (reflected border); the
  detection's centre is mapped back into the upright photo before the IoU;
* ``scale 8/15/30/50/80 %``: the photo pasted into a 640x480 frame over a no-face backdrop
  with the face box this tall a share of the frame height;
* ``tight``: cropped to the teacher box grown by 10 % (the face touches the border), 480 px tall;
* ``dark``: x0.3 with gamma 1.5 plus sensor noise; ``blur``: Gaussian, sigma 3 % of the face.

Two search modes per detector: ``single`` (one full-frame search) and ``views`` (the
upright search plus every extra view the tracker cycles through while nobody is
followed, :data:`realtime.live.detectors.ACQUIRE_VIEWS`: what it finds within one cycle).

False detections: ``--negatives`` images with no face at 640x480 (scikit-image's face-free
data images, whole and as seeded mosaics of rotated crops with drawn clutter); every box
is a false detection (the cat counts: it is not a person).

Latency: median full-frame and window search at 640x480 and 1280x720, and the tracker's own
cost per frame (detection amortised: a 720p clip of the astronaut, detection-only tracking).

    python benchmarks/detection.py [--limit N] [--roll-limit 100] [--detectors cascade,dlib-hog]

Writes benchmarks/results/detection_<date>_<cpu>.{md,json}. ``--merge EARLIER.json`` adds
the detectors of an earlier run made with the same photos and settings (checked) to the
report, each with the load average of its own run (``run``), so that slow detectors need not
be measured again beside a new one.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from realtime.bench.report import environment, hardware_slug, run_context_line, write_report
from realtime.framing import FaceBox, roi_config
from realtime.geometry import warp_points
from realtime.live.detectors import ACQUIRE_VIEWS, detect_acquire_view, detector_names, make_detector
from training.splits import load_split
from training.teacher.cache import load_teacher_record, run_teacher

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
ROLLS = (15, 30, 45, 60)
SCALES = (0.08, 0.15, 0.30, 0.50, 0.80)
IOU_MIN = 0.5
NO_FACE_IMAGES = ("binary_blobs", "brick", "cat", "cell", "checkerboard", "clock", "coffee", "coins", "colorwheel",
                  "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page",
                  "retina", "rocket", "shepp_logan_phantom", "text")
TARGETS = {"recall_all": 0.98, "recall_roll_le_45": 0.95, "false_per_100": 1.0, "tracker_ms_720p": 2.0}


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

def teacher_boxes(photos_root: Path, cache: Path, split_file: Path, calib: int) -> tuple[list, list]:
    """[(name, BGR photo, teacher box xyxy)] for the TEST photos and ``calib`` TRAIN photos."""
    split = load_split(split_file)
    test = sorted(k for k, (s, _) in split.files.items() if s == "test")
    train = sorted(k for k, (s, _) in split.files.items() if s == "train")
    rng = np.random.default_rng(0)
    train = [train[i] for i in sorted(rng.choice(len(train), size=min(calib, len(train)), replace=False))]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for group, keys in (("test", test), ("calib", train)):
            d = Path(tmp) / group
            d.mkdir()
            for folder, name in keys:
                src = photos_root / folder / name
                if src.is_file():
                    os.symlink(src.resolve(), d / f"{folder}__{name}")
        run_teacher([Path(tmp) / "test", Path(tmp) / "calib"], cache)
    for group, keys in (("test", test), ("calib", train)):
        rows = []
        for folder, name in keys:
            path = cache / group / f"{folder}__{Path(name).stem}.json"
            if not path.is_file():
                continue
            rec = load_teacher_record(path)
            if not rec.faces:
                continue
            img = cv2.imread(str(photos_root / folder / name), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(f"{photos_root / folder / name}: cannot read the photo")
            rows.append((f"{folder}/{name}", img, np.asarray(rec.faces[0].bbox_xyxy, np.float64)))
        out.append(rows)
    return out[0], out[1]


def webcam_scale(img: np.ndarray, box: np.ndarray, longest: int = 640) -> tuple[np.ndarray, np.ndarray]:
    s = longest / max(img.shape[:2])
    out = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return out, box * s


def _affine_box(mat: np.ndarray, box: np.ndarray) -> np.ndarray:
    pts = warp_points(mat, np.array([[box[0], box[1]], [box[2], box[3]]]))
    return np.array([*pts.min(0), *pts.max(0)])


def backdrop(rng: np.random.Generator, size_wh=(640, 480)) -> np.ndarray:
    """A no-face, cluttered background: a face-free scikit-image picture, blurred a little."""
    img = _skimage(str(rng.choice(["coffee", "rocket", "brick", "gravel", "hubble_deep_field", "immunohistochemistry"])))
    img = cv2.resize(img, size_wh, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


def variants(img: np.ndarray, box: np.ndarray, rng: np.random.Generator, rolls: bool):
    """Yield (variant, image, photo_from_image 3x3, teacher box in photo px)."""
    img, box = webcam_scale(img, box)
    eye = np.eye(3)
    yield "upright", img, eye, box
    h, w = img.shape[:2]
    fc = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    fh = box[3] - box[1]
    if rolls:
        for roll in ROLLS:
            m = np.vstack([cv2.getRotationMatrix2D(fc, -roll, 1.0), [0, 0, 1]])  # clockwise on screen
            yield f"roll {roll}", cv2.warpAffine(img, m[:2], (w, h), borderMode=cv2.BORDER_REFLECT101), \
                np.linalg.inv(m), box
    for s in SCALES:
        k = s * 480 / fh
        tx, ty = rng.uniform(0.3, 0.7) * 640, rng.uniform(0.35, 0.65) * 480
        m = np.array([[k, 0, tx - k * fc[0]], [0, k, ty - k * fc[1]], [0, 0, 1]])
        frame = backdrop(rng)
        cv2.warpAffine(img, m[:2], (640, 480), dst=frame, flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_TRANSPARENT)
        yield f"scale {round(s * 100)} %", frame, np.linalg.inv(m), box
    grow = 0.1 * np.array([-(box[2] - box[0]), -fh, box[2] - box[0], fh]) / 2
    x0, y0, x1, y1 = box + grow
    k = 480 / (y1 - y0)
    m = np.array([[k, 0, -k * x0], [0, k, -k * y0], [0, 0, 1]])
    yield "tight", cv2.warpAffine(img, m[:2], (round((x1 - x0) * k), 480), borderMode=cv2.BORDER_CONSTANT), \
        np.linalg.inv(m), box
    dark = (255.0 * (img / 255.0) ** 1.5 * 0.3 + rng.normal(0, 2.0, img.shape))
    yield "dark", np.clip(dark, 0, 255).astype(np.uint8), eye, box
    yield "blur", cv2.GaussianBlur(img, (0, 0), max(0.5, 0.03 * fh)), eye, box


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    # binary_blobs draws new blobs on every call: seeded, so that a run's no-face images repeat
    img = skimage.data.binary_blobs(rng=0) if name == "binary_blobs" else getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    img = img[..., :3].astype(np.float64) if img.dtype == bool else img[..., :3]
    if img.dtype != np.uint8:
        img = (255 * (img.astype(np.float64) - img.min()) / max(1e-9, float(np.ptp(img)))).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1])


def no_face_crops(per_image: int = 6, seed: int = 0) -> list[tuple[np.ndarray, FaceBox]]:
    """``per_image`` random face-sized boxes (side 15-50 % of the height, inside the picture) on
    each scikit-image no-face picture: where a presence check must say "nobody"
    (``benchmarks/presence.py``, ``benchmarks/completion_rule.py``)."""
    rng = np.random.default_rng(seed)
    out = []
    for img in (_skimage(p) for p in NO_FACE_IMAGES):
        h, w = img.shape[:2]
        for _ in range(per_image):
            s = rng.uniform(0.15, 0.5) * h
            out.append((img, FaceBox(rng.uniform(s / 2, w - s / 2), rng.uniform(s / 2, h - s / 2), s, 1.0)))
    return out


def negatives(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` face-free 640x480 images: each scikit-image picture whole, then seeded mosaics."""
    pics = [_skimage(p) for p in NO_FACE_IMAGES]
    out = [cv2.resize(p, (640, 480), interpolation=cv2.INTER_AREA) for p in pics][:n]
    rng = np.random.default_rng(seed)
    while len(out) < n:
        g = int(rng.integers(1, 4))
        frame = np.zeros((480, 640, 3), np.uint8)
        for iy in range(g):
            for ix in range(g):
                p = pics[int(rng.integers(len(pics)))]
                cw, ch = 640 // g, 480 // g
                m = cv2.getRotationMatrix2D((p.shape[1] / 2, p.shape[0] / 2), float(rng.uniform(-60, 60)),
                                            float(rng.uniform(0.5, 1.8)) * max(cw / p.shape[1], ch / p.shape[0]))
                m[:, 2] += (cw / 2 - p.shape[1] / 2, ch / 2 - p.shape[0] / 2)
                frame[iy * ch:(iy + 1) * ch, ix * cw:(ix + 1) * cw] = cv2.warpAffine(
                    p, m, (cw, ch), borderMode=cv2.BORDER_REFLECT101)
        for _ in range(int(rng.integers(5, 25))):  # clutter
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            kind = rng.integers(4)
            p0 = tuple(int(v) for v in rng.integers(0, (640, 480)))
            if kind == 0:
                cv2.line(frame, p0, tuple(int(v) for v in rng.integers(0, (640, 480))), c, int(rng.integers(1, 6)))
            elif kind == 1:
                cv2.ellipse(frame, p0, tuple(int(v) for v in rng.integers(5, 80, 2)), float(rng.uniform(0, 180)),
                            0, 360, c, -1 if rng.random() < 0.5 else 2)
            elif kind == 2:
                cv2.rectangle(frame, p0, tuple(int(v) for v in rng.integers(0, (640, 480))), c, int(rng.integers(-1, 4)) or 1)
            else:
                cv2.putText(frame, "".join(chr(int(v)) for v in rng.integers(65, 90, 6)), p0,
                            cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 2.5)), c, 2)
        out.append(frame)
    return out


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------

def search(detector, img: np.ndarray, mode: str) -> list[FaceBox]:
    faces = list(detector.detect(img))
    if mode == "views":
        for roll, pad in dict.fromkeys(ACQUIRE_VIEWS):
            faces += detect_acquire_view(detector, img, roll, pad)
    return faces


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def to_rect(face: FaceBox, photo_from_image: np.ndarray, calib: dict[str, float]) -> np.ndarray:
    """The detection as a teacher-style rectangle in upright photo pixels."""
    c = warp_points(photo_from_image, np.array([face.cx, face.cy]))
    s = face.side * math.hypot(photo_from_image[0, 0], photo_from_image[1, 0])
    cx, cy = c[0] + calib["dx"] * s, c[1] + calib["dy"] * s
    return np.array([cx - calib["w"] * s / 2, cy - calib["h"] * s / 2, cx + calib["w"] * s / 2, cy + calib["h"] * s / 2])


def calibrate(detector, rows) -> dict[str, float]:
    """Median teacher-box geometry in units of the detector's box (upright calibration photos)."""
    vals = []
    for _, img, box in rows:
        img, box = webcam_scale(img, box)
        tc = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        th = box[3] - box[1]
        faces = [f for f in detector.detect(img) if math.hypot(f.cx - tc[0], f.cy - tc[1]) < 0.4 * th]
        if faces:
            f = min(faces, key=lambda f: math.hypot(f.cx - tc[0], f.cy - tc[1]))
            vals.append(((tc[0] - f.cx) / f.side, (tc[1] - f.cy) / f.side, (box[2] - box[0]) / f.side, th / f.side))
    if len(vals) < 5:
        raise RuntimeError(f"{detector.name}: only {len(vals)} calibration photos detected")
    v = np.median(np.array(vals), axis=0)
    return {"dx": float(v[0]), "dy": float(v[1]), "w": float(v[2]), "h": float(v[3]), "photos": len(vals)}


def recall_run(detector, rows, calib, roll_limit: int, modes=("single", "views")) -> dict[str, Any]:
    hits: dict[str, dict[str, list[bool]]] = {m: {} for m in modes}
    rng = np.random.default_rng(1)
    for i, (name, img, box) in enumerate(tqdm(rows, desc=f"recall {detector.name}", unit="photo")):
        for variant, image, back, gt in variants(img, box, rng, rolls=i < roll_limit):
            for mode in modes:
                if mode == "views" and not (i < roll_limit and (variant.startswith("roll") or variant == "tight")):
                    continue
                found = any(iou(to_rect(f, back, calib), gt) >= IOU_MIN for f in search(detector, image, mode))
                hits[mode].setdefault(variant, []).append(found)
    return {m: {v: {"recall": float(np.mean(h)), "n": len(h)} for v, h in res.items()} for m, res in hits.items()}


def false_run(detector, images, views_limit: int, modes=("single", "views")) -> dict[str, Any]:
    out = {}
    for mode in modes:
        subset = images if mode == "single" else images[:views_limit]
        counts = [len(search(detector, img, mode)) for img in tqdm(subset, desc=f"negatives {detector.name} {mode}")]
        out[mode] = {"false_per_image": float(np.mean(counts)), "images_with_false": int(np.count_nonzero(counts)),
                     "n": len(counts)}
    return out


def latency_run(detector, photo: np.ndarray, box: np.ndarray, reps: int) -> dict[str, Any]:
    from realtime.live.tracking import RoiTracker

    out = {}
    for w, h in ((640, 480), (1280, 720)):
        k = 0.3 * h / (box[3] - box[1])
        fc = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        m = np.array([[k, 0, w / 2 - k * fc[0]], [0, k, h / 2 - k * fc[1]]])
        frame = cv2.warpAffine(photo, m, (w, h))
        faces = detector.detect(frame)
        near = faces[0] if faces else FaceBox(w / 2, h / 2, 0.3 * h)
        full, win = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            detector.detect(frame)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            detector.detect(frame, near=near)
            win.append(time.perf_counter() - t0)
        out[f"{w}x{h}"] = {"full_ms": 1e3 * float(np.median(full)), "window_ms": 1e3 * float(np.median(win))}
    # The 720p frame above (face 30 % of the height), panned sinusoidally for 5 s.
    tracker = RoiTracker(roi_config("glasses"), 224, detector=detector)
    frames = [cv2.warpAffine(frame, np.float64([[1, 0, 60 * math.sin(i / 20)], [0, 1, 20 * math.sin(i / 13)]]),
                             (1280, 720)) for i in range(150)]
    times, found = [], 0
    for i, f in enumerate(frames):
        t0 = time.perf_counter()
        roi = tracker.update(f, i / 30.0)
        times.append(time.perf_counter() - t0)
        found += roi is not None
    out["tracker_720p"] = {"mean_ms_per_frame": 1e3 * float(np.mean(times)), "frames": len(frames),
                           "frames_with_face": found, "detections": tracker.detections}
    return out


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    s = {}
    for mode in ("single", "views"):
        r = res["recall"].get(mode, {})
        if "upright" in r:
            s[f"{mode}_recall_upright"] = r["upright"]["recall"]
        rolls = [r[f"roll {a}"]["recall"] for a in ROLLS if f"roll {a}" in r and a <= 45]
        s[f"{mode}_min_recall_roll_le_45"] = min([r["upright"]["recall"]] + rolls) if "upright" in r else None
    return s


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Face detection benchmark ({report['date']})", "", run_context_line(report), "",
             f"Ground truth: MediaPipe teacher face boxes on {report['test_photos']} identity-safe TEST photos "
             f"({report['split']}; upright, scale, dark and blur variants on all of them; rolls and the views "
             f"mode on the first {report['roll_photos']}); a detection counts at IoU >= {IOU_MIN} after the detector's fixed "
             f"box calibration (median over {report['calib_photos']} TRAIN photos). No-face images: "
             f"{report['negatives']}.", "",
             "Modes: **single** = one full-frame search; **views** = upright + every rotated / padded view "
             "the tracker cycles through while nobody is followed (found within one cycle).", ""]
    for name, res in report["detectors"].items():
        if "error" in res:
            lines += [f"## {name}", "", f"not run: {res['error']}", ""]
            continue
        lines += [f"## {name}", ""]
        if "run" in res:
            run = res["run"]
            lines += [f"measured {run['time']}, load average {', '.join(f'{v:.1f}' for v in run['load_avg'])} at start, "
                      f"{', '.join(f'{v:.1f}' for v in run['load_avg_end'] or [])} at end", ""]
        lines += [f"calibration (teacher box in detector-box units): {res['calibration']}", ""]
        variants_ = list(res["recall"]["single"])
        lines += ["| variant | " + " | ".join(f"recall {m} (n)" for m in res["recall"]) + " |",
                  "|---|" + "---|" * len(res["recall"])]
        for v in variants_:
            cells = []
            for m in res["recall"]:
                c = res["recall"][m].get(v)
                cells.append("" if c is None else f"{100 * c['recall']:.1f} % ({c['n']})")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        fp = res["false"]
        lines += ["", "| false detections | " + " | ".join(fp) + " |", "|---|" + "---|" * len(fp),
                  "| per 100 no-face images | " + " | ".join(f"{100 * fp[m]['false_per_image']:.1f}" for m in fp) + " |",
                  "| images with any | " + " | ".join(f"{fp[m]['images_with_false']} / {fp[m]['n']}" for m in fp)
                  + " |", ""]
        lat = res["latency"]
        lines += ["| latency | full frame ms | window ms |", "|---|---|---|"]
        lines += [f"| {k} | {v['full_ms']:.1f} | {v['window_ms']:.1f} |" for k, v in lat.items() if "full_ms" in v]
        t = lat["tracker_720p"]
        lines += ["", f"tracker's own cost at 1280x720 (detection amortised, detection-only tracking of a panning "
                      f"test photo, face 30 % of the height, {t['frames']} frames, {t['detections']} detections, face in "
                      f"{t['frames_with_face']}): **{t['mean_ms_per_frame']:.2f} ms / frame** "
                      f"(target <= {TARGETS['tracker_ms_720p']} ms)", ""]
        lines += ["summary: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in res["summary"].items() if v is not None),
                  ""]
    lines += [f"Targets: recall >= {100 * TARGETS['recall_all']:.0f} % over the test photos, >= "
              f"{100 * TARGETS['recall_roll_le_45']:.0f} % at every roll up to 45 degrees; <= "
              f"{TARGETS['false_per_100']:.0f} false detection per 100 no-face images.", ""]
    return "\n".join(lines) + "\n"


#: Report keys two runs must share to be merged into one table.
MERGE_KEYS = ("split", "test_photos", "calib_photos", "roll_photos", "negatives", "threads")


def merge_into(report: dict[str, Any], path: Path) -> None:
    """Add the detectors of the earlier report ``path`` (same photos / settings) to ``report``.

    Raises:
        ValueError: the earlier report was made with other settings (the message names the key).
    """
    import json

    other = json.loads(Path(path).read_text())
    for key in MERGE_KEYS:
        if other.get(key) != report.get(key):
            raise ValueError(f"--merge {path}: {key} is {other.get(key)!r} there, {report.get(key)!r} here")
    for name, res in other["detectors"].items():
        if name not in report["detectors"]:
            res.setdefault("run", {"time": other.get("time"), "load_avg": other["load_avg"],
                                   "load_avg_end": other.get("load_avg_end")})
            report["detectors"][name] = res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "faces",
                    help="face photo root (folders of the split file)")
    ap.add_argument("--split", type=Path, default=REPO / "training" / "splits" / "faces_split_v1.json")
    ap.add_argument("--cache", type=Path, default=REPO / "runs" / "teacher_detection_cache", help="teacher cache")
    ap.add_argument("--calib", type=int, default=100, help="TRAIN photos for the box calibration")
    ap.add_argument("--limit", type=int, default=None, help="N test photos only, evenly spread")
    ap.add_argument("--roll-limit", type=int, default=60, help="test photos that get the roll variants")
    ap.add_argument("--negatives", type=int, default=150, help="no-face images")
    ap.add_argument("--negatives-views", type=int, default=150, help="no-face images also searched in every view")
    ap.add_argument("--detectors", default=",".join(detector_names()))
    ap.add_argument("--reps", type=int, default=10, help="latency repetitions")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--merge", type=Path, action="append", default=[], metavar="REPORT.json",
                    help="include the detectors of an earlier report with the same photos and settings")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    test, calib_rows = teacher_boxes(args.photos, args.cache, args.split, args.calib)
    if args.limit:  # an even spread over the sorted list (folders, identities), not the first N
        test = test[::max(1, len(test) // args.limit)][:args.limit]
    negs = negatives(args.negatives)
    report: dict[str, Any] = {"kind": "detection", **environment(1), "split": args.split.name,
                              "test_photos": len(test), "calib_photos": len(calib_rows),
                              "roll_photos": min(args.roll_limit, len(test)),
                              "negatives": f"{len(negs)} (21 scikit-image pictures + seeded mosaics with clutter; the views mode on "
                                           f"the first {min(len(negs), args.negatives_views)})",
                              "targets": TARGETS, "detectors": {}}
    for name in args.detectors.split(","):
        try:
            det = make_detector(name)
        except ImportError as exc:
            report["detectors"][name] = {"error": str(exc)}
            continue
        calib = calibrate(det, calib_rows)
        res = {"calibration": calib, "recall": recall_run(det, test, calib, args.roll_limit),
               "false": false_run(det, negs, args.negatives_views), "latency": latency_run(det, *webcam_scale(test[0][1], test[0][2]),
                                                                     args.reps)}
        res["summary"] = summarize(res)
        report["detectors"][name] = res
        res["run"] = {"time": report["time"], "load_avg": report["load_avg"], "load_avg_end": list(os.getloadavg())}
    report["load_avg_end"] = list(os.getloadavg())
    for path in args.merge:
        merge_into(report, path)
    md = to_markdown(report)
    print(md)
    for p in write_report(report, args.out_dir / f"detection_{report['date']}_{hardware_slug(report)}.json", md):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
