"""Native (C++ / CUDA) per-frame pixel kernels, with the NumPy/OpenCV reference as fallback.

``libtryon_native.so`` is built by the top-level ``CMakeLists.txt`` from
``engine_build/native`` (a plain C ABI, loaded here with ``ctypes``; no build-time Python
dependency). Two kernels, each with a reference it must match within one grey level, and the
preview's resample (exact):

    * :func:`preprocess_crop`: crop + resize + ImageNet-normalise a BGR frame into the
      network's (1, 3, S, S) float32 input, fused into one pass. Reference:
      ``background_input(cv2.cvtColor(warp_crop(frame, M, S), cv2.COLOR_BGR2RGB))``.
    * :func:`composite`: perspective warp + alpha composite of a prepared accessory,
      in place, inside its footprint. Reference: :func:`realtime.geometry.composite_roi`.
    * :func:`resample_nearest`: nearest-neighbour resample through index tables (the live
      window's reduced, mirrored preview in one pass). Reference: ``cv2.remap`` with the
      tables as an integer map (the same pixels). A library built before it lacks the symbol:
      that kernel then falls back alone.
    * :func:`resize_area`: area (box-filter) downscale, the face detectors' letterbox
      (through :func:`shrink_rows_sampled`, which reads every k-th row on a large shrink).
      Reference: ``cv2.resize(..., INTER_AREA)`` (within one grey level); optional symbol too.

The live loop calls these functions; each kernel runs natively only where that wins
(:data:`PREFER_NATIVE`, from ``benchmarks/results/native_kernels_*.md``; switch with
:func:`set_prefer_native` or per call with ``prefer_native=``) and falls back to the
reference whenever the library is missing, stale, or the arrays do not fit its layout.

The library is looked for, in order, at ``$TRYON_NATIVE_LIB`` (exclusive when set;
``off`` disables native kernels), ``realtime/_native/`` (where the CMake build copies it)
and ``build/`` at the repository root. :func:`available` and :func:`reason` say what was
loaded or why nothing was. ``$TRYON_NATIVE_THREADS`` (default 1) sets the CPU kernels'
threads (n > 1 splits the rows over threads started per call).

CUDA (when the library was built with it): :func:`preprocess_crop_cuda` and
:func:`composite_cuda` take torch CUDA tensors and pass their ``data_ptr()`` to the
kernels, which are enqueued on the current torch stream, so a frame can stay on the
device between preprocess, inference and composite::

    frame_d = torch.from_numpy(frame_bgr).cuda()                    # (H, W, 3) uint8
    bg_in = torch.empty((1, 3, S, S), device="cuda")                 # float32
    native.preprocess_crop_cuda(frame_d, crop_from_frame, S, bg_in)  # -> network input
    premul_d = torch.from_numpy(acc.premul).cuda()                   # once per accessory
    native.composite_cuda(frame_d, premul_d, acc, frame_from_fg)     # in place on frame_d
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.geometry import PreparedAccessory, composite_roi, footprint_box, warp_crop
from realtime.preprocess import _INV_STD, _MEAN, background_input

log = logging.getLogger(__name__)

LIB_NAME = "libtryon_native.so"
#: Must equal TRYON_NATIVE_ABI_VERSION in engine_build/native/include/tryon_native.h.
ABI_VERSION = 1
ENV_LIB = "TRYON_NATIVE_LIB"
ENV_THREADS = "TRYON_NATIVE_THREADS"
KERNELS = ("preprocess", "composite", "preview", "area")

#: Whether each kernel uses the native library when it is available: True, False, or
#: None for the measured default. From benchmarks/results/native_kernels_2026-11-27.md
#: (2-core AMD EPYC shared with other engineers; native on 1 thread vs OpenCV on 2; p50
#: wall-time ratios native / reference at 720p and 1080p): the fused preprocess wins with
#: either CPU path (AVX2 rows 0.33-0.41, scalar rows 0.85-0.88); the composite wins only
#: with the AVX2 rows (0.66-0.72) and loses with the scalar ones (1.70-1.83: OpenCV's
#: SIMD warpPerspective is faster), so by default it runs natively only where the AVX2
#: rows do. 2 threads lost to 1 on that busy machine: 1 unless $TRYON_NATIVE_THREADS says more.
#: The preview resample: native wins (benchmarks/results/frame_scaling_2026-12-02_amd-epyc-2c.md, 4K
#: to a 1632x918 window: about 2x faster than cv2.remap, the same pixels), so native wherever it is built.
#: The area downscale: native wins at every frame size (benchmarks/results/frame_scaling_*_area.md,
#: the detectors' letterbox), so native wherever it is built.
PREFER_NATIVE: dict[str, bool | None] = {"preprocess": None, "composite": None, "preview": None, "area": None}

_PACKAGE_DIR = Path(__file__).resolve().parents[1] / "_native"  # realtime/_native (CMake copies it there)
_REPO_BUILD_DIR = Path(__file__).resolve().parents[2] / "build"

_ERROR_CODES = {-1: "invalid argument", -2: "no CUDA", -3: "CUDA error"}

_u8p = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "tryon_native_abi_version": (ctypes.c_int, []),
    "tryon_native_build_info": (ctypes.c_char_p, []),
    "tryon_native_last_error": (ctypes.c_char_p, []),
    "tryon_native_max_threads": (ctypes.c_int, []),
    "tryon_native_set_simd": (ctypes.c_int, [ctypes.c_int]),
    "tryon_native_cpu_path": (ctypes.c_char_p, []),
    "tryon_native_has_cuda": (ctypes.c_int, []),
    "tryon_cuda_device_count": (ctypes.c_int, []),
    "tryon_preprocess_crop_u8c3": (ctypes.c_int, [_u8p, ctypes.c_int, ctypes.c_int, ctypes.c_int64, _u8p,
                                                  ctypes.c_int, _u8p, _u8p, _u8p, ctypes.c_int]),
    "tryon_composite_u8c3": (ctypes.c_int, [_u8p, ctypes.c_int, ctypes.c_int, ctypes.c_int64, _u8p, ctypes.c_int,
                                            ctypes.c_int, ctypes.c_int64, _u8p, _u8p, ctypes.c_int]),
    "tryon_cuda_preprocess_crop_u8c3": (ctypes.c_int, [_u8p, ctypes.c_int, ctypes.c_int, ctypes.c_int64, _u8p,
                                                       ctypes.c_int, _u8p, _u8p, _u8p, _u8p]),
    "tryon_cuda_composite_u8c3": (ctypes.c_int, [_u8p, ctypes.c_int, ctypes.c_int, ctypes.c_int64, _u8p,
                                                 ctypes.c_int, ctypes.c_int, ctypes.c_int64, _u8p, _u8p, _u8p]),
}
#: Symbols added after ABI 1 without changing it: bound when present (a library built before them
#: still serves the other kernels; the kernel that needs one falls back to its reference).
_OPTIONAL_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "tryon_resample_nearest_u8c3": (ctypes.c_int, [_u8p, ctypes.c_int, ctypes.c_int, ctypes.c_int64, _u8p,
                                                   ctypes.c_int, ctypes.c_int, ctypes.c_int64, _u8p, _u8p,
                                                   ctypes.c_int]),
    "tryon_resize_area_u8c3": (ctypes.c_int, [_u8p, ctypes.c_int, ctypes.c_int, ctypes.c_int64, _u8p, ctypes.c_int,
                                              ctypes.c_int, ctypes.c_int64, ctypes.c_int]),
}
#: The optional symbol each kernel needs.
_KERNEL_SYMBOL = {"preview": "tryon_resample_nearest_u8c3", "area": "tryon_resize_area_u8c3"}


class NativeError(RuntimeError):
    """A native kernel refused its arguments or failed (the message is the library's)."""


class _State:
    """What :func:`load` found: the library (or None), its path and a reason string."""

    def __init__(self) -> None:
        self.lib: ctypes.CDLL | None = None
        self.path: Path | None = None
        self.reason = "not loaded yet"
        self.loaded = False


_STATE = _State()
_LOCK = threading.Lock()
# float32 constants of realtime.preprocess (one definition of the normalisation).
_MEAN_RGB = np.ascontiguousarray(_MEAN, dtype=np.float32)
_INV_STD_RGB = np.ascontiguousarray(_INV_STD, dtype=np.float32)
_threads: int | None = None  # from $TRYON_NATIVE_THREADS on first use


def candidate_paths() -> list[Path]:
    """Where the library is looked for, in order (``$TRYON_NATIVE_LIB`` alone when set)."""
    env = os.environ.get(ENV_LIB, "").strip()
    if env:
        return [] if env.lower() in ("0", "off", "none") else [Path(env)]
    return [_PACKAGE_DIR / LIB_NAME, _REPO_BUILD_DIR / "engine_build" / "native" / LIB_NAME,
            _REPO_BUILD_DIR / LIB_NAME]


def _open(path: Path) -> ctypes.CDLL:
    """Load ``path`` and bind the signatures; ValueError names a stale ABI, AttributeError a missing symbol."""
    lib = ctypes.CDLL(str(path))
    version = lib.tryon_native_abi_version  # checked first: a stale build may lack newer symbols
    version.restype, version.argtypes = ctypes.c_int, []
    if version() != ABI_VERSION:
        raise ValueError(f"ABI version {version()}, expected {ABI_VERSION} (stale build: rebuild with cmake)")
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    for name, (restype, argtypes) in _OPTIONAL_SIGNATURES.items():
        if hasattr(lib, name):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
    return lib


def load(force: bool = False) -> ctypes.CDLL | None:
    """Load the library once (``force`` retries, e.g. after a build or an env change).

    Returns:
        The library, or None; :func:`reason` says which file was loaded or why none was.
    """
    with _LOCK:
        if _STATE.loaded and not force:
            return _STATE.lib
        _STATE.lib, _STATE.path, _STATE.loaded = None, None, True
        paths = candidate_paths()
        if not paths:
            _STATE.reason = f"native kernels disabled by {ENV_LIB}={os.environ.get(ENV_LIB)!r}"
            return None
        problems = []
        for path in paths:
            if not path.is_file():
                problems.append(f"{_shown(path)}: not found")
                continue
            try:
                lib = _open(path)
            except (OSError, AttributeError, ValueError) as exc:
                problems.append(f"{_shown(path)}: cannot load ({exc})")
                continue
            _STATE.lib, _STATE.path = lib, path
            _STATE.reason = f"loaded {_shown(path)} ({lib.tryon_native_build_info().decode()})"
            log.debug("native kernels: %s", _STATE.reason)
            return lib
        _STATE.reason = ("libtryon_native not usable (build it: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && "
                         "cmake --build build -j2): " + "; ".join(problems))
        log.debug("native kernels: %s", _STATE.reason)
        return None


def available() -> bool:
    """Whether the native library is loaded and usable."""
    return load() is not None


def _shown(path: Path) -> str:
    """``path`` relative to the folder holding the package (the repository in a checkout), so
    reports name no machine's absolute paths."""
    try:
        return str(Path(path).resolve().relative_to(_PACKAGE_DIR.parents[1]))
    except ValueError:
        return str(path)


def reason() -> str:
    """Which library file was loaded, or why none was."""
    load()
    return _STATE.reason


def library_path() -> Path | None:
    """Path of the loaded library, or None."""
    load()
    return _STATE.path


def build_info() -> str:
    """The library's build description (ABI, compiler, CUDA architectures), or ''."""
    lib = load()
    return lib.tryon_native_build_info().decode() if lib else ""


def cpu_path() -> str:
    """Which CPU rows the native kernels run: "avx2", "scalar", or "" without the library."""
    lib = load()
    return lib.tryon_native_cpu_path().decode() if lib else ""


def set_simd(enable: bool) -> bool:
    """Allow (True) or forbid (False) the AVX2 rows; returns the previous setting.

    Both give bit-identical results; forbidding SIMD is for tests and benchmarks.
    """
    lib = load()
    return bool(lib.tryon_native_set_simd(int(enable))) if lib else False


def cuda_available() -> bool:
    """Whether the library has CUDA kernels and a CUDA device is present."""
    lib = load()
    return bool(lib and lib.tryon_native_has_cuda() and lib.tryon_cuda_device_count() > 0)


def set_num_threads(n: int) -> None:
    """Threads of the CPU kernels (1 runs on the calling thread; n > 1 splits the rows)."""
    global _threads
    if int(n) < 1:
        raise ValueError(f"native threads must be >= 1, got {n}")
    _threads = int(n)


def num_threads() -> int:
    """Threads the CPU kernels use: :func:`set_num_threads`, else ``$TRYON_NATIVE_THREADS``, else 1."""
    global _threads
    if _threads is None:
        value = os.environ.get(ENV_THREADS, "").strip() or "1"
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{ENV_THREADS}={value!r}: expected an integer >= 1")
        _threads = int(value)
    return _threads


def set_prefer_native(kernel: str, prefer: bool | None) -> None:
    """Choose native (True), the reference (False) or the measured default (None) for ``kernel``."""
    if kernel not in PREFER_NATIVE:
        raise ValueError(f"unknown native kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    PREFER_NATIVE[kernel] = None if prefer is None else bool(prefer)


def uses_native(kernel: str, prefer_native: bool | None = None) -> bool:
    """Whether a call of ``kernel`` with this ``prefer_native`` would run natively (CPU)."""
    return _use_native(kernel, prefer_native) is not None


def _use_native(kernel: str, prefer_native: bool | None) -> ctypes.CDLL | None:
    prefer = PREFER_NATIVE[kernel] if prefer_native is None else prefer_native
    lib = load()
    if lib is None or prefer is False:
        return None
    if prefer is None and kernel == "composite" and lib.tryon_native_cpu_path() != b"avx2":
        return None
    if kernel in _KERNEL_SYMBOL and not hasattr(lib, _KERNEL_SYMBOL[kernel]):
        return None  # a library built before this kernel
    return lib


def _check(lib: ctypes.CDLL, rc: int, what: str) -> None:
    if rc != 0:
        msg = lib.tryon_native_last_error().decode()
        raise NativeError(f"{what}: {_ERROR_CODES.get(rc, rc)}: {msg}")


def _rows_packed(a: np.ndarray, channels: int) -> bool:
    """Interleaved pixels with packed channels; rows may have any positive stride."""
    return (a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == channels and a.strides[2] == 1
            and a.strides[1] == channels and a.strides[0] >= a.shape[1] * channels)


def _affine_2x3(mat: np.ndarray, name: str) -> np.ndarray:
    m = np.asarray(mat, dtype=np.float64)
    if m.shape not in ((2, 3), (3, 3)):
        raise ValueError(f"{name} must be 2x3 or 3x3, got shape {m.shape}")
    return np.ascontiguousarray(m[:2])


def _homography(mat: np.ndarray) -> np.ndarray:
    m = np.asarray(mat, dtype=np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"frame_from_fg must be 3x3, got shape {m.shape}")
    return np.ascontiguousarray(m)


def preprocess_crop(frame: np.ndarray, crop_from_frame: np.ndarray, size: int, out: np.ndarray | None = None,
                    prefer_native: bool | None = None) -> np.ndarray:
    """Crop, resize and normalise a BGR frame into the network's background input.

    Args:
        frame: (H, W, 3) uint8 BGR camera frame.
        crop_from_frame: 2x3 (or 3x3) affine from frame pixels to crop pixels, e.g.
            :func:`realtime.geometry.crop_from_box`. Bilinear, 0 outside the frame.
        size: crop side S.
        out: optional (1, 3, S, S) float32 C-contiguous array to fill (no allocation).
        prefer_native: override :data:`PREFER_NATIVE` for this call.

    Returns:
        (1, 3, S, S) float32 RGB ImageNet-normalised (``out`` when given).
    """
    m = _affine_2x3(crop_from_frame, "crop_from_frame")
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8 BGR, got {frame.shape} {frame.dtype}")
    if out is not None and (out.shape != (1, 3, size, size) or out.dtype != np.float32
                            or not out.flags.c_contiguous):
        raise ValueError(f"out must be C-contiguous (1, 3, {size}, {size}) float32, got {out.shape} {out.dtype}")
    lib = _use_native("preprocess", prefer_native)
    if lib is None or not _rows_packed(frame, 3):
        result = background_input(cv2.cvtColor(warp_crop(frame, m, size), cv2.COLOR_BGR2RGB))  # (1, 3, S, S)
        if out is None:
            return result
        out[...] = result
        return out
    if out is None:
        out = np.empty((1, 3, size, size), dtype=np.float32)
    rc = lib.tryon_preprocess_crop_u8c3(frame.ctypes.data, frame.shape[0], frame.shape[1], frame.strides[0],
                                        m.ctypes.data, size, _MEAN_RGB.ctypes.data, _INV_STD_RGB.ctypes.data,
                                        out.ctypes.data, num_threads())
    _check(lib, rc, "native preprocess_crop")
    return out


def composite(frame: np.ndarray, acc: PreparedAccessory, frame_from_fg: np.ndarray,
              prefer_native: bool | None = None) -> tuple[int, int, int, int] | None:
    """Warp ``acc`` into ``frame`` and alpha-composite it in place (drop-in for ``composite_roi``).

    Args:
        frame: (H, W, 3) uint8, same channel order as ``acc.premul``; modified in place.
        acc: the prepared (premultiplied) accessory.
        frame_from_fg: 3x3 homography from accessory pixels to frame pixels.
        prefer_native: override :data:`PREFER_NATIVE` for this call.

    Returns:
        The box (x0, y0, x1, y1) that was composited, or None if nothing was drawn.
    """
    h_mat = _homography(frame_from_fg)
    lib = _use_native("composite", prefer_native)
    premul = acc.premul
    if lib is None or not _rows_packed(frame, 3) or not frame.flags.writeable or not _rows_packed(premul, 4):
        return composite_roi(frame, acc, h_mat)
    box = footprint_box(h_mat, acc.corners_xy, (frame.shape[1], frame.shape[0]))
    if box is None:
        return None
    box_c = np.array(box, dtype=np.int32)
    rc = lib.tryon_composite_u8c3(frame.ctypes.data, frame.shape[0], frame.shape[1], frame.strides[0],
                                  premul.ctypes.data, premul.shape[0], premul.shape[1], premul.strides[0],
                                  h_mat.ctypes.data, box_c.ctypes.data, num_threads())
    _check(lib, rc, "native composite")
    return box


def _bgr_u8(src: np.ndarray) -> np.ndarray:
    src = np.asarray(src)
    if src.ndim != 3 or src.shape[2] != 3 or src.dtype != np.uint8:
        raise ValueError(f"src must be (H, W, 3) uint8, got {src.shape} {src.dtype}")
    return src


def _out_u8(out: np.ndarray | None, shape: tuple[int, int, int]) -> np.ndarray:
    """``out`` checked to be ``shape`` uint8, or a new array of it."""
    if out is None:
        return np.empty(shape, np.uint8)
    if out.shape != shape or out.dtype != np.uint8:
        raise ValueError(f"out must be {shape} uint8, got {out.shape} {out.dtype}")
    return out


def _index_table(idx: np.ndarray, limit: int, name: str) -> np.ndarray:
    t = np.ascontiguousarray(idx, dtype=np.int32)
    if t.ndim != 1 or t.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D index table, got shape {np.shape(idx)}")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= limit:
        raise ValueError(f"{name} holds {lo if lo < 0 else hi}, outside [0, {limit})")
    return t


_remap_cache: dict[str, Any] = {"key": None, "map": None}


def _nearest_map(src_x: np.ndarray, src_y: np.ndarray) -> np.ndarray:
    """(out_h, out_w, 2) int16 map for ``cv2.remap`` from the tables (the last one reused)."""
    key = (src_x.tobytes(), src_y.tobytes())
    if _remap_cache["key"] != key:
        xy = np.empty((src_y.size, src_x.size, 2), np.int16)
        xy[..., 0], xy[..., 1] = src_x[None, :], src_y[:, None]
        _remap_cache["key"], _remap_cache["map"] = key, xy
    return _remap_cache["map"]


def resample_nearest(src: np.ndarray, src_x: np.ndarray, src_y: np.ndarray, out: np.ndarray | None = None,
                     prefer_native: bool | None = None) -> np.ndarray:
    """``out[y, x] = src[src_y[y], src_x[x]]``: any nearest-neighbour resize (and a mirror, with a
    descending ``src_x``) in one pass that reads only the rows and pixels it keeps.

    Args:
        src: (H, W, 3) uint8 (rows may be strided, pixels packed).
        src_x: (out_w,) column indices in [0, W); src_y: (out_h,) row indices in [0, H).
        out: optional (out_h, out_w, 3) uint8 to fill (not overlapping ``src``).
        prefer_native: override :data:`PREFER_NATIVE` for this call.

    Returns:
        ``out`` (allocated when not given).

    Raises:
        ValueError: an index outside ``src``, or ``out`` of the wrong shape.
    """
    src = _bgr_u8(src)
    xs = _index_table(src_x, src.shape[1], "src_x")
    ys = _index_table(src_y, src.shape[0], "src_y")
    shape = (ys.size, xs.size, 3)
    out = _out_u8(out, shape)
    lib = _use_native("preview", prefer_native)
    if lib is None or not _rows_packed(src, 3) or not _rows_packed(out, 3) or not out.flags.writeable:
        if max(src.shape[:2]) > 32767:
            raise ValueError(f"resample_nearest: a {src.shape[1]}x{src.shape[0]} image is too large for the "
                             "OpenCV fallback (int16 maps); build the native library")
        return cv2.remap(src, _nearest_map(xs, ys), None, cv2.INTER_NEAREST, dst=out)
    rc = lib.tryon_resample_nearest_u8c3(src.ctypes.data, src.shape[0], src.shape[1], src.strides[0],
                                         out.ctypes.data, shape[0], shape[1], out.strides[0], xs.ctypes.data,
                                         ys.ctypes.data, num_threads())
    _check(lib, rc, "native resample_nearest")
    return out


def resize_area(src: np.ndarray, out_wh: tuple[int, int], out: np.ndarray | None = None,
                prefer_native: bool | None = None) -> np.ndarray:
    """``cv2.resize(src, out_wh, interpolation=cv2.INTER_AREA)`` for a shrink, within one grey level:
    the face detectors' letterbox (:func:`realtime.geometry.letterbox`'s ``shrink``). The native
    kernel reads every source byte once (vertical pass first); OpenCV's non-integer area resize
    costs several times that on a large region.

    Args:
        src: (H, W, 3) uint8 (rows may be strided, pixels packed).
        out_wh: (width, height) of the result, each at most the source's and at least 1.
        out: optional (height, width, 3) uint8 to fill (not overlapping ``src``).
        prefer_native: override :data:`PREFER_NATIVE` for this call.

    Returns:
        ``out`` (allocated when not given).

    Raises:
        ValueError: not a (H, W, 3) uint8 image, a size that enlarges or is empty, or ``out``
            of the wrong shape.
    """
    src = _bgr_u8(src)
    out_w, out_h = int(out_wh[0]), int(out_wh[1])
    if not (1 <= out_w <= src.shape[1] and 1 <= out_h <= src.shape[0]):
        raise ValueError(f"resize_area shrinks only: {src.shape[1]}x{src.shape[0]} -> {out_w}x{out_h}")
    shape = (out_h, out_w, 3)
    out = _out_u8(out, shape)
    lib = _use_native("area", prefer_native)
    if lib is None or not _rows_packed(src, 3) or not _rows_packed(out, 3) or not out.flags.writeable:
        return cv2.resize(src, (out_w, out_h), dst=out, interpolation=cv2.INTER_AREA)
    rc = lib.tryon_resize_area_u8c3(src.ctypes.data, src.shape[0], src.shape[1], src.strides[0], out.ctypes.data,
                                    out_h, out_w, out.strides[0], num_threads())
    _check(lib, rc, "native resize_area")
    return out


#: :func:`shrink_rows_sampled` averages at least this many source rows into each output row.
SAMPLED_ROWS_PER_OUTPUT = 6


def sampled_rows(height: int, out_height: int, rows_per_output: int = SAMPLED_ROWS_PER_OUTPUT) -> slice:
    """The rows :func:`shrink_rows_sampled` reads of a ``height``-row image shrunk to ``out_height``:
    every k-th row, k = floor(height / out_height / rows_per_output) (1: all of them), the kept
    rows centred on the image (their mean row is the image's middle row within half a row)."""
    k = max(1, height // max(out_height * max(rows_per_output, 1), 1))
    if k == 1:
        return slice(0, height)
    kept = height // k
    start = int(round((height - 1) / 2 - k * (kept - 1) / 2))
    return slice(start, start + k * (kept - 1) + 1, k)


def shrink_rows_sampled(src: np.ndarray, out_wh: tuple[int, int], out: np.ndarray | None = None,
                        prefer_native: bool | None = None,
                        rows_per_output: int = SAMPLED_ROWS_PER_OUTPUT) -> np.ndarray:
    """:func:`resize_area` over every k-th source row (:func:`sampled_rows`) when the shrink is
    large: the detectors' whole-frame letterbox (a 4K frame into BlazeFace's 128 px input
    averages 30 rows per output row; this reads every 5th, 6 of them: a fifth of the frame's 25 MB).

    Each output pixel is then the mean of its full footprint's columns over ``rows_per_output``
    or more rows spread evenly over its footprint's height, instead of all of them: the same image
    on smooth content, and a box still wide enough that nothing aliases at the scale a detector
    looks at. Geometry is unchanged (the kept rows span the image, centred), so
    :func:`realtime.geometry.letterbox`'s back-mapping holds. Shrinks up to
    ``2 * rows_per_output`` rows per output row read every row (exactly :func:`resize_area`).
    Arguments and errors as :func:`resize_area`.
    """
    src = _bgr_u8(src)
    rows = sampled_rows(src.shape[0], int(out_wh[1]), rows_per_output)
    return resize_area(src[rows], out_wh, out=out, prefer_native=prefer_native)


# --------------------------------------------------------------------------------------
# CUDA: device pointers of torch CUDA tensors
# --------------------------------------------------------------------------------------

def _cuda_lib() -> ctypes.CDLL:
    lib = load()
    if lib is None:
        raise NativeError(f"native CUDA kernels unavailable: {reason()}")
    if not lib.tryon_native_has_cuda():
        raise NativeError(f"{_STATE.path} was built without CUDA (no CUDA toolkit at build time)")
    return lib


def _cuda_tensor(t: Any, name: str, dtype: str, channels: int | None) -> None:
    import torch

    if not (isinstance(t, torch.Tensor) and t.is_cuda):
        raise ValueError(f"{name} must be a CUDA torch tensor, got {type(t).__name__}")
    if str(t.dtype) != dtype:
        raise ValueError(f"{name} must be {dtype}, got {t.dtype}")
    if t.device.index != torch.cuda.current_device():
        raise ValueError(f"{name} is on {t.device}, but the current CUDA device is {torch.cuda.current_device()}")
    if channels is not None and (t.dim() != 3 or t.shape[2] != channels or t.stride(2) != 1
                                 or t.stride(1) != channels):
        raise ValueError(f"{name} must be (H, W, {channels}) with packed pixels, got shape {tuple(t.shape)} "
                         f"strides {t.stride()}")


def _stream_handle(stream: Any) -> int:
    import torch

    if stream is None:
        stream = torch.cuda.current_stream()
    return int(getattr(stream, "cuda_stream", stream))


def preprocess_crop_cuda(frame: Any, crop_from_frame: np.ndarray, size: int, out: Any, stream: Any = None) -> Any:
    """:func:`preprocess_crop` on the GPU, asynchronously on ``stream``.

    Args:
        frame: (H, W, 3) uint8 BGR CUDA tensor (rows may be strided, pixels packed).
        crop_from_frame: 2x3 (or 3x3) affine, host values.
        size: crop side S.
        out: (1, 3, S, S) float32 contiguous CUDA tensor, filled in place.
        stream: a torch.cuda.Stream or raw cudaStream_t handle; default the current stream.

    Returns:
        ``out``.
    """
    lib = _cuda_lib()
    _cuda_tensor(frame, "frame", "torch.uint8", 3)
    _cuda_tensor(out, "out", "torch.float32", None)
    if tuple(out.shape) != (1, 3, size, size) or not out.is_contiguous():
        raise ValueError(f"out must be contiguous (1, 3, {size}, {size}), got {tuple(out.shape)}")
    m = _affine_2x3(crop_from_frame, "crop_from_frame")
    rc = lib.tryon_cuda_preprocess_crop_u8c3(frame.data_ptr(), frame.shape[0], frame.shape[1], frame.stride(0),
                                             m.ctypes.data, size, _MEAN_RGB.ctypes.data, _INV_STD_RGB.ctypes.data,
                                             out.data_ptr(), _stream_handle(stream))
    _check(lib, rc, "native CUDA preprocess_crop")
    return out


def composite_cuda(frame: Any, premul: Any, acc: PreparedAccessory, frame_from_fg: np.ndarray,
                   stream: Any = None) -> tuple[int, int, int, int] | None:
    """:func:`composite` on the GPU, in place on ``frame``, asynchronously on ``stream``.

    Args:
        frame: (H, W, 3) uint8 CUDA tensor (rows may be strided, pixels packed).
        premul: ``acc.premul`` uploaded once: (h, w, 4) uint8 CUDA tensor.
        acc: the prepared accessory (its corners give the footprint box).
        frame_from_fg: 3x3 homography, host values.
        stream: a torch.cuda.Stream or raw cudaStream_t handle; default the current stream.

    Returns:
        The box that was composited, or None if nothing was drawn.
    """
    lib = _cuda_lib()
    _cuda_tensor(frame, "frame", "torch.uint8", 3)
    _cuda_tensor(premul, "premul", "torch.uint8", 4)
    if tuple(premul.shape) != acc.premul.shape:
        raise ValueError(f"premul tensor {tuple(premul.shape)} does not match the accessory {acc.premul.shape}")
    h_mat = _homography(frame_from_fg)
    box = footprint_box(h_mat, acc.corners_xy, (frame.shape[1], frame.shape[0]))
    if box is None:
        return None
    box_c = np.array(box, dtype=np.int32)
    rc = lib.tryon_cuda_composite_u8c3(frame.data_ptr(), frame.shape[0], frame.shape[1], frame.stride(0),
                                       premul.data_ptr(), premul.shape[0], premul.shape[1], premul.stride(0),
                                       h_mat.ctypes.data, box_c.ctypes.data, _stream_handle(stream))
    _check(lib, rc, "native CUDA composite")
    return box
