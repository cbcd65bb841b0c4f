"""Checkpoints that describe themselves, written atomically (:func:`realtime.io.atomic_write_bytes`).

A checkpoint is a ``torch.save`` dict:
    ``format``: "tryon-checkpoint-v1"
    ``model_config``: the resolved :class:`realtime.config.ModelConfig` as a dict
    ``model``: the state dict (fp32, or fp16 for shipped weights; loading casts back)
    ``meta``: free-form JSON-able dict (epoch, step, metrics, training config, ...)
    ``train_state``: optional (optimizer, scheduler, RNG states) for resuming

Writes go to a temporary file in the same folder, are fsynced, then ``os.replace``-d
over the target, so a crash or Ctrl-C never leaves a truncated checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from realtime.config import ModelConfig
from realtime.io import atomic_write_bytes

FORMAT = "tryon-checkpoint-v1"


def save_checkpoint(path: str | Path, model_state: dict[str, Any], model_config: ModelConfig,
                    meta: dict[str, Any] | None = None, train_state: dict[str, Any] | None = None,
                    half: bool = False) -> None:
    """Save atomically. ``half`` stores floating tensors as fp16 (for shipped weights)."""
    import io

    import torch

    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in model_state.items()}
    blob = {"format": FORMAT, "model_config": model_config.to_dict(), "model": state, "meta": dict(meta or {})}
    if train_state is not None:
        blob["train_state"] = train_state
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict (tensors on CPU, floating tensors as fp32).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a tryon checkpoint (message names the file and key).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tryon checkpoint (missing key 'format' == {FORMAT!r})")
    for key in ("model_config", "model"):
        if key not in blob:
            raise ValueError(f"checkpoint {path} lacks key {key!r}")
    blob["model"] = {k: (v.float() if v.is_floating_point() else v) for k, v in blob["model"].items()}
    return blob


def load_model(path: str | Path):
    """Build the network from a checkpoint, in eval mode: returns ``(net, ModelConfig, meta)``."""
    from realtime.model import TryOnNet

    blob = load_checkpoint(path)
    try:
        cfg = ModelConfig.from_dict(blob["model_config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path}: bad 'model_config': {exc}") from exc
    net = TryOnNet(cfg)
    result = net.load_state_dict(blob["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"checkpoint {path} does not fit its model_config: missing {result.missing_keys[:3]}, "
                         f"unexpected {result.unexpected_keys[:3]}")
    return net.eval(), cfg, blob.get("meta", {})
