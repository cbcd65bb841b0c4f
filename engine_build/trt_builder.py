"""``tryon build-engine``: an exported ONNX graph -> a bare TensorRT engine + its JSON sidecar.

The TensorRT Python API (>= 10) is used directly; its version is detected at run time and
every difference between 10 and 11 goes through :class:`realtime.backends.trt_version.TrtApi`:

==============  ==============  ====================================================
TensorRT        ONNX graph      engine
==============  ==============  ====================================================
10.0 - 10.11    fp32            fp32 (weakly typed; TF32 allowed, TensorRT's default)
10.0 - 10.11    fp32 + --fp16   weakly typed + ``BuilderFlag.FP16``; the heatmap
                                activation and the decode tail are pinned to float32
                                (``OBEY_PRECISION_CONSTRAINTS``), chosen in the parsed
                                network by layer type and output dtype
                                (:func:`realtime.backends.trt_version.fp32_tail_layers`)
10.12+ / 11     fp32            fp32 (strongly typed: 10.12 deprecated weak typing)
10.12+ / 11     fp32 + --fp16   refused: pass the ``*_fp16.onnx`` graph (no FP16 flag,
                                no deprecated precision setters)
any             fp16            strongly typed: precision from the graph (``--fp16`` redundant)
==============  ==============  ====================================================

ONNX parser errors are reported in full (every error, with node index, name and op). A
timing cache is loaded when ``--timing-cache`` exists and saved after the build. The engine is
written atomically as the bare serialized engine (``X.engine``: ``trtexec --loadEngine=X.engine``
loads it) with a sidecar ``X.engine.json`` (:mod:`realtime.backends.engine_file`) naming the
TensorRT version, GPU, compute capability, precision, I/O tensors, source ONNX sha256, the
ONNX graph's tryon metadata and the engine's sha256; the TensorRT runner refuses it anywhere else.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime import __version__
from realtime.cli import command_parser
from realtime.artifacts import ArtifactMeta, artifact_name, check_meta, utc_now_iso
from realtime.backends.engine_file import sidecar_path, write_engine_file
from realtime.backends.tensorrt_backend import gpu_identity
from realtime.backends.trt_version import TrtApi, import_tensorrt
from realtime.errors import BackendError
from realtime.io import atomic_write_bytes, file_sha256

log = logging.getLogger(__name__)

#: Default builder workspace (MiB): ample for these networks at 448 px.
DEFAULT_WORKSPACE_MB = 2048


class TrtBuildError(RuntimeError):
    """The ONNX graph could not be parsed or built (message has every parser error)."""


@dataclass
class BuildResult:
    """What ``tryon build-engine`` wrote."""

    path: Path
    header: dict[str, Any]
    seconds: float
    fp32_layers_pinned: int = 0


def read_onnx(path: Path) -> tuple[bytes, Any, ArtifactMeta]:
    """The ONNX file's bytes, its parsed model and its tryon metadata."""
    import onnx

    if not path.is_file():
        raise FileNotFoundError(f"--onnx: no such file: {path}")
    data = path.read_bytes()
    model = onnx.load_from_string(data)
    meta = ArtifactMeta.from_props({p.key: p.value for p in model.metadata_props}, str(path))
    return data, model, meta


def parser_errors(parser: Any, model: Any) -> list[str]:
    """Every ONNX parser error as one line: node index, node name, op type, error code, description."""
    lines = []
    nodes = model.graph.node
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        idx = int(err.node())
        name = err.node_name() if hasattr(err, "node_name") else ""
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        if 0 <= idx < len(nodes):  # fill in from the graph where this TensorRT does not say
            name = name or nodes[idx].name
            op = op or nodes[idx].op_type
        lines.append(f"node {idx} {name!r} ({op or '?'}): {err.code()}: {err.desc()}")
    return lines


def device_identity(device: int = 0) -> tuple[str, str]:
    """GPU name and compute capability: pycuda, else torch / nvidia-smi (:mod:`realtime.sysinfo`)."""
    try:
        return gpu_identity(device)
    except BackendError:
        from realtime.sysinfo import gpu_info

        info = gpu_info() or {}
        if info.get("name") and info.get("capability"):
            return str(info["name"]), str(info["capability"])
        raise


def default_engine_name(meta: ArtifactMeta, plan_precision: str, compute_capability: str, trt_major: int) -> str:
    """``<category>_<S>_<graph>_<precision>_sm<cc>_trt<major>.engine``."""
    return artifact_name(meta.category, meta.input_size, meta.graph, plan_precision, ".engine",
                         compute_capability, trt_major)


def build_engine(onnx_path: str | Path, out: str | Path, fp16: bool = False, workspace_mb: int = DEFAULT_WORKSPACE_MB,
                 timing_cache: str | Path | None = None, device: int = 0, trt: Any = None,
                 gpu: tuple[str, str] | None = None) -> BuildResult:
    """Build a tryon engine file from an exported ONNX graph.

    Args:
        onnx_path: a graph written by ``tryon export`` (its metadata is required).
        out: the ``.engine`` path, or a folder (the file is then named by :func:`default_engine_name`).
        fp16: ask for FP16 (see the module table for what that means per TensorRT version).
        workspace_mb: builder workspace memory pool limit.
        timing_cache: timing cache file, loaded if present and written after the build.
        device: CUDA device index (for the header's GPU name / compute capability).
        trt: the ``tensorrt`` module (default: imported; tests pass a fake).
        gpu: ``(name, compute capability)`` (default: queried from ``device``).

    Raises:
        TrtBuildError: parsing or building failed (message has every parser error).
        TrtVersionError: the request is impossible with this TensorRT (e.g. --fp16 with an fp32 graph on 11).
    """
    t0 = time.perf_counter()
    trt = trt if trt is not None else import_tensorrt()
    api = TrtApi.for_module(trt)
    onnx_path = Path(onnx_path)
    data, model, meta = read_onnx(onnx_path)
    check_meta(meta, str(onnx_path))
    if workspace_mb < 1:
        raise ValueError(f"--workspace must be >= 1 MiB, got {workspace_mb}")
    plan = api.build_plan(fp16, meta.precision)
    gpu_name, cc = gpu if gpu is not None else device_identity(device)
    out = Path(out)
    if out.is_dir() or out.suffix != ".engine":
        out = out / default_engine_name(meta, plan.precision, cc, api.major)

    logger = api.logger()  # the process's one TensorRT logger
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags(plan))
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(data)
    if not ok or parser.num_errors:
        errors = parser_errors(parser, model)
        raise TrtBuildError(f"TensorRT {api.version} cannot parse {onnx_path} ({len(errors)} error(s)):\n  "
                            + "\n  ".join(errors or ["parse() returned False without errors"]))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    pinned = api.apply_precision(config, network, plan)  # by layer type and dtype (TrtApi docstring)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing cache %s does not fit this device/TensorRT; starting a new one", cache_path)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    elif cache_bytes:
        log.info("loaded timing cache %s (%d bytes)", cache_path, len(cache_bytes))

    log.info("building %s engine from %s with TensorRT %s (%s, workspace %d MiB)", plan.precision, onnx_path.name,
             api.version, "strongly typed" if plan.strongly_typed else "weakly typed", workspace_mb)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TrtBuildError(f"TensorRT {api.version} failed to build an engine from {onnx_path} (see its log above)")
    engine_bytes = bytes(serialized)
    if cache_path is not None:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))

    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_bytes)  # same logger
    if engine is None:
        raise TrtBuildError(f"TensorRT {api.version} built an engine it cannot deserialise ({onnx_path})")
    header = {
        "tensorrt_version": api.version,
        "gpu_name": gpu_name,
        "compute_capability": cc,
        "category": meta.category,
        "input_size": meta.input_size,
        "graph": meta.graph,
        "precision": plan.precision,
        "io": [t.to_dict() for t in api.io_tensors(engine)],
        "source_onnx": str(onnx_path.resolve()),
        "source_onnx_sha256": file_sha256(onnx_path, length=64),
        "artifact": meta.to_dict(),
        "builder": {"fp16_flag": plan.fp16_flag, "strongly_typed": plan.strongly_typed,
                    "workspace_mb": int(workspace_mb), "fp32_layers_pinned": pinned,
                    "timing_cache": str(cache_path) if cache_path else None},
        "build_time": utc_now_iso(),
        "tryon_version": __version__,
    }
    write_engine_file(out, header, engine_bytes)
    return BuildResult(path=out, header=header, seconds=time.perf_counter() - t0, fp32_layers_pinned=pinned)


def main(argv: list[str] | None = None) -> int:
    """``tryon build-engine``: parse, validate, call :func:`build_engine`, print what was written."""
    parser = command_parser(
        "tryon build-engine", "Build a TensorRT engine (bare X.engine, loadable by trtexec, + its X.engine.json "
                              "sidecar) from a graph written by 'tryon export'.",
        "tryon build-engine --onnx exports/glasses/glasses_224_frame_fp16.onnx --out exports/glasses/engines")
    parser.add_argument("--onnx", required=True, type=Path, help="graph written by 'tryon export'")
    parser.add_argument("--out", required=True, type=Path, help="PATH.engine, or a folder (name chosen for you)")
    parser.add_argument("--fp16", action="store_true",
                        help="FP16 engine (TensorRT 10: builder flag; TensorRT 11: pass the *_fp16.onnx instead)")
    parser.add_argument("--workspace", type=int, default=DEFAULT_WORKSPACE_MB, help="workspace limit in MiB")
    parser.add_argument("--timing-cache", type=Path, help="timing cache file (loaded if present, saved after)")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index")
    args = parser.parse_args(argv)
    res = build_engine(args.onnx, args.out, fp16=args.fp16, workspace_mb=args.workspace,
                       timing_cache=args.timing_cache, device=args.device)
    h = res.header
    print(f"wrote {res.path} ({res.path.stat().st_size / 2**20:.1f} MiB) in {res.seconds:.1f} s: {h['graph']} graph, "
          f"{h['category']} {h['input_size']}px, {h['precision']}, TensorRT {h['tensorrt_version']}, "
          f"{h['gpu_name']} (sm {h['compute_capability']})")
    for t in h["io"]:
        print(f"  {t['mode']:6s} {t['name']:10s} {t['shape']} {t['dtype']}")
    print(f"metadata in {sidecar_path(res.path).name}; TensorRT's own timing: trtexec --loadEngine={res.path}")
    return 0
