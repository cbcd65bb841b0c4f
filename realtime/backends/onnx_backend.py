"""ONNX Runtime backend: the exported foreground graph (once per accessory) + the per-frame graph.

``OnnxBackend.from_path`` accepts the per-frame ``.onnx`` (its foreground sibling is named in
its metadata, :attr:`realtime.artifacts.ArtifactMeta.fg_graph`) or an export folder. The
metadata is read into :class:`realtime.backends.base.ModelInfo`, checked against the request
(:func:`realtime.artifacts.check_meta`), and the graphs' input and output shapes are checked
against the stored model config before anything runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from realtime.artifacts import (BG_INPUT, FEATURES, FG_INPUT, HEATMAPS, ArtifactMeta, ArtifactMismatchError,
                                check_meta, check_pair, graph_io)
from realtime.backends.base import Backend, ModelInfo, OpenOptions, as_heatmaps
from realtime.errors import BackendError

log = logging.getLogger(__name__)


def default_providers() -> list[str]:
    """CUDA EP first when this onnxruntime build has it, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def make_session(path: str | Path, providers: list[str] | None = None, intra_op_threads: int | None = None):
    """An ``InferenceSession`` with all graph optimisations on.

    Raises:
        BackendError: the file cannot be loaded (message names it).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: FP16 graphs make ORT's CPU provider warn per unsupported node
    if intra_op_threads:
        opts.intra_op_num_threads = int(intra_op_threads)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers or default_providers())
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        raise BackendError(f"onnxruntime cannot load {path}: {exc}") from exc


def session_meta(session: Any, source: str | Path) -> ArtifactMeta:
    """The tryon metadata stored in a session's model."""
    return ArtifactMeta.from_props(dict(session.get_modelmeta().custom_metadata_map), str(source))


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (reads the protobuf, not a runtime).

    Raises:
        FileNotFoundError: no such file.
        BackendError: not a readable ONNX model (message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX graph not found: {path}")
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError & co.
        raise BackendError(f"{path}: not a readable ONNX model ({exc})") from exc
    return {p.key: p.value for p in model.metadata_props}


def read_onnx_meta(path: str | Path) -> ArtifactMeta:
    """The tryon metadata of an ONNX file (reads the protobuf, not the runtime)."""
    return ArtifactMeta.from_props(onnx_metadata(path), str(path))


def find_frame_graph(folder: str | Path, category: str | None = None, precision: str = "fp32") -> Path:
    """The per-frame graph in an export folder, chosen by metadata (category, precision).

    Raises:
        FileNotFoundError: none fits (the message lists what is there).
        BackendError: several fit and ``category`` does not decide.
    """
    folder = Path(folder)
    seen, fits = [], []
    for path in sorted(folder.glob("*.onnx")):
        try:
            meta = read_onnx_meta(path)
        except Exception as exc:  # unreadable or foreign files are skipped (onnx raises protobuf errors)
            log.debug("skipping %s: %s", path, exc)
            continue
        seen.append(f"{path.name} ({meta.graph}, {meta.category}, {meta.precision})")
        if meta.graph == "frame" and meta.precision == precision and category in (None, meta.category):
            fits.append(path)
    if not fits:
        raise FileNotFoundError(f"{folder}: no {precision} per-frame graph"
                                f"{' for ' + category if category else ''}; found: {', '.join(seen) or 'nothing'}. "
                                f"Export one with: tryon export --checkpoint CKPT --out {folder}")
    if len(fits) > 1:
        raise BackendError(f"{folder}: several per-frame graphs fit ({', '.join(p.name for p in fits)}); "
                           f"pass the file or a category")
    return fits[0]


def foreground_graph_path(frame_path: Path, frame_meta: ArtifactMeta, fg_path: str | Path | None = None) -> Path:
    """The foreground graph of a per-frame graph: ``fg_path``, else the sibling its metadata names.

    Raises:
        ArtifactMismatchError: the metadata names none; FileNotFoundError: the file is missing.
    """
    if fg_path is None:
        if not frame_meta.fg_graph:
            raise ArtifactMismatchError(f"{frame_path}: metadata names no foreground graph (fg_graph)")
        fg_path = frame_path.parent / frame_meta.fg_graph
    fg_path = Path(fg_path)
    if not fg_path.is_file():
        raise FileNotFoundError(f"foreground graph {fg_path} (named by {frame_path.name}) not found; "
                                f"export both with: tryon export --checkpoint CKPT --out {frame_path.parent}")
    return fg_path


def check_graph_io(cfg: Any, frame_path: Path, fg_path: Path,
                   have: dict[tuple[Path, str, str], tuple[list[int], str]]) -> None:
    """Refuse graphs whose inputs / outputs do not fit the stored model config (:func:`graph_io`).

    Args:
        have: ``(path, "input" | "output", tensor name) -> (shape, ONNX type string)`` as the
            runtime reports them (``"tensor(float)"`` for float32).

    Raises:
        ArtifactMismatchError: naming the file, the tensor and what the config needs.
    """
    paths = {"fg": fg_path, "frame": frame_path}
    for t in graph_io(cfg):
        path, shape = paths[t.graph], list(t.shape)
        key = (path, t.mode, t.name)
        if key not in have:
            raise ArtifactMismatchError(f"{path}: no {t.mode} named {t.name!r}; the graph does not fit its "
                                        f"metadata. Re-export with: tryon export")
        got_shape, got_type = have[key]
        if got_shape != shape or got_type != "tensor(float)":
            raise ArtifactMismatchError(
                f"{path}: {t.mode} {t.name!r} is {got_type} {got_shape}, the stored model config needs "
                f"tensor(float) {shape}. Re-export with: tryon export")


class OnnxBackend(Backend):
    """Runs the exported graphs with ONNX Runtime.

    Args:
        frame_path: the per-frame ``.onnx`` graph.
        fg_path: its foreground graph (default: the sibling named in the frame graph's metadata).
        category: requested accessory category (refused if the graphs were built for another).
        providers: ONNX Runtime execution providers (default: CUDA if available, then CPU).
        intra_op_threads: threads per operator (None: ONNX Runtime's default, all cores).
    """

    def __init__(self, frame_path: str | Path, fg_path: str | Path | None = None, category: str | None = None,
                 providers: list[str] | None = None, intra_op_threads: int | None = None) -> None:
        frame_path = Path(frame_path)
        if not frame_path.is_file():
            raise FileNotFoundError(f"ONNX graph not found: {frame_path}")
        self.frame_session = make_session(frame_path, providers, intra_op_threads)
        frame_meta = check_meta(session_meta(self.frame_session, frame_path), str(frame_path), graph="frame",
                                category=category)
        fg_path = foreground_graph_path(frame_path, frame_meta, fg_path)
        self.fg_session = make_session(fg_path, providers, intra_op_threads)
        fg_meta = check_meta(session_meta(self.fg_session, fg_path), str(fg_path), graph="fg", category=category)
        check_pair(fg_meta, frame_meta, str(fg_path), str(frame_path))
        cfg = frame_meta.config()
        self.info = ModelInfo(config=cfg, backend="onnxruntime", precision=frame_meta.precision,
                              source=str(frame_path),
                              meta={"frame": frame_meta.to_dict(), "fg_path": str(fg_path),
                                    "providers": self.frame_session.get_providers()})
        self._check_io(cfg, frame_path, fg_path)
        self._f_f: np.ndarray | None = None

    @classmethod
    def from_path(cls, path: str | Path, category: str | None = None, precision: str = "fp32",
                  **kwargs: Any) -> "OnnxBackend":
        """Open a per-frame ``.onnx`` or an export folder (picking the ``precision`` frame graph)."""
        path = Path(path)
        if path.is_dir():
            path = find_frame_graph(path, category, precision)
        return cls(path, category=category, **kwargs)

    @classmethod
    def open(cls, path: Path, options: OpenOptions) -> "OnnxBackend":
        # An export folder holds an fp32 and an fp16 frame graph; fp16 picks the latter, any other
        # precision (fp32, or torch's bf16, which has no ONNX graph) the fp32 one.
        graph = "fp16" if options.precision == "fp16" else "fp32"
        return cls.from_path(path, category=options.category, precision=graph, intra_op_threads=options.threads)

    def _check_io(self, cfg: Any, frame_path: Path, fg_path: Path) -> None:
        have = {}
        for path, sess in ((fg_path, self.fg_session), (frame_path, self.frame_session)):
            for kind, args in (("input", sess.get_inputs()), ("output", sess.get_outputs())):
                for arg in args:
                    have[(path, kind, arg.name)] = (list(arg.shape), arg.type)
        check_graph_io(cfg, frame_path, fg_path, have)

    def set_foreground(self, fg_input: np.ndarray) -> None:
        x = self._check_input(fg_input, 4, "foreground input")
        self._f_f = self.fg_session.run([FEATURES], {FG_INPUT: x})[0]

    def run_frame(self, bg_input: np.ndarray) -> dict[str, np.ndarray]:
        """All outputs of the per-frame graph (``heatmaps``, and ``keypoints`` if exported)."""
        if self._f_f is None:
            raise BackendError("onnxruntime backend: call set_foreground() before infer()")
        x = self._check_input(bg_input, 3, "background input")
        names = [o.name for o in self.frame_session.get_outputs()]
        return dict(zip(names, self.frame_session.run(names, {BG_INPUT: x, FEATURES: self._f_f}), strict=True))

    def infer(self, bg_input: np.ndarray) -> np.ndarray:
        if self._f_f is None:
            raise BackendError("onnxruntime backend: call set_foreground() before infer()")
        x = self._check_input(bg_input, 3, "background input")
        return as_heatmaps(self.frame_session.run([HEATMAPS], {BG_INPUT: x, FEATURES: self._f_f})[0])

    def close(self) -> None:
        self._f_f = None
