"""The backend contract: what every runtime (torch, ONNX Runtime, OpenVINO, TensorRT) implements.

Every runtime implements :class:`Backend`:

    backend.set_foreground(fg_input)   # (1, 4, S, S) float32; encodes F_f ONCE, cached
    heatmaps = backend.infer(bg_input) # (1, 3, S, S) float32 -> (1, 4, S, S) float32

Inputs come from :mod:`realtime.preprocess`; outputs are raw heatmaps, decoded once, in
:class:`realtime.codec.HeatmapCodec`. Backends import their runtime lazily (inside the
class), never at package import. Artifacts are opened by :mod:`realtime.backends.opener`
(one options object for every runtime, :meth:`Backend.open`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.config import ModelConfig
from realtime.errors import BackendError


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


def as_heatmaps(x: Any) -> np.ndarray:
    """A backend's output as C-contiguous float32 (copied only when it is not already).

    Every backend returns this layout: a channels-last or otherwise strided array makes
    the decoder's per-channel reductions several times slower (issue 14: 6-11x).
    """
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(frozen=True)
class OpenOptions:
    """What a caller may ask of any runtime; each uses the fields that concern it.

    Attributes:
        category: the accessory category the artifact must serve (None: any).
        device: torch device ("cpu", "cuda", ...).
        precision: ``auto`` (torch: fp32; OpenVINO: bf16 where the CPU has it and the model
            passed its bf16 check), fp32, bf16 (torch CPU autocast / OpenVINO), fp16 (torch on
            CUDA); an export folder opened by ONNX Runtime gives its fp16 frame graph for fp16,
            its fp32 one otherwise.
        threads: CPU threads per operator for ONNX Runtime, per compiled model for OpenVINO
            (None: their default). Torch's
            process-wide thread count is set by the caller (:class:`~realtime.backends.resolver.ModelResolver`).
    """

    category: str | None = None
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None


class Backend(ABC):
    """One runtime serving one model. Stateful only in the cached foreground features."""

    info: ModelInfo

    @abstractmethod
    def set_foreground(self, fg_input: np.ndarray) -> None:
        """Encode an accessory (1, 4, S, S) float32 and cache F_f for every later frame."""

    @abstractmethod
    def infer(self, bg_input: np.ndarray) -> np.ndarray:
        """Per-frame path: (1, 3, S, S) float32 -> heatmaps (1, 4, S, S) float32, C-contiguous
        (:func:`as_heatmaps`).

        Raises:
            BackendError: :meth:`set_foreground` was never called.
        """

    @classmethod
    def open(cls, path: Path, options: OpenOptions) -> "Backend":
        """Open an artifact with the runtime-independent :class:`OpenOptions`.

        Each runtime maps the options it uses onto its own constructor (``from_path``).
        """
        raise NotImplementedError

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
