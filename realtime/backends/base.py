"""The backend contract and the table that picks a backend class by artifact suffix.

Every runtime (torch, ONNX Runtime, TensorRT) implements :class:`Backend`:

    backend.set_foreground(fg_input)   # (1, 4, S, S) float32; encodes F_f ONCE, cached
    heatmaps = backend.infer(bg_input) # (1, 3, S, S) float32 -> (1, 4, S, S) float32

Inputs come from :mod:`realtime.preprocess`; outputs are raw heatmaps, decoded once, in
:class:`realtime.codec.HeatmapCodec`. Backends import their runtime lazily (inside the
class), never at package import.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.config import ModelConfig


class BackendError(RuntimeError):
    """A backend cannot be created or an artifact does not fit (message says what to rebuild)."""


@dataclass
class ModelInfo:
    """What a backend serves: the model config and the artifact's self-description."""

    config: ModelConfig
    backend: str
    precision: str = "fp32"
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str:
        return self.config.category

    @property
    def input_size(self) -> int:
        return self.config.input_size


class Backend(ABC):
    """One runtime serving one model. Stateful only in the cached foreground features."""

    info: ModelInfo

    @abstractmethod
    def set_foreground(self, fg_input: np.ndarray) -> None:
        """Encode an accessory (1, 4, S, S) float32 and cache F_f for every later frame."""

    @abstractmethod
    def infer(self, bg_input: np.ndarray) -> np.ndarray:
        """Per-frame path: (1, 3, S, S) float32 -> heatmaps (1, 4, S, S) float32.

        Raises:
            BackendError: :meth:`set_foreground` was never called.
        """

    def infer_full(self, bg_input: np.ndarray, fg_input: np.ndarray) -> np.ndarray:
        """Naive path for benchmarks: encode the foreground again, then infer."""
        self.set_foreground(fg_input)
        return self.infer(bg_input)

    def synchronize(self) -> None:
        """Block until queued device work is done (no-op on CPU backends)."""

    def close(self) -> None:
        """Release device resources."""

    def _check_input(self, x: np.ndarray, channels: int, name: str) -> np.ndarray:
        s = self.info.input_size
        if x.shape != (1, channels, s, s):
            raise BackendError(f"{self.info.backend}: {name} must be (1, {channels}, {s}, {s}), got {x.shape}")
        return np.ascontiguousarray(x, dtype=np.float32)


#: Artifact suffix -> (backend name, "module:Class"). Resolved lazily.
BACKENDS_BY_SUFFIX: dict[str, tuple[str, str]] = {
    ".pt": ("torch", "realtime.backends.torch_backend:TorchBackend"),
    ".pth": ("torch", "realtime.backends.torch_backend:TorchBackend"),
    ".onnx": ("onnxruntime", "realtime.backends.onnx_backend:OnnxBackend"),
    ".engine": ("tensorrt", "realtime.backends.tensorrt_backend:TensorRTBackend"),
}


def backend_class(name_or_path: str | Path):
    """The backend class for a backend name ("torch", ...) or an artifact path (by suffix)."""
    key = str(name_or_path)
    by_name = {name: target for name, target in BACKENDS_BY_SUFFIX.values()}
    target = by_name.get(key) or BACKENDS_BY_SUFFIX.get(Path(key).suffix.lower(), (None, None))[1]
    if target is None:
        raise BackendError(f"no backend for {key!r}; artifacts must end in "
                           f"{', '.join(sorted(BACKENDS_BY_SUFFIX))}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def open_backend(path: str | Path, **kwargs: Any) -> Backend:
    """Open an artifact (checkpoint, ONNX, engine) with the backend its suffix calls for."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model artifact not found: {path}")
    return backend_class(path).from_path(path, **kwargs)
