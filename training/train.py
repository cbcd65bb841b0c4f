"""Training loop: ``tryon train`` and the library function :func:`train` (paper Sec. 4.2).

One process or DistributedDataParallel under ``torchrun`` (gloo on CPU, nccl on CUDA),
with the same command line::

    tryon train --category glasses --data data/synth_glasses --out runs/g1 [--config FILE]
        [--set optim.epochs=10 ...] [--model-preset paper|lite|tiny] [--resume]
    torchrun --standalone --nproc_per_node=2 -m training.train --category glasses ...

What a step does: a batch of STRAT samples (optionally augmented, :mod:`training.augment`)
becomes network inputs through :mod:`realtime.preprocess` and heatmap targets through
:class:`realtime.codec.HeatmapCodec` (in the DataLoader workers); the network predicts
heatmaps and semantic logits under autocast (bf16 on CPU; fp16 + GradScaler on CUDA);
:func:`training.losses.total_loss` gives L = L_hm + lambda * L_sm; Adam steps with the
paper's schedule (:func:`training.config.lr_factor`).

The run folder (``--out``) holds: ``config.yaml`` (the resolved config), ``last.pt``
(every ``save_every`` epochs, at the end, and on Ctrl-C), ``best.pt`` (best validation
``best_metric`` when a validation split exists), ``log.csv`` (one row per epoch),
``steps.csv`` (one row per ``log_every`` steps), ``loss.png`` and, if TensorBoard is
installed, ``tb/``. Checkpoints are :func:`realtime.checkpoint.save_checkpoint` files
(atomic) carrying the model config, the resolved training config and, in
``train_state``, what ``--resume`` needs: optimizer, scheduler, GradScaler, epoch,
step, batches done within the epoch and RNG states.

Determinism: the model is initialised from ``seed``; the data order of epoch e is
DistributedSampler's permutation for (seed, e); the augmentation of sample i in epoch e
draws from ``np.random.default_rng([seed, e, i])``. So the data seen do not depend on
the number of processes or DataLoader workers, and a resumed run (also after Ctrl-C in
the middle of an epoch) sees the batches it would have seen.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from realtime.cli import command_parser
from realtime.checkpoint import load_checkpoint, save_checkpoint
from realtime.codec import HeatmapCodec
from realtime.config import CATEGORIES, ModelConfig
from realtime.io import atomic_write_bytes
from realtime.model import TryOnNet, load_torchvision_resnet18
from realtime.preprocess import foreground_input, normalize_rgb
from realtime.sysinfo import hardware_line
from training.augment import augment_sample
from training.config import BEST_METRICS, TrainConfig, lr_factor, resolve_train_config
from training.evaluate import evaluate_backend, mean_quad_norm
from training.losses import total_loss
from training.strat import StratDataset, StratFormatError, resolve_split_dir

log = logging.getLogger("training.train")  # not __main__ under torchrun -m

LAST = "last.pt"
BEST = "best.pt"
EPOCH_COLUMNS = ("epoch", "step", "lr", "loss", "loss_hm", "loss_sm", "samples_per_s", "epoch_time_s",
                 "val_lssim", "val_iou", "val_disp", "val_n")
STEP_COLUMNS = ("step", "epoch", "lr", "loss", "loss_hm", "loss_sm")


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

class TrainSamples(Dataset):
    """STRAT samples -> network inputs and targets, in the DataLoader workers.

    Items are addressed by ``(index, epoch)`` (see :class:`EpochSampler`) so the
    augmentation of a sample depends only on (seed, epoch, index).

    Each item: ``background`` (S, S, 3) uint8 (normalised per batch in
    :func:`collate`), ``foreground`` (4, S, S) float32 from
    :func:`realtime.preprocess.foreground_input`, ``heatmaps`` (4, S, S) float32 targets
    from the codec, ``parsing`` (S, S) uint8 class ids.
    """

    def __init__(self, strat: StratDataset, cfg: TrainConfig) -> None:
        self.strat = strat
        self.size = cfg.model.input_size
        self.codec = HeatmapCodec(cfg.model.codec)
        self.augment = cfg.augment
        self.seed = cfg.seed

    def __len__(self) -> int:
        return len(self.strat)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.strat[index]
        if self.augment.enabled:
            sample = augment_sample(sample, self.augment, np.random.default_rng([self.seed, epoch, index]))
        s = self.size
        fg_in, _ = foreground_input(sample["foreground"], s)  # (1, 4, S, S)
        return {
            "background": sample["background"],
            "foreground": fg_in[0],
            "heatmaps": self.codec.encode(sample["final_vertex"], (s, s)),  # (4, S, S)
            "parsing": sample["parsing"],
        }


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack items into tensors; the backgrounds are normalised as one batch."""
    bg = normalize_rgb(np.stack([it["background"] for it in items]))  # (N, 3, S, S)
    return {
        "background": torch.from_numpy(bg),
        "foreground": torch.from_numpy(np.stack([it["foreground"] for it in items])),
        "heatmaps": torch.from_numpy(np.stack([it["heatmaps"] for it in items])),
        "parsing": torch.from_numpy(np.stack([it["parsing"] for it in items]).astype(np.int64)),
    }


class EpochSampler(Sampler):
    """DistributedSampler's order for this rank, yielding ``(index, epoch)``.

    ``skip`` leaves out this rank's first ``skip`` indices of the epoch (resuming a run
    interrupted in the middle of an epoch).
    """

    def __init__(self, dataset: Dataset, world: int, rank: int, seed: int) -> None:
        self.inner = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                        drop_last=False)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = list(self.inner)[self.skip:]
        return iter([(i, self.epoch) for i in order])

    def __len__(self) -> int:
        return max(len(self.inner) - self.skip, 0)


def split_dirs(cfg: TrainConfig) -> tuple[Path, Path | None]:
    """(train split dir, validation split dir or None) for ``cfg.data``.

    ``cfg.data`` is the dataset root (``train/`` and maybe ``test/`` below it, also in a
    category folder) or a single split dir, which is then used for training only.
    """
    if not cfg.data:
        raise ValueError("no training data: pass --data DIR (a STRAT root with train/ [test/], or a split dir)")
    root = Path(cfg.data)
    train_dir = resolve_split_dir(root, cfg.train_split, cfg.category)
    if train_dir == root or cfg.val_split is None:
        return train_dir, None
    try:
        val_dir = resolve_split_dir(root, cfg.val_split, cfg.category)
    except StratFormatError:
        val_dir = None
    return train_dir, (None if val_dir == train_dir else val_dir)


# --------------------------------------------------------------------------------------
# Process group, device, precision
# --------------------------------------------------------------------------------------

@dataclass
class DistInfo:
    """World size, rank and local rank (1, 0, 0 for a single process)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def _init_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(world=world, rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return info


def resolve_device(cfg: TrainConfig, local_rank: int = 0) -> torch.device:
    """The training device for ``cfg.device`` (auto: CUDA if available)."""
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda requested but CUDA is not available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def resolve_precision(cfg: TrainConfig, device: torch.device) -> str:
    """``auto``: bf16 autocast on CPU, fp16 autocast + GradScaler on CUDA."""
    if cfg.precision == "auto":
        return "fp16" if device.type == "cuda" else "bf16"
    if cfg.precision == "fp16" and device.type != "cuda":
        raise ValueError("precision=fp16 needs CUDA; use bf16 (or fp32) on CPU")
    return cfg.precision


def autocast_context(device: torch.device, precision: str):
    """Autocast for ``precision`` (a no-op context for fp32)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _worker_init(worker_id: int) -> None:
    """DataLoader workers ignore Ctrl-C and SIGTERM: the main process stops after the current
    step, writes its checkpoint and then shuts the workers down (instead of finding them dead)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Not cv2.setNumThreads(1) here: in a forked worker it tears down the thread pool the
    # parent's OpenCV created, whose condition variable the fork left locked: it deadlocks.


def _auto_workers(cfg: TrainConfig) -> int:
    if cfg.num_workers >= 0:
        return cfg.num_workers
    return max(1, min(8, (os.cpu_count() or 1) // 4))


# --------------------------------------------------------------------------------------
# Model, checkpoints, logs
# --------------------------------------------------------------------------------------

def build_model(cfg: TrainConfig) -> TryOnNet:
    """The network, seeded, with optional torchvision ResNet18 weights in the encoders."""
    torch.manual_seed(cfg.seed)
    net = TryOnNet(cfg.model)
    for attr, path in (("bg_encoder", cfg.init_bg_encoder), ("fg_encoder", cfg.init_fg_encoder)):
        if path:
            encoder = getattr(net, attr)
            if encoder is None:
                raise ValueError(f"init_{attr}: the model has no {attr} (model.fusion={cfg.model.fusion})")
            missing = load_torchvision_resnet18(encoder, path)
            log.info("loaded %s from %s (%d keys missing)", attr, path, len(missing))
    if cfg.init_from and not cfg.resume:
        loaded, skipped = warm_start(net, cfg.init_from)
        log.info("warm start from %s: %d tensors copied, %d kept fresh (%s)", cfg.init_from, loaded,
                 len(skipped), ", ".join(skipped[:6]) + (" ..." if len(skipped) > 6 else ""))
    return net


def freeze_batchnorm(module: torch.nn.Module) -> int:
    """Put every BatchNorm layer of ``module`` in eval mode (running statistics used and
    kept, not updated); returns how many (``TrainConfig.freeze_bn``)."""
    layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.eval()
    return len(layers)


def warm_start(net: TryOnNet, path: str | Path) -> tuple[int, list[str]]:
    """Copy every tensor of checkpoint ``path`` whose name and shape match into ``net``.

    Returns (number of tensors copied, names of the network's tensors left as
    initialised). Raises if ``path`` is missing or shares no tensor with ``net``.
    """
    blob = load_checkpoint(Path(path))
    source = blob["model"]
    target = net.state_dict()
    matched = {k: v.to(target[k].dtype) for k, v in source.items()
               if k in target and tuple(v.shape) == tuple(target[k].shape)}
    if not any(v.is_floating_point() and v.dim() > 0 for v in matched.values()):
        raise ValueError(f"init_from {path}: no weight tensor matches this network by name and shape "
                         f"(checkpoint model config: {blob.get('model_config')})")
    net.load_state_dict(matched, strict=False)
    skipped = [k for k in target if k not in matched]
    if len(skipped) > len(target) // 2:
        log.warning("init_from %s: only %d of %d tensors match this network (different width?)",
                    path, len(matched), len(target))
    return len(matched), skipped


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    atomic_write_bytes(path, buf.getvalue().encode())


def _number(text: str | None) -> int | float | None:
    if text in ("", None):
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def plot_losses(run_dir: str | Path) -> Path | None:
    """Write ``loss.png`` from ``steps.csv`` and ``log.csv`` (None if matplotlib is missing)."""
    try:
        import matplotlib
    except ImportError:
        log.info("matplotlib not installed: no loss.png")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    steps = _read_csv(run_dir / "steps.csv")
    epochs = _read_csv(run_dir / "log.csv")
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    if steps:
        ax_loss.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=0.8, alpha=0.6, label="loss (steps)")
    if epochs:
        ax_loss.plot([r["step"] for r in epochs], [r["loss"] for r in epochs], "o-", label="loss (epoch mean)")
        if any(r.get("loss_sm") is not None for r in epochs):
            ax_loss.plot([r["step"] for r in epochs], [r["loss_hm"] for r in epochs], "--", label="L_hm")
    ax_loss.set_xlabel("step")
    ax_loss.set_yscale("log")
    ax_loss.set_title("training loss")
    ax_loss.legend()
    val = [r for r in epochs if r.get("val_disp") is not None]
    if val:
        ep = [r["epoch"] for r in val]
        for key in ("val_lssim", "val_iou"):
            ax_val.plot(ep, [r[key] for r in val], "o-", label=key[4:])
        ax_disp = ax_val.twinx()
        ax_disp.plot(ep, [r["val_disp"] for r in val], "s--", color="tab:red", label="disp (right)")
        ax_disp.set_ylabel("Disp")
        handles = ax_val.get_legend_handles_labels()
        twin = ax_disp.get_legend_handles_labels()
        ax_val.legend(handles[0] + twin[0], handles[1] + twin[1], loc="center right")
    ax_val.set_xlabel("epoch")
    ax_val.set_title("validation")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    out = run_dir / "loss.png"
    atomic_write_bytes(out, buf.getvalue())
    return out


class _TensorBoard:
    """TensorBoard scalars if ``tensorboard`` is importable, else nothing."""

    def __init__(self, log_dir: Path, enabled: bool) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.debug("tensorboard not installed: logging to CSV only")
            return
        self.writer = SummaryWriter(str(log_dir))

    def scalars(self, step: int, values: dict[str, float | None]) -> None:
        if self.writer is not None:
            for k, v in values.items():
                if v is not None:
                    self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------

class _Trainer:
    """State of one run; :func:`train` drives it."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        self.dist = _init_distributed(use_cuda)
        self.device = resolve_device(cfg, self.dist.local_rank)
        self.precision = resolve_precision(cfg, self.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        if cfg.optim.batch_size % self.dist.world:
            raise ValueError(f"optim.batch_size={cfg.optim.batch_size} must be divisible by the "
                             f"{self.dist.world} processes (it is the global batch)")
        self.out = Path(cfg.out_dir)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)

        train_dir, val_dir = split_dirs(cfg)
        size = cfg.model.input_size
        self.train_set = StratDataset(train_dir, cfg.category, size, skip_bad=cfg.skip_bad)
        self.val_set = (StratDataset(val_dir, cfg.category, size, skip_bad=cfg.skip_bad)
                        if val_dir is not None else None)
        if len(self.train_set) == 0:
            raise ValueError(f"{train_dir}: the training split is empty")
        samples = TrainSamples(self.train_set, cfg)
        self.sampler = EpochSampler(samples, self.dist.world, self.dist.rank, cfg.seed)
        workers = _auto_workers(cfg)
        self.per_rank_batch = cfg.optim.batch_size // self.dist.world
        self.loader = DataLoader(
            samples, batch_size=self.per_rank_batch, sampler=self.sampler, num_workers=workers,
            collate_fn=collate, pin_memory=self.device.type == "cuda", drop_last=False, worker_init_fn=_worker_init,
            persistent_workers=workers > 0, prefetch_factor=cfg.prefetch_factor if workers > 0 else None)
        self.batches_per_epoch = math.ceil(len(self.sampler.inner) / self.per_rank_batch)

        self.net = build_model(cfg).to(self.device, memory_format=self.memory_format)
        self.model: torch.nn.Module = self.net
        if self.dist.enabled:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.dist.local_rank] if self.device.type == "cuda" else None)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step / self.batches_per_epoch, cfg.optim))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.epoch = 0
        self.batches_done = 0
        self.step = 0
        self.best: float | None = None
        self.epoch_rows: list[dict[str, Any]] = []
        self.step_rows: list[dict[str, Any]] = []
        self.mean_quad: list[list[float]] | None = None
        self.tb: _TensorBoard | None = None
        self._interrupted = False

    # -------------------------------------------------------------- checkpoints
    def _meta(self, metrics: dict[str, float] | None = None) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "train_config": self.cfg.to_dict(),
                "category": self.cfg.category, "precision": self.precision, "world_size": self.dist.world,
                "metrics": metrics or {}, "mean_quad_norm": self.mean_quad,
                "train_split": str(self.train_set.split_dir), "train_size": len(self.train_set),
                "hardware": hardware_line()}

    def save(self, name: str, metrics: dict[str, float] | None = None) -> Path:
        """Write ``name`` in the run folder (rank 0 only); atomic."""
        path = self.out / name
        train_state = {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "epoch": self.epoch, "batches_done": self.batches_done,
            "step": self.step, "best": self.best, "rng": _rng_state(),
        }
        save_checkpoint(path, self.net.state_dict(), self.cfg.model, meta=self._meta(metrics),
                        train_state=train_state)
        return path

    def resume(self, path: Path) -> None:
        """Restore model, optimizer, scheduler, scaler, counters and RNG from ``path``."""
        blob = load_checkpoint(path)
        saved = ModelConfig.from_dict(blob["model_config"])
        if saved != self.cfg.model:
            diff = {k: (v, getattr(self.cfg.model, k)) for k, v in vars(saved).items()
                    if getattr(self.cfg.model, k) != v}
            raise ValueError(f"cannot resume from {path}: its model config differs from this run's: "
                             f"{ {k: f'{a} (checkpoint) vs {b}' for k, (a, b) in diff.items()} }")
        state = blob.get("train_state")
        if state is None:
            raise ValueError(f"cannot resume from {path}: it has no 'train_state' (a weights-only checkpoint)")
        self.net.load_state_dict(blob["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.batches_done = int(state["batches_done"])
        self.step = int(state["step"])
        self.best = state.get("best")
        _set_rng_state(state["rng"])
        self.mean_quad = blob.get("meta", {}).get("mean_quad_norm")
        # Rows of completed epochs only (a row's "epoch" counts completed epochs).
        self.epoch_rows = [r for r in _read_csv(self.out / "log.csv") if r["epoch"] is not None
                           and r["epoch"] <= self.epoch]
        self.step_rows = [r for r in _read_csv(self.out / "steps.csv") if r["step"] is not None
                          and r["step"] <= self.step]
        log.info("resumed from %s at epoch %d (+%d batches), step %d", path, self.epoch, self.batches_done, self.step)

    # -------------------------------------------------------------- validation
    def validate(self) -> dict[str, float]:
        """Metrics of the current weights on the validation split (rank 0)."""
        from realtime.backends.torch_backend import TorchBackend

        backend = TorchBackend(self.net, device=str(self.device),
                               precision="bf16" if self.precision == "bf16" else "fp32",
                               channels_last=self.cfg.channels_last)
        try:
            summary = evaluate_backend(backend, self.val_set, limit=self.cfg.val_limit, progress=False).metrics
        finally:
            self.net.train()
        return summary.as_dict()

    # -------------------------------------------------------------- one epoch
    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch (or its remainder after a mid-epoch resume); returns its log row."""
        cfg = self.cfg
        self.model.train()
        if cfg.freeze_bn:
            freeze_batchnorm(self.model)
        skip = self.batches_done * self.per_rank_batch
        self.sampler.set_epoch(self.epoch, skip)
        sums = {"loss": 0.0, "hm": 0.0, "sm": 0.0, "n": 0.0}
        bar = None
        if self.dist.is_main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.batches_per_epoch, initial=self.batches_done,
                       desc=f"epoch {self.epoch + 1}/{cfg.optim.epochs}", leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        seen = 0
        for batch in self.loader:
            bg = batch["background"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            fg = batch["foreground"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            target = batch["heatmaps"].to(self.device, non_blocking=True)
            labels = batch["parsing"].to(self.device, non_blocking=True) if cfg.model.semantic else None
            with autocast_context(self.device, self.precision):
                hm, sem = self.model(bg, fg)
            loss, parts = total_loss(hm, target, sem, labels, cfg.loss)
            if not math.isfinite(parts["total"]):
                raise FloatingPointError(f"non-finite loss {parts} at epoch {self.epoch + 1}, step {self.step}: the "
                                         f"run diverged (lower optim.lr, or check the data); checkpoints written "
                                         f"before it in {self.out} are kept")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.step += 1
            self.batches_done += 1
            if self._interrupted:  # Ctrl-C arrived during the step: stop at this consistent point
                raise KeyboardInterrupt
            n = bg.shape[0]
            seen += n
            sums["loss"] += parts["total"] * n
            sums["hm"] += parts["hm"] * n
            sums["sm"] += parts.get("sm", 0.0) * n
            sums["n"] += n
            if self.dist.is_main and (self.step % cfg.log_every == 0 or self.batches_done == self.batches_per_epoch):
                lr = self.optimizer.param_groups[0]["lr"]
                row = {"step": self.step, "epoch": self.epoch + self.batches_done / self.batches_per_epoch, "lr": lr,
                       "loss": parts["total"], "loss_hm": parts["hm"], "loss_sm": parts.get("sm")}
                self.step_rows.append(row)
                if self.tb:
                    self.tb.scalars(self.step, {"train/loss": row["loss"], "train/loss_hm": row["loss_hm"],
                                                "train/loss_sm": row["loss_sm"], "train/lr": lr})
            if bar is not None:
                rate = seen * self.dist.world / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{sums['loss'] / sums['n']:.4f}", samples_s=f"{rate:.1f}", refresh=False)
                bar.update(1)
        elapsed = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        totals = torch.tensor([sums["loss"], sums["hm"], sums["sm"], sums["n"], float(seen)], dtype=torch.float64)
        if self.dist.enabled:
            totals = totals.to(self.device)
            dist.all_reduce(totals)
            totals = totals.cpu()
        loss_sum, hm_sum, sm_sum, count, seen_all = totals.tolist()
        count = max(count, 1.0)
        return {"epoch": self.epoch + 1, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                "loss": loss_sum / count, "loss_hm": hm_sum / count,
                "loss_sm": sm_sum / count if cfg.model.semantic else None,
                "samples_per_s": seen_all / max(elapsed, 1e-9), "epoch_time_s": elapsed}

    # -------------------------------------------------------------- the run
    def close_workers(self) -> None:
        """Shut the persistent DataLoader workers down now. They ignore SIGTERM (see
        :func:`_worker_init`), so left to interpreter exit, multiprocessing's SIGTERM to its
        daemonic children would never end them and the exit would wait on them for ever."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None

    def fit(self) -> Path:
        cfg = self.cfg
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.out / "config.yaml", cfg.to_yaml().encode())
        last = self.out / LAST
        if cfg.resume:
            if not last.is_file():
                raise FileNotFoundError(f"--resume: no checkpoint at {last}")
            self.resume(last)
        elif self.dist.is_main and last.exists():
            log.warning("%s exists and --resume was not given: starting over and overwriting it", last)
        if self.mean_quad is None and self.dist.is_main:
            self.mean_quad = mean_quad_norm(self.train_set).tolist()
        self.tb = _TensorBoard(self.out / "tb", self.dist.is_main)
        better = BEST_METRICS[cfg.best_metric]
        restore = self._catch_sigint()
        log.info("training %s: %d train / %s val samples, %d epochs, global batch %d on %d process(es), %s %s",
                 cfg.category, len(self.train_set), len(self.val_set) if self.val_set else 0, cfg.optim.epochs,
                 cfg.optim.batch_size, self.dist.world, self.device, self.precision)
        try:
            while self.epoch < cfg.optim.epochs:
                if self._interrupted:  # Ctrl-C during validation or saving
                    raise KeyboardInterrupt
                row = self.run_epoch()
                self.epoch += 1
                self.batches_done = 0
                final = self.epoch == cfg.optim.epochs
                metrics: dict[str, float] = {}
                do_val = self.val_set is not None and (final or (cfg.eval_every > 0
                                                                 and self.epoch % cfg.eval_every == 0))
                if self.dist.is_main:
                    if do_val:
                        metrics = self.validate()
                        row.update({f"val_{k}": metrics[k] for k in ("lssim", "iou", "disp")}, val_n=metrics["n"])
                    self.epoch_rows.append(row)
                    self._log_epoch(row)
                    if metrics and metrics["non_finite"]:
                        log.warning("validation: %d of %d outputs were not finite (NaN/inf), not scored",
                                    metrics["non_finite"], metrics["n"] + metrics["non_finite"])
                    if metrics and math.isfinite(metrics[cfg.best_metric]):
                        value = metrics[cfg.best_metric]
                        if self.best is None or (value > self.best if better else value < self.best):
                            self.best = value
                            self.save(BEST, metrics)
                    if final or self.epoch % cfg.save_every == 0:
                        self.save(LAST, metrics)
                        plot_losses(self.out)
                if self.dist.enabled:
                    dist.barrier()
        except KeyboardInterrupt:
            if self.dist.is_main:
                path = self.save(LAST)
                self._write_logs()
                log.warning("interrupted: wrote %s at epoch %d + %d batches (resume with --resume)",
                            path, self.epoch, self.batches_done)
            raise
        finally:
            restore()
            self.close_workers()
            if self.tb:
                self.tb.close()
        return last

    def _catch_sigint(self):
        """Defer the first Ctrl-C or SIGTERM (``kill``, a job scheduler) to the end of the current
        step, which then writes ``last.pt`` (resumable); a second one acts at once.

        Returns:
            A function restoring the previous handlers.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        sigs = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.getsignal(sig) for sig in sigs}

        # The second signal: Ctrl-C's own handler (KeyboardInterrupt); for SIGTERM, whose default
        # kills at once with no last.pt, the same KeyboardInterrupt.
        second = {sig: previous[sig] if callable(previous[sig]) else _terminate_now for sig in sigs}

        def handler(signum, frame):
            log.warning("%s received: stopping after this step and writing %s", signal.Signals(signum).name, LAST)
            self._interrupted = True
            for sig in sigs:
                signal.signal(sig, second[sig])

        for sig in sigs:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig in sigs:
                signal.signal(sig, previous[sig] if previous[sig] is not None else signal.SIG_DFL)

        return restore

    def _write_logs(self) -> None:
        _write_csv(self.out / "log.csv", EPOCH_COLUMNS, self.epoch_rows)
        _write_csv(self.out / "steps.csv", STEP_COLUMNS, self.step_rows)

    def _log_epoch(self, row: dict[str, Any]) -> None:
        self._write_logs()
        if self.tb:
            self.tb.scalars(self.step, {"epoch/loss": row["loss"], "epoch/samples_per_s": row["samples_per_s"],
                                        "val/lssim": row.get("val_lssim"), "val/iou": row.get("val_iou"),
                                        "val/disp": row.get("val_disp")})
        val = (f", val LSSIM {row['val_lssim']:.4f} IoU {row['val_iou']:.4f} Disp {row['val_disp']:.4f}"
               if row.get("val_disp") is not None else "")
        log.info("epoch %d/%d: loss %.4f, %.1f samples/s, lr %.2e%s", row["epoch"], self.cfg.optim.epochs,
                 row["loss"], row["samples_per_s"], row["lr"], val)

    def close(self) -> None:
        if self.dist.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _terminate_now(signum, frame):
    """A second SIGTERM: stop at once (as Ctrl-C's second press does), through the same clean-up."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def train(cfg: TrainConfig) -> Path:
    """Train per ``cfg``; returns the path of the final ``last.pt``.

    Under ``torchrun`` (WORLD_SIZE > 1) this runs DistributedDataParallel: every process
    calls :func:`train`; only rank 0 writes files. Ctrl-C or SIGTERM writes ``last.pt``
    (resumable) and re-raises KeyboardInterrupt.

    Raises:
        ValueError: bad config or data (message names the key or file).
        FileNotFoundError: missing data, or ``resume`` without a ``last.pt``.
    """
    trainer = _Trainer(cfg)
    try:
        return trainer.fit()
    finally:
        trainer.close()


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = command_parser(
        "tryon train", "Train the keypoint-hallucination network for one accessory category (paper Sec. 4.2).",
        ["tryon train --config lite --category glasses --data data/pseudo_strat/glasses --out runs/glasses_lite",
         "tryon train --out runs/glasses_lite --resume"],
        epilog="Config precedence: model preset < --config YAML < --set overrides; presets in\n"
               "training/configs (paper, lite). Several processes (DDP): torchrun --standalone\n"
               "--nproc_per_node=2 -m training.train ... (optim.batch_size stays the global batch).")
    p.add_argument("--category", choices=CATEGORIES,
                   help="accessory category (optional with --resume: taken from RUN_DIR/config.yaml)")
    p.add_argument("--data", help="STRAT root (train/ [test/]) or a split dir")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, config.yaml)")
    p.add_argument("--config", help="YAML config, or the name of a preset in training/configs (paper, lite)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.epochs=10 (repeatable)")
    p.add_argument("--model-preset", choices=("paper", "lite", "tiny"), help="model preset (default: paper)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    return p


def main(argv: list[str] | None = None) -> int:
    """``tryon train``: parse, resolve the config, call :func:`train`."""
    args = _parser().parse_args(argv)
    config = args.config
    if config is not None and not Path(config).exists() and "/" not in config and not config.endswith(".yaml"):
        from training.config import preset_path

        config = str(preset_path(config))
    saved = Path(args.out) / "config.yaml"
    if args.resume and config is None and saved.is_file():
        config = str(saved)  # a resumed run keeps its resolved config unless told otherwise
    if args.category is None and not (args.resume and config is not None):
        raise ValueError("--category is required (except with --resume on a run folder that has config.yaml)")
    cfg = resolve_train_config(args.category, config, args.overrides, args.model_preset)
    cfg.out_dir = args.out
    cfg.resume = args.resume
    if args.data:
        cfg.data = args.data
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # torchrun -m training.train ...
    sys.exit(main())
