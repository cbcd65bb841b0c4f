"""Which corners count toward presence? The decoder's completion level against the verify level, per category.

``HeatmapCodec.decode_quad`` replaces corners whose heatmap peak is under the model's
``codec.complete_below`` by the accessory's shape through the others, and its confidence is the
weakest corner the network placed itself. When ``complete_below`` is under the tracker's verify
level (``roi.verify_confidence``: glasses and hat 0.3 vs 0.6), confidence is not monotonic in the
weakest peak: a corner at 0.35 fails the check, one at 0.25 is completed and no longer counts.
This measures, at the verify level of each category, the pass rate of three rules:

* ``shipped``: completion below the model's ``complete_below``, confidence over the placed corners
  (what the product does);
* ``at verify level``: completion below the verify level (the tie's rule since 2026-12-02: its
  ``complete_below`` is 0.4 = its verify level), confidence over the placed corners: monotonic;
* ``all corners``: confidence is the weakest of the four peaks, completion or not: monotonic.

Positives: the live crop on the default detector's first face of every STEP-th identity-safe TEST
photo (``../shared/data/faces``), with each of the first 3 bundled accessories of the category.
Negatives: 6 random face-sized crops of each no-face picture of ``benchmarks/detection.py``, with
the first accessory (as ``benchmarks/presence.py``).

    PYTHONPATH=. python benchmarks/completion_rule.py [--step 3] [--faces DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from realtime.backends.resolver import ModelResolver
from realtime.bench.report import environment, hardware_slug, run_context_line, write_report
from realtime.framing import FaceBox, roi_config, roi_from_face
from realtime.geometry import complete_quad
from realtime.live import native
from realtime.live.app import load_catalogue
from realtime.live.detectors import DEFAULT_DETECTOR, make_detector
from realtime.live.pipeline import TryOnPipeline
from realtime.preprocess import foreground_input
from training.splits import load_split

import detection as D  # benchmarks/ is on sys.path when this script runs

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RULES = ("shipped", "at verify level", "all corners")


def confidences(dec: Any, init_vertex_xy: np.ndarray, model_level: float, verify: float) -> dict[str, float]:
    """The confidence each rule gives one decoded quad."""
    out = {}
    for rule, level in (("shipped", model_level), ("at verify level", verify)):
        _, completed = complete_quad(dec.pts_xy, dec.peak, init_vertex_xy, level)
        out[rule] = float(dec.peak[~completed].min())
    out["all corners"] = float(dec.peak.min())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=3, help="every STEP-th TEST photo")
    ap.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    split = load_split()
    photos = sorted(k for k, (s, _) in split.files.items() if s == "test")[::args.step]
    det = make_detector(DEFAULT_DETECTOR)
    faces = []
    for folder, name in tqdm(photos, desc="faces", unit="photo"):
        img = cv2.imread(str(args.faces / folder / name), cv2.IMREAD_COLOR)
        found = det.detect(img) if img is not None else []
        if found:
            faces.append((img, found[0]))
    if not faces:
        raise SystemExit(f"no face found on the TEST photos under {args.faces}")
    negatives = D.no_face_crops()
    resolver, catalogue = ModelResolver(threads=1), load_catalogue((), None)
    report: dict[str, Any] = {"kind": "completion_rule", **environment(1), "detector": det.name,
                              "test_photos": len(photos), "faces": len(faces), "negatives": len(negatives),
                              "categories": {}}
    for category in ("glasses", "hat", "tie"):
        pipe = TryOnPipeline(resolver, {category: catalogue[category]}, category=category)
        backend, size, cfg = resolver(category), pipe.input_size, roi_config(category)
        model_level, verify = pipe.codec.config.complete_below, cfg.verify_confidence

        def run(img: np.ndarray, face: FaceBox, acc: Any) -> tuple[dict[str, float], bool]:
            roi = roi_from_face(face, cfg, size)
            dec = pipe.codec.decode(backend.infer(native.preprocess_crop(img, roi.crop_from_frame, size))[0])
            return confidences(dec, acc.init_vertex_xy, model_level, verify), bool(dec.peak.min() < model_level)

        pos, completed = [], 0
        for acc in catalogue[category][:3]:
            backend.set_foreground(foreground_input(acc.rgba, size)[0])
            for img, face in tqdm(faces, desc=f"{category} {acc.name}", unit="face", leave=False):
                c, comp = run(img, face, acc)
                pos.append(c)
                completed += comp
        acc = catalogue[category][0]
        backend.set_foreground(foreground_input(acc.rgba, size)[0])
        neg = [run(img, face, acc)[0] for img, face in negatives]
        report["categories"][category] = {
            "complete_below": model_level, "verify_confidence": verify, "positives": len(pos),
            "negatives": len(neg), "positives_with_a_completed_corner": completed,
            "pass_positives": {r: float(np.mean([c[r] >= verify for c in pos])) for r in RULES},
            "pass_negatives": {r: float(np.mean([c[r] >= verify for c in neg])) for r in RULES}}
    lines = [f"# Completion level vs verify level: presence pass rates per rule ({report['date']})", "",
             run_context_line(report) + ".", "",
             f"Positives: live crops on `{det.name}`'s first face of {len(faces)} of {len(photos)} identity-safe TEST "
             f"photos (1 in {args.step}) x the first 3 bundled accessories; negatives: {len(negatives)} random "
             "face-sized crops of the no-face pictures x the first accessory. Pass: confidence >= the category's "
             "verify level. Rules: benchmarks/completion_rule.py.", "",
             "| category | complete_below / verify | positives (with a corner under complete_below) | faces pass: shipped / "
             "at verify level / all corners | no-face crops pass: shipped / at verify level / all corners |",
             "|---|---|---|---|---|"]
    for category, r in report["categories"].items():
        p, n = r["pass_positives"], r["pass_negatives"]
        lines.append(f"| {category} | {r['complete_below']:g} / {r['verify_confidence']:g} | {r['positives']} "
                     f"({r['positives_with_a_completed_corner']}) | "
                     + " / ".join(f"{100 * p[k]:.1f} %" for k in RULES) + " | "
                     + " / ".join(f"{100 * n[k]:.1f} %" for k in RULES) + " |")
    md = "\n".join(lines) + "\n"
    print(md)
    for path in write_report(report, args.out_dir / f"completion_rule_{report['date']}_{hardware_slug(report)}.json", md):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
