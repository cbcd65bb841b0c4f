"""What LSSIM a known placement error earns: a model and the mean quad per sample, and oracles.

For every test sample of a pseudo-STRAT split: the model's and the mean quad's LSSIM / IoU / Disp
(LSSIM also over the ground-truth box only, ``MetricConfig(box="gt")``); on every STEP-th sample
the label quad shifted right and down by fractions of the accessory's larger side (knot to tip
or across, between edge midpoints), scaled about its
centre, and no accessory drawn at all. Prints the means per accessory kind and per model-IoU bin,
and writes every sample to OUT.json. Numbers: ``benchmarks/results/tie_diagnosis_2026-12-02_*.md``.

    PYTHONPATH=. python benchmarks/lssim_oracle.py CHECKPOINT DATA_ROOT OUT.json [STEP] [LIMIT]
"""
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.backends.base import OpenOptions
from realtime.backends.opener import open_artifact
from realtime.codec import HeatmapCodec
from realtime.io import atomic_write_bytes
from training.evaluate import mean_quad_norm, mean_quad_pixels, predict_vertices, sample_kinds
from training.metrics import MetricConfig, sample_metrics
from training.strat import StratDataset

SHIFTS = (0.1, 0.25, 0.5, 1.0)
SCALES = (0.7, 0.85, 1.15, 1.3, 1.5)
IOU_BINS = ((0.0, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 1.01))
NOTHING = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # below the minimum area: drawn as nothing


def study(checkpoint, root, step=3, limit=0):
    be = open_artifact(checkpoint, OpenOptions(threads=1))
    size = be.info.input_size
    codec = HeatmapCodec(be.info.config.codec)
    test = StratDataset(Path(root) / "test", be.info.category, size)
    kinds = sample_kinds(test.split_dir)
    mq = mean_quad_pixels(mean_quad_norm(StratDataset(Path(root) / "train", be.info.category, size)), size)
    gt_box = MetricConfig(box="gt")
    n = len(test) if limit <= 0 else min(limit, len(test))
    rows = []
    for i in tqdm(range(n), desc="lssim oracle", dynamic_ncols=True):
        s = test[i]
        args = (s["background"], s["foreground"], s["init_vertex"], s["final_vertex"])
        gt = np.asarray(s["final_vertex"], np.float64)
        pred, _ = predict_vertices(be, codec, s)
        row = {"id": str(s["id"]), "kind": kinds.get(str(s["id"])), "pred": np.asarray(pred).tolist()}
        for name, quad in (("model", pred), ("mean_quad", mq)):
            m = sample_metrics(*args, quad)
            row[name] = [m.lssim, m.iou, m.disp, sample_metrics(*args, quad, gt_box).lssim]
        if i % step == 0:
            side = max(np.linalg.norm(gt[2] + gt[3] - gt[0] - gt[1]), np.linalg.norm(gt[1] + gt[2] - gt[0] - gt[3])) / 2
            centre = gt.mean(axis=0)
            row["shift"] = {str(t): np.mean([[(m := sample_metrics(*args, gt + d * t * side)).lssim, m.iou, m.disp]
                                             for d in (np.array([1.0, 0.0]), np.array([0.0, 1.0]))], axis=0).tolist()
                            for t in SHIFTS}
            row["scale"] = {str(k): [(m := sample_metrics(*args, centre + (gt - centre) * k)).lssim, m.iou, m.disp]
                            for k in SCALES}
            row["nothing"] = sample_metrics(*args, NOTHING).lssim
        rows.append(row)
    be.close()
    return rows


def summary(rows):
    out = {}
    for kind in [None] + sorted({r["kind"] for r in rows if r["kind"]}):
        group = [r for r in rows if kind is None or r["kind"] == kind]
        model = np.array([r["model"] for r in group])
        base = np.array([r["mean_quad"] for r in group])
        oracle = [r for r in group if "shift" in r]
        entry = {"n": len(group), "model": model.mean(0).tolist(), "mean_quad": base.mean(0).tolist(),
                 "model_wins_lssim": float(np.mean(model[:, 0] > base[:, 0])),
                 "iou_bins": {f"{lo}-{hi}": {"n": int(sel.sum()), "model_lssim": float(model[sel, 0].mean()),
                                             "mean_quad_lssim": float(base[sel, 0].mean())}
                              for lo, hi in IOU_BINS if (sel := (model[:, 1] >= lo) & (model[:, 1] < hi)).any()}}
        if oracle:
            entry["oracle_n"] = len(oracle)
            entry["shift"] = {t: np.mean([r["shift"][t] for r in oracle], 0).tolist() for t in oracle[0]["shift"]}
            entry["scale"] = {k: np.mean([r["scale"][k] for r in oracle], 0).tolist() for k in oracle[0]["scale"]}
            entry["nothing_lssim"] = float(np.mean([r["nothing"] for r in oracle]))
        out[kind or "all"] = entry
    return out


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    rows = study(argv[0], argv[1], int(argv[3]) if len(argv) > 3 else 3, int(argv[4]) if len(argv) > 4 else 0)
    result = {"checkpoint": argv[0], "data": argv[1], "summary": summary(rows), "samples": rows}
    atomic_write_bytes(Path(argv[2]), json.dumps(result, indent=1).encode())
    for kind, e in result["summary"].items():
        print(f"{kind}: n {e['n']}  model LSSIM/IoU/Disp/LSSIM(gt box) {np.round(e['model'], 4).tolist()}  "
              f"mean quad {np.round(e['mean_quad'], 4).tolist()}")
        for t, v in e.get("shift", {}).items():
            print(f"   label shifted {t}: {np.round(v, 3).tolist()}")
        for k, v in e.get("scale", {}).items():
            print(f"   label scaled {k}: {np.round(v, 3).tolist()}")
        if "nothing_lssim" in e:
            print(f"   nothing drawn: LSSIM {e['nothing_lssim']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
