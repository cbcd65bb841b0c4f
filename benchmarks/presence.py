"""Network confidence at the live crop on real faces vs random crops of no-face pictures, per category.

What the presence check's ``roi.verify_confidence`` (realtime/framing.py ROI_CONFIGS) has to
separate: the shipped model's confidence at the live crop around the cascade's detection on every
STEP-th identity-safe TEST photo (../shared/data/faces), and at 6 random face-sized crops of each
no-face picture of benchmarks/detection.py. Prints and writes per category the percentiles and the
share of each side at or above each level.

    PYTHONPATH=. python benchmarks/presence.py [STEP] [OUT.json]
"""
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from realtime.backends.resolver import ModelResolver
from realtime.framing import roi_config, roi_from_face
from realtime.live import native
from realtime.live.detectors import make_detector
from realtime.preprocess import foreground_input
from training.splits import load_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection as D

split = load_split()
root = Path("../shared/data/faces")
photos = [(f, n) for (f, n), e in split.files.items() if e[0] == "test"]
photos = sorted(photos)[::int(sys.argv[1]) if len(sys.argv) > 1 else 1]
det = make_detector("cascade")
res = ModelResolver(threads=1)
negs = D.no_face_crops()  # the same crops for every category (until 2026-12-02 each drew its own from one generator)
out = {}
from realtime.live.app import load_catalogue
from realtime.live.pipeline import TryOnPipeline

cat = load_catalogue((), None)
for c in ("glasses", "hat", "tie"):
    pipe = TryOnPipeline(res, {c: cat[c]}, category=c)
    be = res(c); size = pipe.input_size; acc = pipe.accessory
    be.set_foreground(foreground_input(acc.rgba, size)[0])
    cfg = roi_config(c)
    def conf(img, face, cfg=cfg, size=size, be=be, pipe=pipe, acc=acc):
        roi = roi_from_face(face, cfg, size)
        x = native.preprocess_crop(img, roi.crop_from_frame, size)
        hm = be.infer(x)
        return float(pipe.codec.decode_quad(hm[0], acc.init_vertex_xy).confidence)
    pos, neg = [], []
    t0 = time.time()
    for f, n in photos:
        img = cv2.imread(str(root / f / n))
        faces = det.detect(img)
        if faces:
            pos.append(conf(img, faces[0]))
    for img, box in negs:
        neg.append(conf(img, box))
    pos, neg = np.array(pos), np.array(neg)
    rows = {t: (float((pos >= t).mean()), float((neg >= t).mean())) for t in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)}
    out[c] = {"pos_n": len(pos), "neg_n": len(neg), "pos_pct": np.percentile(pos, [5, 25, 50]).round(3).tolist(),
              "neg_pct": np.percentile(neg, [50, 95, 99, 100]).round(3).tolist(), "pass_rate_pos_neg": rows,
              "s": round(time.time() - t0, 1)}
    print(c, json.dumps(out[c]), flush=True)
if len(sys.argv) > 2:
    Path(sys.argv[2]).write_text(json.dumps(out, indent=1))
