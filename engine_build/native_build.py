"""Build the optional native kernels (``CMakeLists.txt`` -> ``libtryon_native.so``) from ``pip install``.

``setup.py`` calls :func:`build_native` from its ``build_py`` step, so ``pip install .`` and
``pip install -e .`` compile the kernels that :mod:`realtime.live.native` loads with ctypes,
without a separate CMake step. They stay optional: without CMake or a C++ compiler, or when
the build fails, the install goes on with a warning and :mod:`realtime.live.native` falls back to
the OpenCV/NumPy references (``realtime.live.native.reason()`` says why). ``TRYON_NATIVE_BUILD=0``
skips the build; ``TRYON_NATIVE_CMAKE_ARGS`` adds CMake options (e.g.
``-DTRYON_NATIVE_CUDA=OFF``).

Standard library only: this runs inside pip's isolated build environment.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB_NAME = "libtryon_native.so"
ENV_SKIP = "TRYON_NATIVE_BUILD"
ENV_ARGS = "TRYON_NATIVE_CMAKE_ARGS"


def _say(msg: str) -> None:
    print(f"tryon native kernels: {msg}", file=sys.stderr, flush=True)


def build_native(dest_dir: str | Path, build_dir: str | Path, source_dir: str | Path = ROOT,
                 cmake: str | None = None, jobs: int = 2) -> Path | None:
    """Configure and build the ``tryon_native`` target and copy the library into ``dest_dir``.

    Returns:
        The installed library, or None when it was skipped or could not be built (the
        reason is printed; the install goes on without native kernels).
    """
    if os.environ.get(ENV_SKIP, "1").strip().lower() in ("0", "off", "no", "false"):
        _say(f"skipped (${ENV_SKIP}={os.environ[ENV_SKIP]}); the OpenCV/NumPy fallbacks will run")
        return None
    cmake = cmake or shutil.which("cmake")
    if cmake is None:
        _say("not built: no 'cmake' on PATH (install CMake and a C++17 compiler, then reinstall); "
             "the OpenCV/NumPy fallbacks will run")
        return None
    build_dir = Path(build_dir)
    configure = [cmake, "-S", str(source_dir), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                 "-DTRYON_NATIVE_COPY_TO_PACKAGE=OFF", *shlex.split(os.environ.get(ENV_ARGS, ""))]
    build = [cmake, "--build", str(build_dir), "--target", "tryon_native", "-j", str(jobs)]
    _say(f"building with {cmake} in {build_dir}")
    for cmd in (configure, build):
        try:
            res = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as exc:
            _say(f"not built: cannot run {cmd[0]}: {exc}; the OpenCV/NumPy fallbacks will run")
            return None
        if res.returncode != 0:
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-15:])
            _say(f"not built: '{' '.join(cmd[:2])} ...' failed (exit {res.returncode}); the OpenCV/NumPy "
                 f"fallbacks will run. Last lines:\n{tail}")
            return None
    built = sorted(build_dir.rglob(LIB_NAME))
    if not built:
        _say(f"not built: the build finished but no {LIB_NAME} is in {build_dir}")
        return None
    dest = Path(dest_dir) / LIB_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".so.tmp")
    shutil.copy2(built[0], tmp)
    os.replace(tmp, dest)  # a running process that loaded the old copy keeps its mapping
    _say(f"built {dest}")
    return dest
