"""The engine file format: a JSON metadata header in front of a serialized TensorRT engine.

Layout (all integers little-endian)::

    offset 0   8 bytes   magic  b"TRYONENG"
    offset 8   uint32    N = length of the JSON header in bytes
    offset 12  N bytes   UTF-8 JSON header (an object)
    offset 12+N          the serialized engine (``IHostMemory`` bytes), to the end of the file

Like ultralytics' ``.engine`` files (uint32 length + JSON + engine), plus a magic so a plain
TensorRT plan or a random file is recognised at once, and a size + sha256 of the engine
bytes in the header so truncation or corruption is reported before TensorRT sees them.

Header keys written by ``tryon build-engine`` (:mod:`engine_build.trt_builder`):
``format``, ``tensorrt_version``, ``gpu_name``, ``compute_capability``, ``category``,
``input_size``, ``graph``, ``precision``, ``io`` (name, mode, shape, dtype per tensor),
``source_onnx``, ``source_onnx_sha256``, ``artifact`` (:class:`realtime.artifacts.ArtifactMeta`
of the ONNX, with the model config), ``builder`` (flags used), ``build_time``,
``tryon_version``, ``engine_nbytes``, ``engine_sha256``.

:func:`check_engine_header` refuses an engine built by another TensorRT, for another GPU or
for another request. Only the standard library is needed; the runtime reads headers
without TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from realtime.artifacts import ArtifactMeta, ArtifactMismatchError, check_meta
from realtime.backends.trt_version import trt_version_key
from realtime.errors import BackendError
from realtime.io import atomic_write_bytes

MAGIC = b"TRYONENG"
ENGINE_FORMAT = "tryon-engine-v1"
_LEN = struct.Struct("<I")
_PREFIX = len(MAGIC) + _LEN.size
#: Headers are small (a few kB); anything larger is a corrupt length field.
MAX_HEADER_BYTES = 16 << 20


class EngineFileError(BackendError):
    """An engine file is not in the tryon format, or is truncated or corrupt (message names the file)."""


def pack_engine(header: dict[str, Any], engine: bytes) -> bytes:
    """Header + engine bytes -> file bytes (adds ``format``, ``engine_nbytes``, ``engine_sha256``)."""
    engine = bytes(engine)
    full = dict(header)
    full.setdefault("format", ENGINE_FORMAT)
    full["engine_nbytes"] = len(engine)
    full["engine_sha256"] = hashlib.sha256(engine).hexdigest()
    blob = json.dumps(full, sort_keys=True).encode("utf-8")
    return MAGIC + _LEN.pack(len(blob)) + blob + engine


def _parse_prefix(data: bytes, source: str) -> int:
    if len(data) < _PREFIX:
        raise EngineFileError(f"{source}: {len(data)} bytes is too short for a tryon engine file")
    if data[:len(MAGIC)] != MAGIC:
        raise EngineFileError(f"{source}: not a tryon engine file (magic {data[:len(MAGIC)]!r}, expected "
                              f"{MAGIC!r}); a bare TensorRT plan carries no metadata: rebuild with "
                              f"'tryon build-engine --onnx PATH.onnx --out DIR'")
    (n,) = _LEN.unpack_from(data, len(MAGIC))
    if n > MAX_HEADER_BYTES:
        raise EngineFileError(f"{source}: header length {n} is implausible (corrupt file)")
    return n


def _parse_header(blob: bytes, source: str) -> dict[str, Any]:
    try:
        header = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineFileError(f"{source}: engine header is not valid JSON ({exc}); the file is corrupt") from exc
    if not isinstance(header, dict):
        raise EngineFileError(f"{source}: engine header must be a JSON object, got {type(header).__name__}")
    fmt = header.get("format")
    if fmt != ENGINE_FORMAT:
        raise EngineFileError(f"{source}: engine header format {fmt!r}, this tryon reads {ENGINE_FORMAT!r}")
    return header


def unpack_engine(data: bytes, source: str = "engine") -> tuple[dict[str, Any], bytes]:
    """File bytes -> (header, engine bytes), verifying the size and sha256 of the engine.

    Raises:
        EngineFileError: wrong magic, truncated header or engine, bad JSON, checksum mismatch.
    """
    n = _parse_prefix(data, source)
    if len(data) < _PREFIX + n:
        raise EngineFileError(f"{source}: truncated: header says {n} bytes, only {len(data) - _PREFIX} present")
    header = _parse_header(data[_PREFIX:_PREFIX + n], source)
    engine = data[_PREFIX + n:]
    expected = header.get("engine_nbytes")
    if expected is not None and len(engine) != int(expected):
        raise EngineFileError(f"{source}: truncated or padded: engine is {len(engine)} bytes, header says "
                              f"{expected}; rebuild it")
    digest = header.get("engine_sha256")
    if digest is not None and hashlib.sha256(engine).hexdigest() != digest:
        raise EngineFileError(f"{source}: engine bytes do not match the header's sha256 (corrupt file); rebuild it")
    return header, engine


def write_engine_file(path: str | Path, header: dict[str, Any], engine: bytes) -> Path:
    """Write header + engine atomically (a crash never leaves a truncated engine)."""
    path = Path(path)
    atomic_write_bytes(path, pack_engine(header, engine))
    return path


def read_engine_file(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """Read and verify an engine file: (header, engine bytes)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"engine not found: {path}")
    return unpack_engine(path.read_bytes(), str(path))


def read_engine_header(path: str | Path) -> dict[str, Any]:
    """Read only the header (cheap: the engine bytes are not read or verified)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"engine not found: {path}")
    with open(path, "rb") as fh:
        prefix = fh.read(_PREFIX)
        n = _parse_prefix(prefix, str(path))
        blob = fh.read(n)
    if len(blob) < n:
        raise EngineFileError(f"{path}: truncated: header says {n} bytes, only {len(blob)} present")
    return _parse_header(blob, str(path))


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
