"""Which TensorRT wheels fit which NVIDIA driver: the one table behind the install extras,
the README and ``tryon doctor``.

TensorRT's pip wheels come per CUDA major version (``tensorrt-cu12``, ``tensorrt-cu13``). The
plain ``tensorrt`` metapackage follows the newest CUDA: from 10.13.x on it pulls
``tensorrt_cu13`` (CUDA 13, driver r580+), up to 10.12 it pulled ``tensorrt_cu12``. So a user
with an r535-r575 driver (CUDA 12) who runs ``pip install tensorrt`` gets libraries their
driver cannot run. The extras pin the per-CUDA packages instead:

==============  =====================  ======================================  =================
extra           package                CUDA / NVIDIA driver (Linux)            TensorRT
==============  =====================  ======================================  =================
``trt-cu12``    ``tensorrt-cu12``      CUDA 12.x: driver >= 535                10.0 ... 11.x
``trt-cu13``    ``tensorrt-cu13``      CUDA 13.x: driver >= 580                10.13.2 ... 11.x
==============  =====================  ======================================  =================

(TensorRT 11.4 installation prerequisites: r580+ for the CUDA 13 packages, r535+ on Linux
for the CUDA 12 pip wheels. ``cuDriverGetVersion`` reports the newest CUDA the driver runs:
12020 for r535, 13000 for r580.)

Both extras also install ``pycuda``, which has no wheels: pip compiles it, which needs the
CUDA toolkit headers (``cuda.h``; ``nvcc`` on the PATH or ``CUDA_ROOT`` set) and a C++
compiler. Nothing here imports TensorRT or pycuda.
"""

from __future__ import annotations

import ctypes
import importlib.metadata as metadata
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class TrtWheel:
    """One row of the table: a CUDA major version's TensorRT wheels and the driver they need."""

    cuda_major: int
    extra: str
    package: str
    #: The requirement in pyproject.toml's extra (tests check the two agree).
    requirement: str
    #: Lowest ``cuDriverGetVersion`` value (1000 * major + 10 * minor) that runs these wheels.
    min_driver_cuda: int
    min_driver_release: str


WHEELS: tuple[TrtWheel, ...] = (
    TrtWheel(12, "trt-cu12", "tensorrt-cu12", "tensorrt-cu12>=10.0,<12", 12020, "535"),
    TrtWheel(13, "trt-cu13", "tensorrt-cu13", "tensorrt-cu13>=10.13.2,<12", 13000, "580"),
)
#: The other requirement of both extras.
PYCUDA_REQUIREMENT = "pycuda>=2022.2"

#: Distributions whose presence says which CUDA build of TensorRT is installed
#: (the ``*-libs`` / ``*-bindings`` wheels that the per-CUDA packages pull in).
_DISTRIBUTIONS = {12: ("tensorrt-cu12", "tensorrt-cu12-libs", "tensorrt-cu12-bindings"),
                  13: ("tensorrt-cu13", "tensorrt-cu13-libs", "tensorrt-cu13-bindings")}


def pip_extra(extra: str) -> str:
    """The install command for one extra, from the repository root."""
    return f"pip install -e '.[{extra}]'"


def install_hint() -> str:
    """The install line for error messages (both extras, and how to choose)."""
    rows = "; ".join(f"driver >= {w.min_driver_release}: {pip_extra(w.extra)}" for w in reversed(WHEELS))
    return f"{rows} (README, 'Install'; pycuda builds from source and needs the CUDA toolkit headers)"


def cuda_version_text(value: int | None) -> str:
    """12080 -> "12.8"."""
    return "?" if value is None else f"{value // 1000}.{(value % 1000) // 10}"


def driver_cuda_version() -> int | None:
    """``cuDriverGetVersion`` of the installed driver (via ``libcuda``; None without a driver)."""
    name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    out = ctypes.c_int(0)
    if lib.cuDriverGetVersion(ctypes.byref(out)) != 0:
        return None
    return int(out.value)


def installed_tensorrt_cuda_major() -> tuple[int | None, str | None]:
    """``(CUDA major, distribution)`` of the installed TensorRT wheels, from package metadata.

    The ``tensorrt`` metapackage is resolved through its requirement (``tensorrt_cu13==...``).
    ``(None, None)`` when no TensorRT wheel is installed (or TensorRT came from a tar/deb install).
    """
    for major, names in _DISTRIBUTIONS.items():
        for name in names:
            try:
                metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
            return major, name
    try:
        requires = metadata.requires("tensorrt") or []
    except metadata.PackageNotFoundError:
        return None, None
    for req in requires:
        low = req.lower().replace("-", "_")
        for major in _DISTRIBUTIONS:
            if low.startswith(f"tensorrt_cu{major}"):
                return major, "tensorrt"
    return None, None


def best_wheel(driver_cuda: int | None) -> TrtWheel | None:
    """The newest row the driver runs (None: the driver is too old for any, or unknown)."""
    if driver_cuda is None:
        return None
    fits = [w for w in WHEELS if driver_cuda >= w.min_driver_cuda]
    return fits[-1] if fits else None


def driver_problems(driver_cuda: int | None, trt_cuda_major: int | None, trt_dist: str | None = None,
                    driver_release: str | None = None) -> list[str]:
    """Why the installed TensorRT cannot run on this driver, with the extra to use instead (empty: fine).

    Args:
        driver_cuda: :func:`driver_cuda_version` (None: no driver found).
        trt_cuda_major: CUDA major of the installed TensorRT (None: not installed / unknown).
        trt_dist: the distribution that told (named in the message).
        driver_release: the driver release (``nvidia-smi``), named in the message if known.
    """
    drv = f"driver {driver_release} " if driver_release else "the driver "
    if driver_cuda is None:
        return ["no NVIDIA driver found (libcuda.so.1 did not load): install the NVIDIA driver first; then "
                + install_hint()]
    best = best_wheel(driver_cuda)
    if best is None:
        oldest = WHEELS[0]
        return [f"{drv}supports CUDA {cuda_version_text(driver_cuda)}; TensorRT's pip wheels need at least CUDA "
                f"{cuda_version_text(oldest.min_driver_cuda)} (driver >= {oldest.min_driver_release}): update the "
                f"NVIDIA driver, then {pip_extra(oldest.extra)}"]
    if trt_cuda_major is None:
        return []
    wheel = next((w for w in WHEELS if w.cuda_major == trt_cuda_major), None)
    if wheel is not None and driver_cuda < wheel.min_driver_cuda:
        return [f"the installed TensorRT ({trt_dist or 'tensorrt'}) is built for CUDA {trt_cuda_major} and needs "
                f"driver >= {wheel.min_driver_release}, but {drv}supports CUDA {cuda_version_text(driver_cuda)}: "
                f"pip uninstall -y tensorrt {' '.join(_DISTRIBUTIONS[trt_cuda_major])} && "
                f"{pip_extra(best.extra)} "
                f"(or update the driver to >= {wheel.min_driver_release})"]
    return []
