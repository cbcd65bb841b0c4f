"""Build hook (metadata is in pyproject.toml): ``build_py`` also compiles the optional native
kernels with CMake (:mod:`engine_build.native_build`), into the wheel's ``realtime/_native/``,
or, for an editable install, into the source tree's ``realtime/_native/`` where
:mod:`realtime.live.native` looks. No compiler: the install goes on and the fallbacks run."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_build.native_build import build_native  # noqa: E402  (standard library only)


class BuildPyWithNative(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        package = root / "realtime" if getattr(self, "editable_mode", False) else Path(self.build_lib) / "realtime"
        build_native(package / "_native", root / "build" / "pip-native")


class BinaryDistribution(Distribution):
    """The wheel carries a compiled library: tag it for the platform."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildPyWithNative}, distclass=BinaryDistribution)
