"""Configuration: the model schema, the per-category facts, and the one config loader.

Every configurable value lives in a dataclass here (or in ``training.config`` for the
training recipe, which reuses :func:`load_config`). A YAML file and ``--set key=value``
overrides go through :func:`load_config`; the resolved config is saved beside every
output and inside every checkpoint, ONNX file and engine.

``ModelConfig`` lives here rather than in ``realtime.model`` so that the runtime
(ONNX Runtime / TensorRT backends, the live loop) can read and validate it without
importing torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

#: The accessory categories and what the paper fixes for each (Sec. 4.2):
#: input size 224 for glasses/hat, 448 for tie; 12 face classes or 8 body classes.
CATEGORIES: tuple[str, ...] = ("glasses", "hat", "tie")
#: File suffixes read as images (accessories, photos, datasets), lower case; a dataset sample
#: stored under several of them is read from the first in this order.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: Semantic classes, paper Sec. 4.2, in the order used for our label ids (0..C-1).
FACE_CLASSES: tuple[str, ...] = (
    "background", "hair", "hat", "eyebrows", "glasses", "eyes",
    "nose", "mouth", "skin", "neck", "ears", "clothing",
)
BODY_CLASSES: tuple[str, ...] = (
    "background", "head", "upper", "lower", "arms", "legs", "shoes", "bags",
)
#: Label value meaning "unknown here, do not supervise" in every parsing mask we write.
IGNORE_INDEX = 255

_CATEGORY_SIZE = {"glasses": 224, "hat": 224, "tie": 448}


def category_input_size(category: str) -> int:
    """Network input size the paper uses for ``category`` (Sec. 4.2)."""
    check_category(category)
    return _CATEGORY_SIZE[category]


def category_classes(category: str) -> tuple[str, ...]:
    """Semantic class names for ``category``: face classes for glasses/hat, body for tie."""
    check_category(category)
    return BODY_CLASSES if category == "tie" else FACE_CLASSES


def check_category(category: str) -> str:
    """Return ``category`` or raise a ``ValueError`` listing the valid ones."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown accessory category {category!r}; expected one of {', '.join(CATEGORIES)}")
    return category


#: ImageNet normalisation for the RGB channels (torchvision's constants); the
#: foreground mask channel is not normalised (SPEC section 3).
IMAGENET_MEAN_RGB: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Canonical keypoint order: the accessory's bounding-box corners (SPEC section 2).
CORNER_NAMES: tuple[str, ...] = ("top_left", "top_right", "bottom_right", "bottom_left")

FUSIONS = ("daf", "daf_simple", "add", "none")
HEATMAP_ACTIVATIONS = ("sigmoid", "tanh01")


@dataclass
class CodecConfig:
    """Heatmap targets and decoding (SPEC section 2).

    Attributes:
        radius: Gaussian "radius" g of the target heatmaps in heatmap pixels (paper: 20).
        sigma_mode: ``"centernet"``: sigma = (2g+1)/6 (about 6.83 px for g=20) [I];
            ``"radius"``: sigma = g.
        beta: soft-argmax temperature (paper Eq. 4: 1000). Always evaluated in float32.
        refine: ``"none"`` is the paper's pure soft-argmax, which with beta=1000 on a
            peak-1 heatmap is within a hair of argmax and so snaps to whole pixels;
            ``"quadratic"`` adds a sub-pixel step: a parabola through the log-heatmap
            at the peak (exact for a Gaussian; Zhang et al., "Distribution-Aware
            Coordinate Representation", CVPR 2020). Default ``"quadratic"`` [I], since
            whole-pixel snapping at 224 px shows as jitter in the live view.
        complete_below: a corner whose heatmap peak is below this is replaced by the
            accessory's shape through the confident corners
            (:func:`realtime.geometry.complete_quad`; needs two of them); 0 = off. Our
            choice [I]: a tie's lower corners often hang out of the picture into the
            black padding, where the network's heatmap is flat and its argmax meaningless.
    """

    radius: float = 20.0
    sigma_mode: str = "centernet"
    beta: float = 1000.0
    refine: str = "quadratic"
    complete_below: float = 0.3

    @property
    def sigma(self) -> float:
        """Gaussian standard deviation in heatmap pixels."""
        if self.sigma_mode == "centernet":
            return (2.0 * self.radius + 1.0) / 6.0
        if self.sigma_mode == "radius":
            return float(self.radius)
        raise ValueError(f"codec.sigma_mode must be 'centernet' or 'radius', got {self.sigma_mode!r}")


@dataclass
class ModelConfig:
    """The network (SPEC section 1). ``paper`` preset = the defaults with a category.

    Attributes:
        category: accessory category; fixes the semantic classes.
        input_size: square network input (224 or 448); heatmaps come out at this size.
        width_mult: channel multiplier for encoders and decoders (1.0 = ResNet18).
        fusion: ``daf`` (paper), ``daf_simple`` (DAF(s) ablation), ``add``, or ``none``
            (no foreground, Table 2 rows 1-2).
        semantic: keep the semantic decoder (False = the ``w/o sm`` variant).
        heatmap_activation: ``sigmoid`` or ``tanh01`` = (tanh+1)/2 [I].
        spectral_norm: wrap decoder convs in spectral norm as GCA does [I, default off].
        cbam_reduction: CBAM channel-MLP reduction (CBAM paper: 16).
        decoder_blocks: residual blocks per decoder stage (GCA shortcut decoder: 2,3,3,2).
        codec: heatmap target / decoding settings.
    """

    category: str = "glasses"
    input_size: int = 224
    width_mult: float = 1.0
    fusion: str = "daf"
    semantic: bool = True
    heatmap_activation: str = "sigmoid"
    spectral_norm: bool = False
    cbam_reduction: int = 16
    decoder_blocks: tuple[int, int, int, int] = (2, 3, 3, 2)
    codec: CodecConfig = field(default_factory=CodecConfig)

    def __post_init__(self) -> None:
        check_category(self.category)
        if self.input_size % 32 != 0 or self.input_size < 64:
            raise ValueError(f"model.input_size must be a multiple of 32 and >= 64, got {self.input_size}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"model.fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.heatmap_activation not in HEATMAP_ACTIVATIONS:
            raise ValueError(
                f"model.heatmap_activation must be one of {HEATMAP_ACTIVATIONS}, got {self.heatmap_activation!r}")
        if not 0.0 < self.width_mult <= 4.0:
            raise ValueError(f"model.width_mult must be in (0, 4], got {self.width_mult}")
        self.decoder_blocks = tuple(int(b) for b in self.decoder_blocks)  # YAML gives lists
        if len(self.decoder_blocks) != 4 or min(self.decoder_blocks) < 1:
            raise ValueError(f"model.decoder_blocks must be 4 positive ints, got {self.decoder_blocks}")

    @property
    def num_classes(self) -> int:
        """Number of semantic classes for this category."""
        return len(category_classes(self.category))

    def channels(self, base: int) -> int:
        """Channel count for a ResNet18 width ``base`` under the width multiplier."""
        return max(8, int(round(base * self.width_mult)))

    @property
    def feature_channels(self) -> int:
        """Channels of F_b / F_f at the bottleneck (512 for the paper network)."""
        return self.channels(512)

    @property
    def feature_size(self) -> int:
        """Spatial size of F_b / F_f (input / 32)."""
        return self.input_size // 32

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the key."""
        return from_dict(cls, data)

    def hash(self) -> str:
        """Short stable hash of the resolved config, stored in exported artifacts."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def model_preset(name: str, category: str) -> ModelConfig:
    """Named model configurations.

    ``paper``: SPEC section 1 as specified. ``lite``: width 0.5 (about a quarter of the
    FLOPs), for CPU live use and small shipped weights.
    """
    size = category_input_size(category)
    if name == "paper":
        return ModelConfig(category=category, input_size=size)
    if name == "lite":
        return ModelConfig(category=category, input_size=size, width_mult=0.5)
    if name == "tiny":  # for tests and CI only: fast on 2 CPU cores
        return ModelConfig(category=category, input_size=min(size, 128), width_mult=0.125,
                           decoder_blocks=(1, 1, 1, 1))
    raise ValueError(f"unknown model preset {name!r}; expected paper, lite or tiny")


# --------------------------------------------------------------------------------------
# The one loader: dataclass schema <- YAML file <- --set key=value overrides
# --------------------------------------------------------------------------------------

T = TypeVar("T")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a ``--set`` string) to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"config key {key!r}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(args[0], value, key)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.strip("()[] ").split(",") if v.strip()]
        args = typing.get_args(tp)
        elem = args[0] if args else str
        return tuple(_coerce(elem, v, key) for v in value)
    if tp is bool:
        if isinstance(value, str):
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"config key {key!r}: expected a boolean, got {value!r}")
        return bool(value)
    if tp in (int, float) and (isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in
                                                           ("true", "false", "yes", "no", "on", "off"))):
        raise ValueError(f"config key {key!r}: expected {tp.__name__}, got the boolean {value!r}")
    if tp is int:
        return _coerce_int(value, key)
    if tp in (float, str):
        try:
            out = tp(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"config key {key!r}: expected {tp.__name__}, got {value!r}") from exc
        if tp is float and math.isnan(out):
            raise ValueError(f"config key {key!r}: expected a number, got {value!r}")
        return out
    return value


def _coerce_int(value: Any, key: str) -> int:
    """An integer as given: ``2`` or ``"2"`` (``2.0`` too); never a fraction cut to an integer."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)  # "2"
        except ValueError:
            pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"config key {key!r}: expected an integer, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"config key {key!r}: expected an integer, got {value!r}")
    if not number.is_integer():
        raise ValueError(f"config key {key!r}: expected an integer, got {value!r} (a fraction is not "
                         f"rounded: give a whole number)")
    return int(number)


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict, coercing types; unknown keys raise."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; "
                         f"valid keys: {', '.join(prefix + n for n in sorted(names))}")
    kwargs = {k: _coerce(hints[k], v, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _set_nested(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {dotted}: {part!r} is not a section")
    node[parts[-1]] = value


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into a nested dict (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        _set_nested(out, key.strip(), _yaml_scalar(raw))
    return out


def _yaml_scalar(raw: str) -> Any:
    import yaml  # lazy: only the loader needs it

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``over`` into a copy of ``base``."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> T:
    """The one config loader: ``base`` dict <- YAML file at ``path`` <- ``--set`` overrides.

    Raises:
        FileNotFoundError: ``path`` does not exist (message names it).
        ValueError: a key is unknown or a value has the wrong type (message names the key).
    """
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {p}: top level must be a mapping")
        data = deep_merge(data, loaded)
    data = deep_merge(data, parse_overrides(overrides))
    return from_dict(cls, data)
