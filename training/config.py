"""The training recipe as a dataclass schema (paper Sec. 4.2, SPEC section 3).

:class:`TrainConfig` nests the network (:class:`realtime.config.ModelConfig`), the loss
(:class:`training.losses.LossConfig`), the optimiser schedule (:class:`OptimConfig`) and
the augmentation (:class:`training.augment.AugmentConfig`). It is loaded with THE config
loader, :func:`realtime.config.load_config` (dataclass <- YAML <- ``--set key=value``);
:func:`resolve_train_config` adds the one step specific to training: the model preset
(``paper``/``lite``/``tiny``) for the category is the base the YAML and the overrides
are applied on top of. The resolved config is saved as ``RUN_DIR/config.yaml`` and
inside every checkpoint.

Precedence, lowest first: dataclass defaults < model preset for the category < YAML
file < ``--set`` overrides. A YAML preset may name its model preset with a top-level
``model_preset:`` key; ``--model-preset`` on the command line wins over it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realtime.config import ModelConfig, check_category, load_config, model_preset
from training.augment import AugmentConfig
from training.losses import LossConfig

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
#: Validation metrics that can select ``best.pt``, with True where higher is better.
BEST_METRICS = {"lssim": True, "iou": True, "disp": False}
#: Folder with the YAML presets shipped with the package.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class OptimConfig:
    """Optimiser and schedule (paper Sec. 4.2).

    Attributes:
        lr: Adam learning rate (paper: 2e-4).
        weight_decay: Adam (L2) weight decay (paper: 1e-5).
        batch_size: GLOBAL batch size (paper: 32); under DDP each of the W processes
            takes ``batch_size / W`` samples, so the optimisation is the same.
        epochs: training epochs (paper: 40).
        decay_start_epoch: the learning rate stays at ``lr`` until this epoch, then
            falls linearly to ``final_lr`` at the end of the last epoch (paper: "the
            learning rate decreasing linearly from epoch 10 to 0.00005"). Stepped per
            iteration [I: the paper does not say per epoch or per iteration].
        final_lr: learning rate reached at the end of training (paper: 5e-5).
        grad_clip: clip the global gradient norm to this value; 0 = off (paper: off).
    """

    lr: float = 2e-4
    weight_decay: float = 1e-5
    batch_size: int = 32
    epochs: int = 40
    decay_start_epoch: float = 10.0
    final_lr: float = 5e-5
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.final_lr < 0:
            raise ValueError(f"optim.lr must be > 0 and optim.final_lr >= 0, got {self.lr}, {self.final_lr}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"optim.batch_size and optim.epochs must be >= 1, got {self.batch_size}, {self.epochs}")


def lr_factor(epoch_float: float, optim: OptimConfig) -> float:
    """Multiplier on ``optim.lr`` at a (fractional) epoch: flat, then linear to ``final_lr``.

    ``epoch_float`` counts from 0 at the first step; ``optim.epochs`` is the end of
    training, where the learning rate equals ``final_lr``.
    """
    start = min(optim.decay_start_epoch, float(optim.epochs))
    if epoch_float <= start or optim.epochs <= start:
        return 1.0
    t = min((epoch_float - start) / (optim.epochs - start), 1.0)
    end = optim.final_lr / optim.lr
    return 1.0 + (end - 1.0) * t


@dataclass
class TrainConfig:
    """Everything one training run needs; saved as ``RUN_DIR/config.yaml``.

    Attributes:
        data: dataset root holding ``train/`` (and optionally ``test/``) split folders,
            or a single split folder used for training only.
        out_dir: run folder (checkpoints, logs, plots, the resolved config).
        model_preset: name of the model preset the ``model`` section started from.
        model: the network; ``model.category`` is the accessory category.
        loss: the loss (``loss.heatmap`` switches the Table 2 loss ablations).
        optim: optimiser and learning-rate schedule.
        augment: data augmentation (off in the paper preset).
        train_split, val_split: split folder names under ``data``; ``val_split: null``
            turns validation (and ``best.pt``) off.
        val_limit: evaluate at most this many validation samples (0 = all).
        best_metric: validation metric that selects ``best.pt`` (lssim, iou or disp).
        seed: seeds model init, data order and augmentation.
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``.
        precision: ``auto`` = bf16 autocast on CPU, fp16 autocast + GradScaler on CUDA;
            or ``fp32``/``bf16``/``fp16`` explicitly.
        channels_last: channels-last memory format for the convolutions.
        threads: torch intra-op threads per process (0 = torch's default).
        num_workers: DataLoader worker processes per training process (-1 = auto:
            a quarter of the CPUs, at least 1, at most 8).
        prefetch_factor: batches each worker prepares ahead.
        skip_bad: skip malformed dataset entries instead of raising.
        init_bg_encoder, init_fg_encoder: optional torchvision-format ResNet18 weight
            files for the encoders (width_mult must be 1.0).
        init_from: optional tryon checkpoint to warm-start from: every tensor whose
            name and shape match is copied (e.g. a hat or tie model started from the
            trained glasses model, since no ImageNet weights exist here); the rest keep
            their fresh initialisation. Ignored on ``--resume``.
        freeze_bn: keep every BatchNorm layer in eval mode while training: its running
            statistics stay those of the starting weights (its affine parameters still
            learn). For fine-tuning a warm-started model with small batches, whose batch
            statistics are noisier than the ones the model was trained with.
        log_every: steps between progress-bar / TensorBoard updates and rows of
            ``steps.csv``.
        eval_every: epochs between validations (0 = never; the last epoch is always
            validated when a validation split exists).
        save_every: epochs between writes of ``last.pt`` (the last epoch always writes).
        progress: show a tqdm progress bar (rank 0 only).
        resume: continue from ``out_dir/last.pt``.
    """

    data: str = ""
    out_dir: str = "runs/train"
    model_preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train_split: str = "train"
    val_split: str | None = "test"
    val_limit: int = 0
    best_metric: str = "disp"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    threads: int = 0
    num_workers: int = -1
    prefetch_factor: int = 4
    skip_bad: bool = False
    init_bg_encoder: str | None = None
    init_fg_encoder: str | None = None
    init_from: str | None = None
    freeze_bn: bool = False
    log_every: int = 10
    eval_every: int = 1
    save_every: int = 1
    progress: bool = True
    resume: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.best_metric not in BEST_METRICS:
            raise ValueError(f"best_metric must be one of {tuple(BEST_METRICS)}, got {self.best_metric!r}")
        for name in ("log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def category(self) -> str:
        """The accessory category (``model.category``)."""
        return self.model.category

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`, loadable again with :func:`load_train_config`."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def preset_path(name: str) -> Path:
    """Path of a shipped YAML preset (``paper``, ``lite``, ...) in ``training/configs``."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no training preset {name!r} in {CONFIG_DIR}; available: {', '.join(names)}")
    return path


def _read_yaml(path: str | Path | None) -> dict[str, Any]:
    """The top-level mapping of a YAML file ({} for None)."""
    if path is None:
        return {}
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    loaded = yaml.safe_load(p.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {p}: top level must be a mapping")
    return loaded


def resolve_train_config(category: str | None, config_path: str | Path | None = None,
                         overrides: list[str] | None = None, model_preset_name: str | None = None,
                         ) -> TrainConfig:
    """Build a :class:`TrainConfig`: model preset for the category <- YAML <- overrides.

    Args:
        category: accessory category; None takes ``model.category`` from the YAML file
            (a resumed run's ``config.yaml``).
        config_path: a YAML file (a preset from ``training/configs`` or a saved
            ``config.yaml``), or None for the dataclass defaults.
        overrides: ``["optim.lr=1e-4", "model.fusion=add", ...]``.
        model_preset_name: ``paper``/``lite``/``tiny``; wins over the YAML's
            ``model_preset`` key; default ``paper``.

    Raises:
        ValueError: unknown key, bad value, or a category that contradicts the YAML.
    """
    yaml_data = _read_yaml(config_path)
    yaml_category = (yaml_data.get("model") or {}).get("category")
    if category is None:
        if yaml_category is None:
            raise ValueError("no accessory category: pass --category or a config with model.category")
        category = yaml_category
    check_category(category)
    if yaml_category is not None and yaml_category != category:
        raise ValueError(f"--category {category} contradicts model.category: {yaml_category} in {config_path}")
    preset = model_preset_name or yaml_data.get("model_preset") or "paper"
    base = {"model_preset": preset, "model": model_preset(preset, category).to_dict()}
    extra = list(overrides or [])
    if model_preset_name is not None:
        extra.insert(0, f"model_preset={model_preset_name}")
    cfg = load_config(TrainConfig, config_path, extra, base=base)
    if cfg.model.category != category:
        raise ValueError(f"model.category was overridden to {cfg.model.category!r} but the run is for {category!r}")
    return cfg


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Load a saved, fully resolved ``config.yaml`` (e.g. of a run being resumed)."""
    return load_config(TrainConfig, path, overrides)
