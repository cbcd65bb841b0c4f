"""Tracing a network into its two self-describing ONNX graphs, and comparing runtimes on decoded keypoints.

This is the part of ``tryon export`` the product itself needs: the OpenVINO backend exports
a shipped checkpoint on first use (:mod:`realtime.backends.export_cache`) without the
``engine_build`` package. :mod:`engine_build.export` builds on it (FP16 variant, STRAT
verification inputs, the command line).

* :func:`export_fp32_graphs`: foreground graph (RGBA accessory -> F_f, run once per
  accessory) and per-frame graph (background + F_f -> heatmaps), fp32, static shapes,
  :class:`realtime.artifacts.ArtifactMeta` in ``metadata_props``, atomic writes.
* :func:`synthetic_pairs`: deterministic verification inputs (bundled accessories on
  face-like synthetic backgrounds).
* :func:`compare_keypoints` / :class:`KeypointErrorStats`: decoded keypoints of torch and of
  any backends on the same inputs, errors in pixels.

Needs torch and onnx (imported here, so import this module lazily).
"""

from __future__ import annotations

import dataclasses
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import torch
from torch import nn

from realtime.artifacts import BG_INPUT, FEATURES, FG_INPUT, HEATMAPS, KEYPOINTS, ArtifactMeta, artifact_name
from realtime.codec import HeatmapCodec
from realtime.config import ModelConfig
from realtime.io import atomic_write_bytes
from realtime.model import FramePath, ForegroundPath, TryOnNet
from realtime.preprocess import background_input, foreground_input

#: Lowest opset accepted (Resize/Softmax semantics we rely on are those of opset >= 13;
#: 17 is the floor asked for and supported by TensorRT 10's parser and ORT >= 1.11).
MIN_OPSET = 17
#: Max keypoint error of an fp32 runtime (ONNX Runtime, OpenVINO) vs PyTorch, in pixels at
#: network resolution: the same graph in the same precision must agree.
FP32_TOLERANCE_PX = 0.1


@dataclass
class KeypointErrorStats:
    """Euclidean keypoint errors in pixels over samples x 4 corners."""

    n: int
    mean_px: float
    p95_px: float
    max_px: float
    worst_sample: int = -1
    p99_px: float = float("nan")

    @classmethod
    def between(cls, a_pts: np.ndarray, b_pts: np.ndarray) -> "KeypointErrorStats":
        """Stats of ``|a - b|`` for (N, K, 2) keypoint arrays."""
        d = np.linalg.norm(np.asarray(a_pts, np.float64) - np.asarray(b_pts, np.float64), axis=-1)  # (N, K)
        return cls(n=int(d.size), mean_px=float(d.mean()), p95_px=float(np.percentile(d, 95)),
                   max_px=float(d.max()), worst_sample=int(np.unravel_index(np.argmax(d), d.shape)[0]),
                   p99_px=float(np.percentile(d, 99)))

    def __str__(self) -> str:
        return (f"mean {self.mean_px:.4f} px, p95 {self.p95_px:.4f} px, p99 {self.p99_px:.4f} px, "
                f"max {self.max_px:.4f} px over {self.n} points")


# --------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------

class FrameWithKeypoints(nn.Module):
    """Per-frame graph with an extra ``keypoints`` output: the paper's plain soft-argmax
    (Eq. 4, ``refine="none"``) of the heatmaps, computed by the codec's own torch decoder in float32."""

    def __init__(self, net: TryOnNet) -> None:
        super().__init__()
        self.frame = FramePath(net)
        self.codec = HeatmapCodec(dataclasses.replace(net.cfg.codec, refine="none"))

    def forward(self, bg: torch.Tensor, f_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hm = self.frame(bg, f_f)  # (1, 4, S, S)
        return hm, self.codec.decode_torch(hm)  # (1, 4, 2)


def to_onnx(module: nn.Module, args: tuple[torch.Tensor, ...], input_names: list[str],
            output_names: list[str], opset: int) -> onnx.ModelProto:
    """Trace ``module`` (in eval mode) to an ONNX model with static shapes."""
    buf = io.BytesIO()
    module.eval()  # the exporter restores the wrapper's mode afterwards: keep it eval
    with warnings.catch_warnings():
        # torch >= 2.9 warns that the TorchScript exporter is legacy; it needs no onnxscript.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def with_meta(model: onnx.ModelProto, meta: ArtifactMeta) -> onnx.ModelProto:
    """``model`` with ``meta`` as its ``metadata_props`` (checked with ``onnx.checker``)."""
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, meta.to_props())
    model.producer_name = "tryon"
    model.producer_version = meta.tryon_version
    model.doc_string = (f"tryon {meta.graph} graph for {meta.category} ({meta.input_size}px, {meta.precision}); "
                        f"metadata in metadata_props")
    onnx.checker.check_model(model)
    return model


def update_meta(path: str | Path, **changes: Any) -> ArtifactMeta:
    """Rewrite fields of an ONNX file's tryon metadata in place (atomically); returns the new metadata."""
    model = onnx.load(str(path))
    meta = dataclasses.replace(ArtifactMeta.from_props({p.key: p.value for p in model.metadata_props}, str(path)),
                               **changes)
    atomic_write_bytes(path, with_meta(model, meta).SerializeToString())
    return meta


@dataclass
class Fp32Graphs:
    """What :func:`export_fp32_graphs` wrote (the frame model and metadata feed the FP16 variant)."""

    fg_path: Path
    frame_path: Path
    frame_model: onnx.ModelProto
    frame_meta: ArtifactMeta


def export_fp32_graphs(net: TryOnNet, out_dir: Path, *, opset: int = MIN_OPSET, keypoints: bool = False,
                       source_checkpoint: str = "", checkpoint_sha256: str = "") -> Fp32Graphs:
    """Write the fp32 foreground and per-frame graphs of ``net`` into ``out_dir`` (atomically, each)."""
    if opset < MIN_OPSET:
        raise ValueError(f"--opset must be >= {MIN_OPSET}, got {opset}")
    cfg = net.cfg
    net = net.eval()
    s = cfg.input_size
    fg_name = artifact_name(cfg.category, s, "fg", "fp32")
    common = dict(model_config=cfg.to_dict(), source_checkpoint=source_checkpoint,
                  source_checkpoint_sha256=checkpoint_sha256, opset=opset)
    fg = torch.zeros(1, 4, s, s)
    bg = torch.zeros(1, 3, s, s)
    with torch.inference_mode():
        f_f = net.encode_foreground(fg)  # (1, C, S/32, S/32)
    f_f = f_f.clone()

    fg_model = to_onnx(ForegroundPath(net), (fg,), [FG_INPUT], [FEATURES], opset)
    fg_path = Path(out_dir) / fg_name
    atomic_write_bytes(fg_path, with_meta(fg_model, ArtifactMeta(graph="fg", precision="fp32", outputs=[FEATURES],
                                                                 **common)).SerializeToString())
    outputs = [HEATMAPS, KEYPOINTS] if keypoints else [HEATMAPS]
    frame_module = FrameWithKeypoints(net) if keypoints else FramePath(net)
    frame_model = to_onnx(frame_module, (bg, f_f), [BG_INPUT, FEATURES], outputs, opset)
    frame_meta = ArtifactMeta(graph="frame", precision="fp32", outputs=outputs, fg_graph=fg_name, **common)
    frame_path = Path(out_dir) / artifact_name(cfg.category, s, "frame", "fp32")
    atomic_write_bytes(frame_path, with_meta(frame_model, frame_meta).SerializeToString())
    return Fp32Graphs(fg_path, frame_path, frame_model, frame_meta)


# --------------------------------------------------------------------------------------
# Verification inputs and comparison
# --------------------------------------------------------------------------------------

def synthetic_backgrounds(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` deterministic face-like RGB backgrounds (S, S, 3) uint8: a smooth colour field,
    a skin-toned head ellipse with eyes, brows and mouth, and sensor-like noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        corners = rng.integers(0, 256, size=(2, 2, 3)).astype(np.float32)
        img = cv2.resize(corners, (size, size), interpolation=cv2.INTER_LINEAR)
        cx, cy = size * rng.uniform(0.4, 0.6), size * rng.uniform(0.45, 0.6)
        ax, ay = size * rng.uniform(0.2, 0.3), size * rng.uniform(0.28, 0.38)
        angle = rng.uniform(-20, 20)
        skin = rng.uniform([150, 100, 80], [240, 190, 160])
        cv2.ellipse(img, (int(cx), int(cy)), (int(ax), int(ay)), angle, 0, 360, skin.tolist(), -1, cv2.LINE_AA)
        dark = (rng.uniform(20, 70),) * 3
        for side in (-1, 1):
            ex, ey = cx + side * 0.4 * ax, cy - 0.2 * ay
            cv2.ellipse(img, (int(ex), int(ey)), (max(int(0.15 * ax), 1), max(int(0.07 * ay), 1)), angle, 0, 360,
                        dark, -1, cv2.LINE_AA)
            cv2.line(img, (int(ex - 0.15 * ax), int(ey - 0.15 * ay)), (int(ex + 0.15 * ax), int(ey - 0.17 * ay)),
                     dark, max(size // 100, 1), cv2.LINE_AA)
        cv2.ellipse(img, (int(cx), int(cy + 0.45 * ay)), (max(int(0.25 * ax), 1), max(int(0.05 * ay), 1)), angle,
                    0, 360, (150, 60, 60), -1, cv2.LINE_AA)
        img += rng.normal(0.0, 4.0, img.shape).astype(np.float32)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def synthetic_pairs(cfg: ModelConfig, samples: int, seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """``samples`` (foreground RGBA, background RGB) pairs: the bundled accessories of the
    category cycled over :func:`synthetic_backgrounds`; and a description."""
    from realtime.procedural import bundled_accessories

    accs = bundled_accessories(cfg.category)
    bgs = synthetic_backgrounds(samples, cfg.input_size, seed)
    pairs = [(accs[i % len(accs)].rgba, bgs[i]) for i in range(samples)]
    return pairs, f"{samples} synthetic backgrounds x {len(accs)} bundled {cfg.category} accessories"


def at_size(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` resized to ``size`` x ``size`` (INTER_AREA) unless it already is."""
    if img.shape[:2] == (size, size):
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def compare_keypoints(net: TryOnNet | None, backends: dict[str, Any], pairs: list[tuple[np.ndarray, np.ndarray]]
                      ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Decoded keypoints (N, 4, 2) of torch (unless ``net`` is None) and of each backend on the same inputs.

    Returns:
        ``({"torch": pts, name: pts, ...}, {name: mean per-frame ms})``; the timings are the
        per-frame calls made here (torch ``forward_frame`` / backend ``infer``, F_f cached,
        no decoding), a rough figure, not a benchmark.
    """
    from tqdm import tqdm

    cfg = net.cfg if net is not None else next(iter(backends.values())).info.config
    codec = HeatmapCodec(cfg.codec)
    names = (["torch"] if net is not None else []) + list(backends)
    pts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    secs: dict[str, float] = {k: 0.0 for k in names}
    for fg_rgba, bg_rgb in tqdm(pairs, desc="verify", unit="sample", leave=False):
        fg_in, _ = foreground_input(fg_rgba, cfg.input_size)
        bg_in = background_input(at_size(bg_rgb, cfg.input_size))
        if net is not None:
            with torch.inference_mode():
                f_f = net.encode_foreground(torch.from_numpy(fg_in))
                t0 = time.perf_counter()
                hm = net.forward_frame(torch.from_numpy(bg_in), f_f, semantic_logits=False)[0].numpy()
                secs["torch"] += time.perf_counter() - t0
            pts["torch"].append(codec.decode(hm).pts_xy[0])
        for name, backend in backends.items():
            backend.set_foreground(fg_in)
            t0 = time.perf_counter()
            hm = backend.infer(bg_in)
            secs[name] += time.perf_counter() - t0
            pts[name].append(codec.decode(hm).pts_xy[0])
    n = max(len(pairs), 1)
    return {k: np.stack(v) for k, v in pts.items()}, {k: 1e3 * v / n for k, v in secs.items()}
