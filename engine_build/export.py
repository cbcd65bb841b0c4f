"""``tryon export``: a checkpoint -> ONNX graphs that describe themselves, verified before they are kept.

Per model, in ``--out``::

    <category>_<S>_fg_fp32.onnx      foreground encoder: RGBA accessory (1,4,S,S) -> F_f, run once per accessory
    <category>_<S>_frame_fp32.onnx   per-frame graph: background (1,3,S,S) + F_f -> heatmaps (1,4,S,S)
                                     [+ ``keypoints`` (1,4,2), plain soft-argmax in float32, with --keypoints]
    <category>_<S>_frame_fp16.onnx   FP16 variant of the per-frame graph (float32 I/O), unless --no-fp16
    export.json                      the resolved model config and the verification report

Static shapes (S = 224 or 448 by category), opset >= 17, and :class:`realtime.artifacts.ArtifactMeta`
in each file's ``metadata_props``.

The command verifies what it wrote, on real inputs (a STRAT split via ``--data``, else the
bundled accessories on synthetic face-like backgrounds), comparing decoded keypoints in
pixels (:class:`realtime.codec.HeatmapCodec`):

* ONNX Runtime fp32 vs PyTorch: max error <= 0.1 px;
* FP16 vs fp32: max error <= 1 px (mean / p95 / max reported). ONNX Runtime's CPU provider
  runs an FP16 graph mostly in float32 (it casts unsupported float16 subgraphs up), so the
  check runs :func:`engine_build.fp16.emulate_fp16` of the graph, which rounds every
  activation to float16 as a GPU stores it; the plain ORT run of the FP16 file is reported
  too (it proves the file loads and runs).

The fp32 frame graph also gets the OpenVINO bf16 keypoint check (bf16 vs fp32 on the same
inputs, :func:`realtime.backends.openvino_backend.bf16_keypoint_check`) in its metadata: the
OpenVINO backend runs a model in bf16 only where that check passed (on a CPU without native
bf16 it records that nothing could be measured).

Files are written to a temporary folder inside ``--out`` and moved into place only when
every check passed, so a failed export leaves nothing that a backend could pick up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from realtime.artifacts import artifact_name
from realtime.backends.graph_export import (FP32_TOLERANCE_PX, MIN_OPSET, FrameWithKeypoints, KeypointErrorStats,  # noqa: F401
                                            compare_keypoints, export_fp32_graphs, synthetic_backgrounds,
                                            synthetic_pairs, update_meta, with_meta)
from realtime.cli import command_parser
from realtime.checkpoint import load_model
from realtime.cli import positive_float, positive_int
from realtime.config import ModelConfig
from realtime.io import atomic_write_bytes, file_sha256
from realtime.model import TryOnNet

log = logging.getLogger(__name__)

#: Tolerance of the FP16 graph vs fp32 on decoded keypoints, in pixels at network resolution
#: (fp32 runtimes vs PyTorch: FP32_TOLERANCE_PX, realtime.backends.graph_export).
FP16_TOLERANCE_PX = 1.0
#: Default number of verification samples.
DEFAULT_SAMPLES = 32


class ExportVerificationError(RuntimeError):
    """An exported graph does not reproduce the reference within tolerance (message has the numbers)."""


@dataclass
class ExportResult:
    """What ``tryon export`` wrote and measured."""

    out_dir: Path
    fg_path: Path
    frame_path: Path
    frame_fp16_path: Path | None
    config: ModelConfig
    fp32_vs_torch: KeypointErrorStats
    fp16_vs_fp32: KeypointErrorStats | None
    inputs: str
    fp16_ort_cpu_vs_fp32: KeypointErrorStats | None = None
    timing_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir), "fg": self.fg_path.name, "frame": self.frame_path.name,
            "frame_fp16": self.frame_fp16_path.name if self.frame_fp16_path else None,
            "model_config": self.config.to_dict(), "config_hash": self.config.hash(), "inputs": self.inputs,
            "fp32_vs_torch": dataclasses.asdict(self.fp32_vs_torch),
            "fp16_vs_fp32": dataclasses.asdict(self.fp16_vs_fp32) if self.fp16_vs_fp32 else None,
            "fp16_vs_fp32_note": "fp16 = emulated float16 storage of every activation (engine_build.fp16.emulate_fp16)",
            "fp16_ort_cpu_vs_fp32": (dataclasses.asdict(self.fp16_ort_cpu_vs_fp32)
                                     if self.fp16_ort_cpu_vs_fp32 else None),
            "tolerance_px": {"fp32": FP32_TOLERANCE_PX, "fp16": FP16_TOLERANCE_PX},
            "timing_ms_during_verification": self.timing_ms,
        }


# --------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------

def export_graphs(net: TryOnNet, out_dir: Path, *, opset: int = MIN_OPSET, keypoints: bool = False,
                  fp16: bool = True, source_checkpoint: str = "", checkpoint_sha256: str = ""
                  ) -> tuple[Path, Path, Path | None]:
    """Write the fg, frame and (optionally) frame-fp16 graphs of ``net`` into ``out_dir``.

    Returns:
        Paths of the fg graph, the fp32 frame graph and the fp16 frame graph (or None).
    """
    from engine_build.fp16 import convert_to_fp16

    graphs = export_fp32_graphs(net, out_dir, opset=opset, keypoints=keypoints, source_checkpoint=source_checkpoint,
                                checkpoint_sha256=checkpoint_sha256)
    frame_model, frame_meta, cfg = graphs.frame_model, graphs.frame_meta, net.cfg
    fp16_path = None
    if fp16:
        half_model, kept = convert_to_fp16(frame_model)
        half_meta = dataclasses.replace(frame_meta, precision="fp16", fp32_nodes=kept)
        fp16_path = out_dir / artifact_name(cfg.category, cfg.input_size, "frame", "fp16")
        atomic_write_bytes(fp16_path, with_meta(half_model, half_meta).SerializeToString())
    return graphs.fg_path, graphs.frame_path, fp16_path


# --------------------------------------------------------------------------------------
# Verification inputs
# --------------------------------------------------------------------------------------

def verification_pairs(cfg: ModelConfig, data: str | Path | None = None, samples: int = DEFAULT_SAMPLES,
                       seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """``samples`` (foreground RGBA, background RGB) pairs at network size, and a description.

    From the STRAT split ``data`` (evenly spaced samples, :class:`training.strat.StratDataset`)
    if given, else :func:`realtime.backends.graph_export.synthetic_pairs`.
    """
    s = cfg.input_size
    if data is not None:
        from training.strat import StratDataset

        ds = StratDataset(data, category=cfg.category, size=s)
        if len(ds) == 0:
            raise ValueError(f"--data {data}: the split has no samples")
        idx = np.unique(np.linspace(0, len(ds) - 1, min(samples, len(ds))).round().astype(int))
        pairs = []
        for i in idx:
            item = ds[int(i)]
            pairs.append((item["foreground"], item["background"]))
        return pairs, f"{len(pairs)} samples of STRAT split {ds.split_dir}"
    return synthetic_pairs(cfg, samples, seed)


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------

def store_bf16_check(frame_path: Path, pairs: list[tuple[np.ndarray, np.ndarray]], threads: int) -> dict[str, Any]:
    """Measure the OpenVINO bf16 keypoint check of the fp32 frame graph on the verification
    inputs and store it in the graph's metadata (``bf16_check``); without OpenVINO, store why not."""
    from realtime.backends.openvino_backend import bf16_keypoint_check
    from realtime.backends.resolver import openvino_available

    if openvino_available():
        check = bf16_keypoint_check(frame_path, pairs, threads)
    else:
        check = {"measured": False, "reason": "openvino is not installed where the graph was exported"}
    update_meta(frame_path, bf16_check=check)
    log.info("bf16 keypoint check (OpenVINO bf16 vs fp32): %s", check)
    return check


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, data: str | Path | None = None,
                      opset: int = MIN_OPSET, keypoints: bool = False, fp16: bool = True,
                      samples: int = DEFAULT_SAMPLES, fp32_tolerance_px: float = FP32_TOLERANCE_PX,
                      fp16_tolerance_px: float = FP16_TOLERANCE_PX, intra_op_threads: int | None = None
                      ) -> ExportResult:
    """Export a checkpoint to ONNX, verify it, and move the files into ``out_dir``.

    Args:
        checkpoint: a tryon checkpoint (``realtime.checkpoint``).
        out_dir: output folder (created).
        data: STRAT split for verification inputs, or None for synthetic ones.
        opset: ONNX opset (>= 17).
        keypoints: add the ``keypoints`` output (plain soft-argmax) to the frame graphs.
        fp16: also write and verify the FP16 frame graph.
        samples: number of verification samples.
        fp32_tolerance_px: max keypoint error of ONNX Runtime fp32 vs PyTorch.
        fp16_tolerance_px: max keypoint error of the fp16 graph vs the fp32 graph.
        intra_op_threads: ONNX Runtime threads for the verification (None: ORT's default).

    Raises:
        ExportVerificationError: a check failed; nothing is left in ``out_dir``.
    """
    from engine_build.fp16 import emulate_fp16
    from realtime.backends.onnx_backend import OnnxBackend

    checkpoint = Path(checkpoint)
    out_dir = Path(out_dir)
    net, cfg, _ = load_model(checkpoint)
    sha = file_sha256(checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        fg_path, frame_path, fp16_path = export_graphs(
            net, tmp, opset=opset, keypoints=keypoints, fp16=fp16, source_checkpoint=str(checkpoint.resolve()),
            checkpoint_sha256=sha)
        pairs, described = verification_pairs(cfg, data, samples)
        providers = ["CPUExecutionProvider"]  # verification is about the graph, on the reference EP
        backends = {"ort_fp32": OnnxBackend(frame_path, providers=providers, intra_op_threads=intra_op_threads)}
        if fp16_path is not None:
            backends["ort_fp16"] = OnnxBackend(fp16_path, providers=providers, intra_op_threads=intra_op_threads)
            emulated = tmp / "fp16_emulated.onnx"  # stays in the temporary folder
            atomic_write_bytes(emulated, emulate_fp16(onnx.load(str(fp16_path))).SerializeToString())
            backends["fp16_emulated"] = OnnxBackend(emulated, providers=providers, intra_op_threads=intra_op_threads)
        pts, timing = compare_keypoints(net, backends, pairs)
        timing.pop("fp16_emulated", None)  # its speed means nothing
        fp32_stats = KeypointErrorStats.between(pts["ort_fp32"], pts["torch"])
        log.info("ONNX Runtime fp32 vs PyTorch: %s", fp32_stats)
        if fp32_stats.max_px > fp32_tolerance_px:
            raise ExportVerificationError(
                f"ONNX Runtime fp32 keypoints differ from PyTorch by up to {fp32_stats.max_px:.4f} px "
                f"(> {fp32_tolerance_px} px; sample {fp32_stats.worst_sample} of {described}): {fp32_stats}. "
                f"The exported graph does not reproduce the checkpoint {checkpoint}.")
        fp16_stats = ort_fp16_stats = None
        if fp16_path is not None:
            ort_fp16_stats = KeypointErrorStats.between(pts["ort_fp16"], pts["ort_fp32"])
            fp16_stats = KeypointErrorStats.between(pts["fp16_emulated"], pts["ort_fp32"])
            log.info("FP16 (emulated storage) vs fp32: %s; ONNX Runtime CPU fp16 file vs fp32: %s", fp16_stats,
                     ort_fp16_stats)
            if fp16_stats.max_px > fp16_tolerance_px:
                raise ExportVerificationError(
                    f"FP16 keypoints differ from fp32 by up to {fp16_stats.max_px:.3f} px (> {fp16_tolerance_px} px; "
                    f"sample {fp16_stats.worst_sample} of {described}): {fp16_stats}. Keep more nodes in float32 "
                    f"(engine_build.fp16.DEFAULT_FP32_OPS) or export with --no-fp16.")
        for backend in backends.values():
            backend.close()
        bf16_check = store_bf16_check(frame_path, pairs, intra_op_threads or 1)
        final = {p: out_dir / p.name for p in (fg_path, frame_path, fp16_path) if p is not None}
        for dst in [*final.values(), out_dir / "export.json"]:
            if dst.exists():
                log.warning("%s exists: replaced by this export", dst)
        if fp16_path is None:  # an fp16 graph of an earlier export would no longer match the fp32 one
            stale = out_dir / artifact_name(cfg.category, cfg.input_size, "frame", "fp16")
            if stale.exists():
                log.warning("removing %s: an earlier export's FP16 graph, which this export (--no-fp16) does not "
                            "match", stale)
                stale.unlink()
        for src, dst in final.items():
            os.replace(src, dst)
        result = ExportResult(out_dir=out_dir, fg_path=final[fg_path], frame_path=final[frame_path],
                              frame_fp16_path=final.get(fp16_path) if fp16_path else None, config=cfg,
                              fp32_vs_torch=fp32_stats, fp16_vs_fp32=fp16_stats, inputs=described,
                              fp16_ort_cpu_vs_fp32=ort_fp16_stats, timing_ms=timing)
        report = {**result.to_dict(), "source_checkpoint": str(checkpoint.resolve()), "source_checkpoint_sha256": sha,
                  "bf16_check": bf16_check}
        atomic_write_bytes(out_dir / "export.json", (json.dumps(report, indent=2) + "\n").encode())
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``tryon export``: parse, validate, call :func:`export_checkpoint`, print the summary."""
    parser = command_parser(
        "tryon export", "Export a checkpoint to ONNX (foreground + per-frame graphs, FP16 variant), verified on "
                        "real inputs.", "tryon export --checkpoint runs/glasses_lite/best.pt --out exports/glasses")
    parser.add_argument("--checkpoint", required=True, type=Path, help="tryon checkpoint (.pt)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--data", type=Path, help="STRAT split for verification inputs (default: synthetic)")
    parser.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    parser.add_argument("--keypoints", action="store_true",
                        help="add a 'keypoints' output (plain soft-argmax, float32) to the frame graphs")
    parser.add_argument("--no-fp16", dest="fp16", action="store_false", help="skip the FP16 frame graph")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="verification samples")
    parser.add_argument("--fp16-tolerance", type=positive_float, default=FP16_TOLERANCE_PX,
                        help="max fp16 vs fp32 keypoint error in px")
    parser.add_argument("--threads", type=positive_int, default=None, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        raise FileNotFoundError(f"--checkpoint: no such file: {args.checkpoint}")
    if args.data is not None and not args.data.exists():
        raise FileNotFoundError(f"--data: no such folder: {args.data}")
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    res = export_checkpoint(args.checkpoint, args.out, data=args.data, opset=args.opset, keypoints=args.keypoints,
                            fp16=args.fp16, samples=args.samples, fp16_tolerance_px=args.fp16_tolerance,
                            intra_op_threads=args.threads)
    print(f"exported {res.config.category} model ({res.config.input_size}px, config {res.config.hash()}) to "
          f"{res.out_dir}")
    for path in (res.fg_path, res.frame_path, res.frame_fp16_path):
        if path is not None:
            print(f"  {path.name}  ({path.stat().st_size / 2**20:.1f} MiB)")
    print(f"verified on {res.inputs}")
    print(f"  ONNX Runtime fp32 vs PyTorch: {res.fp32_vs_torch}  (limit {FP32_TOLERANCE_PX} px)")
    if res.fp16_vs_fp32 is not None:
        print(f"  FP16 (emulated) vs fp32:      {res.fp16_vs_fp32}  (limit {args.fp16_tolerance} px)")
        print(f"  ONNX Runtime CPU fp16 file:   {res.fp16_ort_cpu_vs_fp32}  (ORT computes most of it in fp32)")
    return 0
