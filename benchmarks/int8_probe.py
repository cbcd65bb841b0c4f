"""int8 on a CPU without bf16 (issue 14): does NNCF post-training quantization of the per-frame graph
make OpenVINO faster, and are its keypoints within the 0.5 px (p99) that bf16 must meet?

On a CPU without AMX / AVX512_BF16 the default runtime runs fp32 (0.71-0.74x torch fp32 for the
glasses model, above the issue's 0.7). This probe quantizes the exported fp32 per-frame graph with
NNCF (``nncf.quantize``, OpenVINO model, statistics from live crops of TRAIN photos) in several
variants and compares each with OpenVINO fp32 on live crops of identity-safe TEST photos:

* inputs: the live crop (``roi_from_face`` + ``native.preprocess_crop``, as ``tryon live`` cuts it)
  around the default detector's first face on evenly spread photos of
  ``training/splits/faces_split_v1.json`` (``--calib`` TRAIN photos for the statistics,
  ``--photos`` TEST photos for the comparison), each with one of the category's bundled
  accessories (its F_f from the fp32 foreground graph, shared by both);
* variants: NNCF's ``performance`` preset (symmetric), ``mixed`` (asymmetric activations), and
  ``mixed`` with the decoder's full-resolution stages (and the 112 px ones) left in fp32
  (``IgnoredScope`` by name pattern);
* measured: per-frame ``infer`` p50 of each variant against fp32, interleaved in one run (1 thread,
  LATENCY hint), and the decoded keypoints' distance to fp32's (the product's codec, input pixels):
  p50 / p99 / max.

Needs ``pip install nncf`` (not a project dependency: nothing in the app quantizes).

    PYTHONPATH=. python benchmarks/int8_probe.py [--category glasses] [--photos 100] [--calib 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from realtime.bench.report import environment, hardware_slug, run_context_line, write_report
from realtime.backends.graph_export import export_fp32_graphs
from realtime.artifacts import BG_INPUT, FEATURES
from realtime.backends.openvino_backend import OpenVinoBackend, cpu_capabilities, import_openvino, shared_core
from realtime.checkpoint import load_model
from realtime.codec import HeatmapCodec
from realtime.framing import roi_config, roi_from_face
from realtime.live import native
from realtime.live.detectors import DEFAULT_DETECTOR, make_detector
from realtime.preprocess import foreground_input
from realtime.procedural import bundled_accessories
from realtime.sysinfo import summarize_ms
from training.splits import load_split

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WEIGHTS = {"glasses": "glasses_lite.pt", "hat": "hat_lite.pt", "tie": "tie_lite_nosm.pt"}
#: (name, NNCF preset, ignored-scope name pattern or None)
VARIANTS = [("performance", "PERFORMANCE", None), ("mixed", "MIXED", None),
            ("mixed, 224 px decoder in fp32", "MIXED", r".*(stage5|head).*"),
            ("mixed, 112 + 224 px decoder in fp32", "MIXED", r".*(stage5|head|stages\.3).*")]
TOLERANCE_P99_PX = 0.5


def live_inputs(split_name: str, n: int, photos_root: Path, category: str, size: int,
                fgs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Live crops (1, 3, S, S) around the default detector's face on ``n`` evenly spread photos of a split."""
    split = load_split()
    keys = sorted(k for k, (s, _) in split.files.items() if s == split_name)
    keys = [k for k in keys if (photos_root / k[0] / k[1]).is_file()]
    if not keys:
        raise FileNotFoundError(f"no {split_name.upper()} photo of the split file under {photos_root}")
    det, cfg, out = make_detector(DEFAULT_DETECTOR), roi_config(category), []
    for i, (folder, name) in enumerate(keys[::max(1, len(keys) // n)]):
        if len(out) >= n:
            break
        img = cv2.imread(str(photos_root / folder / name), cv2.IMREAD_COLOR)
        faces = det.detect(img) if img is not None else []
        if not faces:
            continue
        roi = roi_from_face(faces[0], cfg, size)
        out.append({BG_INPUT: native.preprocess_crop(img, roi.crop_from_frame, size), FEATURES: fgs[i % len(fgs)]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--category", default="glasses", choices=sorted(WEIGHTS))
    ap.add_argument("--photos", type=int, default=100, help="TEST photos compared")
    ap.add_argument("--calib", type=int, default=64, help="TRAIN photos for the quantization statistics")
    ap.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    try:
        import nncf
    except ImportError as exc:
        raise SystemExit(f"int8_probe needs NNCF: pip install nncf ({exc})")
    ov = import_openvino()
    cv2.setNumThreads(1)
    ckpt = REPO / "realtime" / "weights" / WEIGHTS[args.category]
    net, cfg, _ = load_model(ckpt)
    codec = HeatmapCodec(cfg.codec)
    core = shared_core()
    props = {"INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
             "INFERENCE_PRECISION_HINT": "f32"}
    with tempfile.TemporaryDirectory() as tmp:
        graphs = export_fp32_graphs(net, Path(tmp))
        fp32_be = OpenVinoBackend(graphs.frame_path, threads=1, precision="fp32")
        fgs = []
        for acc in bundled_accessories(args.category):
            fp32_be.set_foreground(foreground_input(acc.rgba, cfg.input_size)[0])
            fgs.append(fp32_be._f_f.copy())
        calib = live_inputs("train", args.calib, args.faces, args.category, cfg.input_size, fgs)
        test = live_inputs("test", args.photos, args.faces, args.category, cfg.input_size, fgs)
        model = core.read_model(str(graphs.frame_path))
        compiled = {"fp32": core.compile_model(model, "CPU", props)}
        quant_s = {}
        for name, preset, pattern in VARIANTS:
            t0 = time.perf_counter()
            q = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib),
                              preset=getattr(nncf.QuantizationPreset, preset),
                              ignored_scope=nncf.IgnoredScope(patterns=[pattern]) if pattern else None)
            quant_s[name] = time.perf_counter() - t0
            compiled[name] = core.compile_model(q, "CPU", props)
    requests = {k: c.create_infer_request() for k, c in compiled.items()}
    secs: dict[str, list[float]] = {k: [] for k in requests}
    pts: dict[str, list[np.ndarray]] = {k: [] for k in requests}
    names = list(requests)
    for i, feed in enumerate(tqdm(test, desc="compare", unit="crop")):
        for k in names[i % len(names):] + names[:i % len(names)]:  # rotating order
            t0 = time.perf_counter()
            requests[k].infer(feed)
            secs[k].append(time.perf_counter() - t0)
            hm = np.array(requests[k].get_output_tensor(0).data, dtype=np.float32, copy=True)
            pts[k].append(codec.decode(hm).pts_xy[0])
    ref = np.stack(pts["fp32"])
    base = summarize_ms(secs["fp32"])
    variants = {}
    for name, *_ in VARIANTS:
        err = np.linalg.norm(np.stack(pts[name]) - ref, axis=-1).ravel()
        t = summarize_ms(secs[name])
        variants[name] = {"ms": t, "ratio_to_fp32_p50": t["p50"] / base["p50"], "quantize_s": quant_s[name],
                          "err_px": {"p50": float(np.median(err)), "p99": float(np.percentile(err, 99)),
                                     "max": float(err.max())},
                          "passes": bool(np.percentile(err, 99) <= TOLERANCE_P99_PX)}
    report: dict[str, Any] = {"kind": "int8_probe", **environment(1), "category": args.category,
                              "checkpoint": f"realtime/weights/{ckpt.name}", "openvino": ov.__version__,
                              "nncf": nncf.__version__, "cpu_capabilities": cpu_capabilities(core),
                              "calib_crops": len(calib), "test_crops": len(test), "fp32_ms": base,
                              "tolerance_p99_px": TOLERANCE_P99_PX, "variants": variants}
    lines = [f"# int8 (NNCF post-training quantization) vs fp32, OpenVINO, {args.category} ({report['date']})", "",
             run_context_line(report) + ".", "",
             f"OpenVINO {ov.__version__}, NNCF {nncf.__version__}; CPU capabilities {', '.join(report['cpu_capabilities'])}. "
             f"Statistics: live crops of {len(calib)} TRAIN photos; compared on live crops of {len(test)} identity-safe "
             f"TEST photos (default detector, bundled accessories), every graph once per crop in rotating order, "
             f"1 thread. fp32 per-frame infer p50 **{base['p50']:.1f} ms**. Keypoint error: decoded corners vs "
             f"OpenVINO fp32 (which equals torch fp32 to 0.000 px), input pixels ({cfg.input_size} px crop).", "",
             "| variant | infer p50 ms | / fp32 | keypoint error p50 / p99 / max px | within 0.5 px at p99 |",
             "|---|---|---|---|---|"]
    for name, v in variants.items():
        e = v["err_px"]
        lines.append(f"| {name} | {v['ms']['p50']:.1f} | x{v['ratio_to_fp32_p50']:.3f} | {e['p50']:.3f} / "
                     f"{e['p99']:.3f} / {e['max']:.3f} | {'yes' if v['passes'] else 'no'} |")
    md = "\n".join(lines) + "\n"
    print(md)
    for p in write_report(report, args.out_dir / f"int8_probe_{report['date']}_{hardware_slug(report)}_{args.category}.json", md):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
