"""Engine files: a bare serialized TensorRT engine plus a JSON sidecar that describes it.

Two files per engine, side by side::

    glasses_224_frame_fp16_sm86_trt10.engine        the serialized engine (IHostMemory bytes), nothing else
    glasses_224_frame_fp16_sm86_trt10.engine.json   the sidecar: metadata + size and sha256 of the engine

The ``.engine`` file is exactly what TensorRT wrote, so ``trtexec --loadEngine=FILE``,
``polygraphy inspect model FILE`` and any TensorRT runtime load it as is. (An earlier
format put a JSON header in front of the engine bytes; TensorRT tools cannot load such a
file. Such files are recognised by their magic and refused with the rebuild command.)

Sidecar keys written by ``tryon build-engine`` (:mod:`engine_build.trt_builder`):
``format``, ``engine_file``, ``engine_nbytes``, ``engine_sha256``, ``tensorrt_version``,
``gpu_name``, ``compute_capability``, ``category``, ``input_size``, ``graph``,
``precision``, ``io`` (name, mode, shape, dtype per tensor), ``source_onnx``,
``source_onnx_sha256``, ``artifact`` (:class:`realtime.artifacts.ArtifactMeta` of the ONNX,
with the model config), ``builder`` (flags used), ``build_time``, ``tryon_version``.

The runtime reads the sidecar first (cheap: the engine's size is checked against the file,
its sha256 only when the engine bytes are read), and refuses an engine whose sidecar is
missing, unreadable, of another format, or does not match the engine bytes; every error
names the file. :func:`check_engine_header` refuses an engine built by another TensorRT, for
another GPU or for another request. Only the standard library is needed: headers are read
without TensorRT.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from realtime.artifacts import ArtifactMeta, ArtifactMismatchError, check_meta
from realtime.backends.trt_version import trt_version_key
from realtime.errors import BackendError
from realtime.io import atomic_write_bytes

ENGINE_FORMAT = "tryon-engine-v2"
SIDECAR_SUFFIX = ".json"
#: Magic of the old single-file format (JSON header in front of the engine), refused on sight.
LEGACY_MAGIC = b"TRYONENG"
#: Sidecars are small (a few kB); anything larger is not one.
MAX_SIDECAR_BYTES = 16 << 20

_REBUILD = "rebuild with: tryon build-engine --onnx PATH.onnx --out DIR"


class EngineFileError(BackendError):
    """An engine or its sidecar is missing, corrupt, or does not match (message names the file)."""


def sidecar_path(engine_path: str | Path) -> Path:
    """``x.engine`` -> ``x.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def engine_digest(engine: bytes) -> str:
    """sha256 of the engine bytes, as stored in the sidecar."""
    return hashlib.sha256(bytes(engine)).hexdigest()


def make_sidecar(header: dict[str, Any], engine: bytes, engine_name: str) -> dict[str, Any]:
    """The sidecar for ``engine``: ``header`` plus ``format``, ``engine_file``, size and sha256."""
    full = dict(header)
    full["format"] = ENGINE_FORMAT
    full["engine_file"] = engine_name
    full["engine_nbytes"] = len(engine)
    full["engine_sha256"] = engine_digest(engine)
    return full


def write_engine_file(path: str | Path, header: dict[str, Any], engine: bytes) -> Path:
    """Write the bare engine to ``path`` and its sidecar to ``path.json``, each atomically.

    The engine goes first: a crash in between leaves an engine whose sidecar is missing or
    names other bytes, which the reader refuses (never a wrong pairing that loads).
    """
    path = Path(path)
    engine = bytes(engine)
    if engine.startswith(LEGACY_MAGIC):
        raise ValueError(f"{path}: refusing to write a tryon-v1 engine file (header inside); pass the bare engine")
    sidecar = make_sidecar(header, engine, path.name)
    atomic_write_bytes(path, engine)
    atomic_write_bytes(sidecar_path(path), (json.dumps(sidecar, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return path


def _check_engine_present(path: Path) -> int:
    if not path.is_file():
        raise FileNotFoundError(f"engine not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(len(LEGACY_MAGIC))
    if head == LEGACY_MAGIC:
        raise EngineFileError(f"{path}: written by an older tryon (JSON header inside the engine file, which "
                              f"trtexec and TensorRT cannot load); {_REBUILD} (it writes the bare engine and a "
                              f"{path.name}{SIDECAR_SUFFIX} sidecar)")
    return path.stat().st_size


def _parse_sidecar(data: bytes, source: Path) -> dict[str, Any]:
    try:
        header = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineFileError(f"{source}: not valid JSON ({exc}); the sidecar is corrupt: {_REBUILD}") from exc
    if not isinstance(header, dict):
        raise EngineFileError(f"{source}: must hold a JSON object, got {type(header).__name__}")
    fmt = header.get("format")
    if fmt != ENGINE_FORMAT:
        raise EngineFileError(f"{source}: sidecar format {fmt!r}, this tryon reads {ENGINE_FORMAT!r}; {_REBUILD}")
    for key in ("engine_nbytes", "engine_sha256"):
        if key not in header:
            raise EngineFileError(f"{source}: sidecar has no {key!r}; {_REBUILD}")
    return header


def read_engine_header(path: str | Path) -> dict[str, Any]:
    """Read and check the sidecar of engine ``path`` (the engine's size is checked, its bytes are not read).

    Raises:
        FileNotFoundError: no engine at ``path``.
        EngineFileError: sidecar missing, corrupt, of another format, or for an engine of another size.
    """
    path = Path(path)
    size = _check_engine_present(path)
    side = sidecar_path(path)
    if not side.is_file():
        raise EngineFileError(f"{path}: its sidecar {side.name} is missing (tryon needs the metadata it holds: "
                              f"model config, TensorRT version, GPU); {_REBUILD}. To benchmark the bare engine "
                              f"anyway: trtexec --loadEngine={path}")
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise EngineFileError(f"{side}: {side.stat().st_size} bytes is too large for an engine sidecar")
    header = _parse_sidecar(side.read_bytes(), side)
    if int(header["engine_nbytes"]) != size:
        raise EngineFileError(f"{side} describes a {header['engine_nbytes']}-byte engine, {path} has {size} bytes "
                              f"(truncated, or the engine was replaced without its sidecar); {_REBUILD}")
    return header


def read_engine_file(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """Read engine ``path`` and its sidecar, verifying the engine's sha256: ``(header, engine bytes)``."""
    path = Path(path)
    header = read_engine_header(path)
    engine = path.read_bytes()
    if engine_digest(engine) != header["engine_sha256"]:
        raise EngineFileError(f"{path}: engine bytes do not match the sha256 in {sidecar_path(path).name} (corrupt "
                              f"engine, or a sidecar of another engine); {_REBUILD}")
    return header, engine


# --------------------------------------------------------------------------------------
# The runtime identity (TensorRT version, GPU) an engine is bound to
# --------------------------------------------------------------------------------------

def engine_rebuild_hint(header: dict[str, Any]) -> str:
    """The command that rebuilds the engine described by ``header`` on this machine."""
    onnx = header.get("source_onnx") or "PATH.onnx"
    flag = " --fp16" if header.get("builder", {}).get("fp16_flag") else ""
    return f"rebuild with: tryon build-engine --onnx {onnx} --out DIR{flag}"


def check_engine_header(header: dict[str, Any], source: str, *, trt_version: str, gpu_name: str,
                        compute_capability: str, category: str | None = None, graph: str | None = None,
                        input_size: int | None = None) -> ArtifactMeta:
    """Refuse an engine built by another TensorRT version, for another GPU, or for another request.

    Args:
        header: the engine header (:func:`realtime.backends.engine_file.read_engine_header`).
        source: the engine path, named in the error.
        trt_version: this runtime's ``tensorrt.__version__``.
        gpu_name: this GPU's name; an engine is tuned for one GPU model.
        compute_capability: this GPU's ``"major.minor"``.
        category, graph, input_size: what the caller wants, or None.

    Returns:
        The artifact metadata stored in the header.

    Raises:
        ArtifactMismatchError: one message listing every mismatch and the rebuild command.
    """
    hint = engine_rebuild_hint(header)
    problems = []
    built = str(header.get("tensorrt_version", "?"))
    try:
        same_trt = trt_version_key(built) == trt_version_key(trt_version)
    except ValueError:
        same_trt = False
    if not same_trt:
        problems.append(f"it was built by TensorRT {built}, this runtime is TensorRT {trt_version}")
    built_cc = str(header.get("compute_capability", "?"))
    if built_cc != str(compute_capability):
        problems.append(f"it was built for compute capability {built_cc} ({header.get('gpu_name', '?')}), "
                        f"this GPU is {compute_capability} ({gpu_name})")
    elif str(header.get("gpu_name", "")) != str(gpu_name):
        problems.append(f"it was built on a {header.get('gpu_name', '?')}, this GPU is a {gpu_name} "
                        f"(engines are tuned per GPU model)")
    meta = None
    try:
        meta = ArtifactMeta.from_dict(header.get("artifact", {}), source)
    except ArtifactMismatchError as exc:
        problems.append(str(exc))
    if problems:
        raise ArtifactMismatchError(f"{source}: " + "; ".join(problems) + f". {hint}")
    return check_meta(meta, source, graph=graph, category=category, input_size=input_size, rebuild_hint=hint)
