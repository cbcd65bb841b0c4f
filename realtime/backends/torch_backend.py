"""PyTorch backend: checkpoints (.pt) or an in-memory network; CPU (optionally bf16) or CUDA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from realtime.backends.base import Backend, ModelInfo, OpenOptions, as_heatmaps
from realtime.config import ModelConfig
from realtime.errors import BackendError


class TorchBackend(Backend):
    """Runs :class:`realtime.model.TryOnNet` with torch.

    Args:
        net: the network (moved to ``device``, eval mode).
        device: "cpu", "cuda", "cuda:1", ...
        precision: "fp32" (also for "auto"), "bf16" (CPU autocast) or "fp16" (CUDA half weights and
            activations; the heatmap activation runs in float32, and decoding is float32 on the host, as in the
            FP16 ONNX graph: :mod:`engine_build.fp16`).
        channels_last: use channels-last memory format (faster convs on CPU/GPU).
    """

    def __init__(self, net: Any, device: str = "cpu", precision: str = "fp32", channels_last: bool = True,
                 source: str = "", meta: dict[str, Any] | None = None) -> None:
        import torch

        precision = "fp32" if precision == "auto" else precision  # auto: fp32 (bf16 autocast moves keypoints)
        if precision not in ("fp32", "bf16", "fp16"):
            raise BackendError(f"torch backend: precision must be fp32, bf16 or fp16, got {precision!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"torch backend: device {device!r} requested but CUDA is not available")
        if precision == "fp16" and not device.startswith("cuda"):
            raise BackendError("torch backend: fp16 needs a CUDA device; use bf16 on CPU")
        self._torch = torch
        self.device = torch.device(device)
        self.precision = precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        net = net.eval().to(self.device, memory_format=self.memory_format)
        if precision == "fp16":
            net = net.half()
        self.net = net
        cfg: ModelConfig = net.cfg
        self.info = ModelInfo(config=cfg, backend="torch", precision=precision, source=source, meta=dict(meta or {}))
        self._f_f = None

    @classmethod
    def from_path(cls, path: str | Path, **kwargs: Any) -> "TorchBackend":
        from realtime.checkpoint import load_model

        net, _, meta = load_model(path)
        return cls(net, source=str(path), meta=meta, **kwargs)

    @classmethod
    def open(cls, path: Path, options: OpenOptions) -> "TorchBackend":
        backend = cls.from_path(path, device=options.device, precision=options.precision)
        if options.category is not None and backend.info.category != options.category:
            raise BackendError(f"{path}: model for category {backend.info.category!r}, needed {options.category!r}")
        return backend

    @classmethod
    def from_config(cls, cfg: ModelConfig, seed: int = 0, **kwargs: Any) -> "TorchBackend":
        """A randomly initialised network (for tests and for exercising the loop untrained)."""
        import torch

        from realtime.model import TryOnNet

        torch.manual_seed(seed)
        return cls(TryOnNet(cfg), source=f"random-init(seed={seed})", **kwargs)

    def _tensor(self, x: np.ndarray):
        t = self._torch.from_numpy(x).to(self.device).contiguous(memory_format=self.memory_format)
        return t.half() if self.precision == "fp16" else t

    def _autocast(self):
        if self.precision == "bf16":
            return self._torch.autocast(self.device.type, dtype=self._torch.bfloat16)
        return self._torch.autocast(self.device.type, enabled=False)

    def set_foreground(self, fg_input: np.ndarray) -> None:
        x = self._tensor(self._check_input(fg_input, 4, "foreground input"))
        with self._torch.inference_mode(), self._autocast():
            self._f_f = self.net.encode_foreground(x)

    def infer(self, bg_input: np.ndarray) -> np.ndarray:
        if self._f_f is None:
            raise BackendError("torch backend: call set_foreground() before infer()")
        x = self._tensor(self._check_input(bg_input, 3, "background input"))
        with self._torch.inference_mode(), self._autocast():
            hm, _ = self.net.forward_frame(x, self._f_f, semantic_logits=False,
                                           fp32_head=self.precision == "fp16")
        # channels-last in, channels-last out: make it NCHW-contiguous for the decoder
        return as_heatmaps(hm.float().contiguous().cpu().numpy())

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)
