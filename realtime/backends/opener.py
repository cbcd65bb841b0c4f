"""The one artifact opener: which runtime reads which artifact, with one options object.

Every artifact (a ``.pt``/``.pth`` checkpoint, a per-frame ``.onnx`` graph or an export
folder, a TensorRT ``.engine``) is opened here, by the live app's resolver, ``tryon eval``,
``tryon ship`` and the benchmarks alike::

    backend = open_artifact("runs/glasses/best.pt", OpenOptions(device="cpu"))
    backend = open_artifact("exports/glasses", OpenOptions(category="glasses"), backend="onnxruntime")

:data:`BACKENDS` is the one table: backend name -> suffixes, class, and the command that
makes an artifact of that kind (the hint in every refusal). Backend classes are imported
lazily, when an artifact of their kind is opened.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from realtime.backends.base import Backend, OpenOptions
from realtime.errors import BackendError


@dataclass(frozen=True)
class BackendKind:
    """One runtime: the artifact suffixes it reads, its class, and how to make its artifact."""

    name: str
    suffixes: tuple[str, ...]
    target: str  # "module:Class"
    rebuild_hint: str
    #: other kinds' suffixes it also runs when asked by name (OpenVINO: .onnx graphs, and
    #: checkpoints through the first-use export); never chosen by suffix
    also_reads: tuple[str, ...] = ()

    def load_class(self) -> type[Backend]:
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


#: Backend name -> kind, in the order ``--backend auto`` prefers them on an NVIDIA machine (on a
#: CPU, :meth:`realtime.backends.resolver.ModelResolver._order` puts OpenVINO first for shipped models).
BACKENDS: dict[str, BackendKind] = {kind.name: kind for kind in (
    BackendKind("tensorrt", (".engine",), "realtime.backends.tensorrt_backend:TensorRTBackend",
                "build an engine first: tryon build-engine --onnx MODEL.onnx (gives .engine)"),
    BackendKind("openvino", (), "realtime.backends.openvino_backend:OpenVinoBackend",
                "export the checkpoint first: tryon export --checkpoint CKPT.pt (gives .onnx), or pass the .pt",
                also_reads=(".onnx", ".pt", ".pth")),
    BackendKind("onnxruntime", (".onnx",), "realtime.backends.onnx_backend:OnnxBackend",
                "export the checkpoint first: tryon export --checkpoint CKPT.pt (gives .onnx)"),
    BackendKind("torch", (".pt", ".pth"), "realtime.backends.torch_backend:TorchBackend",
                "pass the .pt checkpoint the artifact was made from"),
)}
#: Artifact suffix -> backend name.
BACKEND_BY_SUFFIX: dict[str, str] = {sfx: kind.name for kind in BACKENDS.values() for sfx in kind.suffixes}


def backend_of(path: str | Path) -> str:
    """The backend name for an artifact file, by its suffix.

    Raises:
        BackendError: an unknown suffix (the message lists the known ones).
    """
    name = BACKEND_BY_SUFFIX.get(Path(path).suffix.lower())
    if name is None:
        raise BackendError(f"{path}: unknown artifact type; expected one of {', '.join(sorted(BACKEND_BY_SUFFIX))}")
    return name


def backend_class(name_or_path: str | Path) -> type[Backend]:
    """The backend class for a backend name ("torch", ...) or an artifact path (by suffix)."""
    key = str(name_or_path)
    kind = BACKENDS.get(key) or BACKENDS[backend_of(key)]
    return kind.load_class()


def refuse(path: str | Path, wanted: str, have: str) -> BackendError:
    """The one refusal: backend ``wanted`` cannot run ``path``, an artifact of kind ``have``."""
    return BackendError(f"--backend {wanted} cannot run {path} (a {have} artifact): {BACKENDS[wanted].rebuild_hint}; "
                        f"or use --backend {have} / auto")


def open_artifact(path: str | Path, options: OpenOptions = OpenOptions(), backend: str | None = None) -> Backend:
    """Open an artifact with the backend its suffix calls for (a folder: with ``backend``, or
    with the one kind of artifact it holds).

    Args:
        path: checkpoint, ONNX graph, engine, or an export folder.
        options: what the runtime must do (:class:`OpenOptions`).
        backend: a backend name the artifact must fit, or None for the one its suffix names.

    Raises:
        FileNotFoundError: no such file or folder.
        BackendError: an unknown backend or suffix, an artifact of another kind than
            ``backend`` (with the command that makes the right one), or a checkpoint /
            metadata that cannot be read.
    """
    path = Path(path)
    if backend is not None and backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if not path.exists():
        raise FileNotFoundError(f"model artifact not found: {path}")
    if path.is_dir():  # an export folder: the backend picks its graph / engine
        kinds = sorted({BACKEND_BY_SUFFIX[p.suffix.lower()] for p in path.iterdir()
                        if p.suffix.lower() in BACKEND_BY_SUFFIX})
        name = backend or (kinds[0] if len(kinds) == 1 else None)
        if name is None:
            raise BackendError(f"{path}: folder holds {kinds or 'no model artifacts'}; pass --backend")
    else:
        name = backend_of(path)
        if backend is not None and backend != name:
            if path.suffix.lower() not in BACKENDS[backend].also_reads:
                raise refuse(path, backend, name)
            name = backend
    try:
        return BACKENDS[name].load_class().open(path, options)
    except ValueError as exc:  # checkpoint / metadata errors
        raise BackendError(str(exc)) from exc
