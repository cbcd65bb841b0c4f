"""Self-describing deployment artifacts: the metadata schema, its checks, and file names.

ONNX graphs (``tryon export``) and TensorRT engines (``tryon build-engine``) carry the same
metadata (:class:`ArtifactMeta`): what the graph is (foreground encoder or per-frame graph),
for which accessory category and input size, the full model config and its hash, the input
normalisation and corner order it was trained with, its precision, where it came from
(checkpoint sha256, export time, tryon version). ONNX files store it as ``metadata_props``
(string -> string); engines store it inside their JSON header
(:mod:`realtime.backends.engine_file`), next to the TensorRT version and the GPU.

The runtime refuses an artifact whose metadata does not fit, with a message that says what
to rebuild (:func:`check_meta`, :func:`check_engine_header`).

File names say what an artifact is (:func:`artifact_name`)::

    glasses_224_fg_fp32.onnx                 foreground encoder, run once per accessory
    glasses_224_frame_fp32.onnx              per-frame graph
    glasses_224_frame_fp16.onnx              its FP16 variant (float32 I/O)
    glasses_224_frame_fp16_sm86_trt10.engine TensorRT 10 engine for compute capability 8.6

This module needs neither torch nor onnx nor TensorRT.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from realtime import __version__
from realtime.config import CORNER_NAMES, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, ModelConfig, check_category
from realtime.errors import BackendError

#: Version tag of the metadata schema below (bump when keys change meaning).
META_FORMAT = "tryon-artifact-v1"
#: Graph roles: the foreground encoder (RGBA accessory -> F_f) and the per-frame graph.
GRAPH_ROLES = ("fg", "frame")
PRECISIONS = ("fp32", "fp16")

# --------------------------------------------------------------------------------------
# The one graph I/O table: tensor names and shapes per graph role
# --------------------------------------------------------------------------------------
#
#     fg graph     foreground (1, 4, S, S) float32  ->  f_f (1, C, s, s)
#     frame graph  background (1, 3, S, S) float32 + f_f (1, C, s, s)  ->  heatmaps (1, 4, S, S)
#                  (+ keypoints (1, 4, 2) when exported with the soft-argmax tail)
#
# Export writes these names; the ONNX Runtime and TensorRT backends check an artifact's
# tensors against :func:`graph_io` before running it.

FG_INPUT = "foreground"
FEATURES = "f_f"
BG_INPUT = "background"
HEATMAPS = "heatmaps"
KEYPOINTS = "keypoints"


@dataclass(frozen=True)
class TensorIO:
    """One tensor every graph of a role must have (float32 at the graph interface)."""

    graph: str  # "fg" or "frame"
    name: str
    is_input: bool
    shape: tuple[int, ...]

    @property
    def mode(self) -> str:
        return "input" if self.is_input else "output"


def graph_io(cfg: ModelConfig) -> tuple[TensorIO, ...]:
    """The tensors of the fg/frame graph pair of a model with config ``cfg``."""
    s, c, fs = cfg.input_size, cfg.feature_channels, cfg.feature_size
    return (
        TensorIO("fg", FG_INPUT, True, (1, 4, s, s)),
        TensorIO("fg", FEATURES, False, (1, c, fs, fs)),
        TensorIO("frame", BG_INPUT, True, (1, 3, s, s)),
        TensorIO("frame", FEATURES, True, (1, c, fs, fs)),
        TensorIO("frame", HEATMAPS, False, (1, 4, s, s)),
    )


class ArtifactMismatchError(BackendError):
    """An artifact's metadata does not fit the request or this runtime (message says what to rebuild)."""


def current_normalization() -> dict[str, Any]:
    """The input normalisation of :mod:`realtime.preprocess`, as stored in artifacts."""
    return {"rgb_mean": list(IMAGENET_MEAN_RGB), "rgb_std": list(IMAGENET_STD_RGB), "rgb_scale": 255.0,
            "mask": "alpha/255, not normalised", "layout": "NCHW RGB(A)"}


def utc_now_iso() -> str:
    """Current UTC time, ISO 8601 to the second (export and build times)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class ArtifactMeta:
    """Metadata of one exported graph (and of the engines built from it).

    Attributes:
        graph: ``fg`` (RGBA accessory -> F_f) or ``frame`` (background + F_f -> heatmaps).
        precision: ``fp32`` or ``fp16`` (weights and activations; I/O is always float32).
        model_config: the resolved :class:`realtime.config.ModelConfig` as a dict.
        config_hash: :meth:`ModelConfig.hash` of ``model_config``; ties fg and frame graphs together.
        outputs: output tensor names (``heatmaps`` and optionally ``keypoints``).
        fg_graph: for a frame graph, the file name of its foreground graph (same folder).
        source_checkpoint_sha256: :func:`realtime.checkpoint.file_sha256` of the checkpoint.
        opset: ONNX opset of the graph.
        fp32_nodes: for an FP16 graph, the ONNX node names kept in float32.
        bf16_check: for an fp32 frame graph, the keypoint check of running it in bf16 on a CPU
            against fp32 (:func:`realtime.backends.openvino_backend.bf16_keypoint_check`); the
            OpenVINO backend runs bf16 only when it passed. Empty: never measured.
    """

    graph: str
    precision: str
    model_config: dict[str, Any]
    config_hash: str = ""
    outputs: list[str] = field(default_factory=lambda: [HEATMAPS])
    fg_graph: str = ""
    normalization: dict[str, Any] = field(default_factory=current_normalization)
    corner_order: list[str] = field(default_factory=lambda: list(CORNER_NAMES))
    source_checkpoint_sha256: str = ""
    source_checkpoint: str = ""
    export_time: str = field(default_factory=utc_now_iso)
    tryon_version: str = __version__
    opset: int = 0
    fp32_nodes: list[str] = field(default_factory=list)
    bf16_check: dict[str, Any] = field(default_factory=dict)
    format: str = META_FORMAT

    def __post_init__(self) -> None:
        if self.graph not in GRAPH_ROLES:
            raise ValueError(f"artifact metadata: graph must be one of {GRAPH_ROLES}, got {self.graph!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"artifact metadata: precision must be one of {PRECISIONS}, got {self.precision!r}")
        cfg = self.config()  # validates the stored config
        if not self.config_hash:
            self.config_hash = cfg.hash()

    # ------------------------------------------------------------------ derived facts
    def config(self) -> ModelConfig:
        """The stored model config as a :class:`ModelConfig` (raises ValueError naming the bad key)."""
        return ModelConfig.from_dict(self.model_config)

    @property
    def category(self) -> str:
        return str(self.model_config["category"])

    @property
    def input_size(self) -> int:
        return int(self.model_config["input_size"])

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (with ``category`` and ``input_size`` spelled out for readers)."""
        out = dataclasses.asdict(self)
        out["category"] = self.category
        out["input_size"] = self.input_size
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "artifact") -> "ArtifactMeta":
        """Inverse of :meth:`to_dict`; extra keys are ignored, missing ones named in the error."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [k for k in ("graph", "precision", "model_config") if k not in data]
        if missing:
            raise ArtifactMismatchError(
                f"{source}: no tryon metadata ({', '.join(missing)} missing); it was not written by "
                f"'tryon export' / 'tryon build-engine'. Re-export with: tryon export --checkpoint CKPT --out DIR")
        fmt = data.get("format", META_FORMAT)
        if fmt != META_FORMAT:
            raise ArtifactMismatchError(f"{source}: metadata format {fmt!r}, this tryon reads {META_FORMAT!r}; "
                                        f"re-export with this version: tryon export --checkpoint CKPT --out DIR")
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except (TypeError, ValueError) as exc:
            raise ArtifactMismatchError(f"{source}: bad tryon metadata: {exc}") from exc

    def to_props(self) -> dict[str, str]:
        """String -> string form for ONNX ``metadata_props`` (non-strings JSON-encoded)."""
        return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in self.to_dict().items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "artifact") -> "ArtifactMeta":
        """Inverse of :meth:`to_props` (ONNX metadata or ONNX Runtime's custom_metadata_map)."""
        data: dict[str, Any] = {}
        names = {f.name for f in dataclasses.fields(cls)}
        for key, raw in props.items():
            if key not in names:
                continue  # other tools' metadata, and the derived category / input_size
            try:
                data[key] = json.loads(raw) if key not in _STRING_KEYS else raw
            except json.JSONDecodeError as exc:
                raise ArtifactMismatchError(f"{source}: metadata key {key!r} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, source)


_STRING_KEYS = {f.name for f in dataclasses.fields(ArtifactMeta) if f.type in ("str", str)}


def _export_hint(meta: ArtifactMeta | None) -> str:
    ckpt = (meta.source_checkpoint if meta and meta.source_checkpoint else "CKPT")
    return f"re-export with: tryon export --checkpoint {ckpt} --out DIR"


def check_meta(meta: ArtifactMeta, source: str, *, graph: str | None = None, category: str | None = None,
               input_size: int | None = None, rebuild_hint: str | None = None) -> ArtifactMeta:
    """Refuse an artifact whose metadata does not fit the request or this code.

    Checks the graph role, the requested accessory category and input size, and that the
    normalisation and corner order are those of this version of :mod:`realtime.preprocess`
    and :mod:`realtime.codec` (an artifact trained with another normalisation would run but
    place accessories wrongly).

    Args:
        meta: the artifact's metadata.
        source: the artifact path, named in the error.
        graph: expected role (``fg`` / ``frame``), or None.
        category: requested accessory category, or None for any.
        input_size: requested input size, or None for any.
        rebuild_hint: the command that makes a fitting artifact (default: the export command).

    Raises:
        ArtifactMismatchError: naming the mismatch and what to rebuild.
    """
    hint = rebuild_hint or _export_hint(meta)
    problems = []
    if graph is not None and meta.graph != graph:
        problems.append(f"it is the {meta.graph!r} graph, expected the {graph!r} graph")
    if category is not None:
        check_category(category)
        if meta.category != category:
            problems.append(f"it was built for accessory category {meta.category!r}, requested {category!r}")
    if input_size is not None and meta.input_size != int(input_size):
        problems.append(f"its input size is {meta.input_size}, requested {input_size}")
    if _norm_key(meta.normalization) != _norm_key(current_normalization()):
        problems.append(f"its input normalisation {meta.normalization} differs from this version's "
                        f"{current_normalization()}")
    if list(meta.corner_order) != list(CORNER_NAMES):
        problems.append(f"its corner order {meta.corner_order} differs from {list(CORNER_NAMES)}")
    if problems:
        raise ArtifactMismatchError(f"{source}: " + "; ".join(problems) + f". {hint}")
    return meta


def _norm_key(norm: dict[str, Any]) -> tuple:
    return tuple(round(float(v), 6) for v in (*norm.get("rgb_mean", ()), *norm.get("rgb_std", ()),
                                              norm.get("rgb_scale", 0.0)))


def check_pair(fg: ArtifactMeta, frame: ArtifactMeta, fg_source: str, frame_source: str) -> None:
    """Refuse a foreground graph/engine that does not belong to the frame graph/engine."""
    if fg.graph != "fg" or frame.graph != "frame":
        raise ArtifactMismatchError(f"{fg_source} / {frame_source}: expected an fg and a frame artifact, got "
                                    f"{fg.graph!r} and {frame.graph!r}")
    if fg.config_hash != frame.config_hash:
        raise ArtifactMismatchError(
            f"{fg_source} (config {fg.config_hash}) does not belong to {frame_source} (config {frame.config_hash}): "
            f"they come from different models. {_export_hint(frame)}")


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"^(?P<category>[a-z]+)_(?P<size>\d+)_(?P<graph>fg|frame)_(?P<precision>fp32|fp16)"
                      r"(?:_sm(?P<sm>\d+)_trt(?P<trt>\d+))?\.(?P<suffix>onnx|engine)$")


def artifact_name(category: str, input_size: int, graph: str, precision: str, suffix: str = ".onnx",
                  compute_capability: str | None = None, trt_major: int | None = None) -> str:
    """File name that says what an artifact is.

    Examples:
        ``artifact_name("glasses", 224, "frame", "fp16")`` -> ``glasses_224_frame_fp16.onnx``;
        with ``suffix=".engine", compute_capability="8.6", trt_major=10`` ->
        ``glasses_224_frame_fp16_sm86_trt10.engine``.
    """
    check_category(category)
    if graph not in GRAPH_ROLES or precision not in PRECISIONS:
        raise ValueError(f"artifact_name: bad graph {graph!r} or precision {precision!r}")
    name = f"{category}_{int(input_size)}_{graph}_{precision}"
    if suffix == ".engine":
        if compute_capability is None or trt_major is None:
            raise ValueError("artifact_name: an engine name needs compute_capability and trt_major")
        name += f"_sm{str(compute_capability).replace('.', '')}_trt{int(trt_major)}"
    elif suffix != ".onnx":
        raise ValueError(f"artifact_name: suffix must be .onnx or .engine, got {suffix!r}")
    return name + suffix


def parse_artifact_name(name: str) -> dict[str, Any] | None:
    """Inverse of :func:`artifact_name` (None for a name it did not make)."""
    m = _NAME_RE.match(name)
    if m is None:
        return None
    out: dict[str, Any] = m.groupdict()
    out["size"] = int(out["size"])
    return out
