"""The install-time build of the native kernels (setup.py -> engine_build.native_build): built when CMake
and a compiler exist, skipped with a clear message otherwise, never failing the install."""

from __future__ import annotations

import ctypes
import shutil

import pytest

from engine_build import native_build


def test_no_cmake_skips_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no cmake here
    assert native_build.build_native(tmp_path / "dest", tmp_path / "build") is None
    assert "no 'cmake' on PATH" in capsys.readouterr().err
    assert not (tmp_path / "dest").exists()


def test_opt_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(native_build.ENV_SKIP, "0")
    assert native_build.build_native(tmp_path / "dest", tmp_path / "build") is None
    assert "skipped" in capsys.readouterr().err


def test_a_failing_build_does_not_fail_the_install(tmp_path, capsys):
    if shutil.which("cmake") is None:
        pytest.skip("no cmake")
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.18)\nproject(x CXX)\n"
                                        "message(FATAL_ERROR \"broken on purpose\")\n")
    assert native_build.build_native(tmp_path / "dest", tmp_path / "build", source_dir=src) is None
    err = capsys.readouterr().err
    assert "failed (exit" in err and "broken on purpose" in err and "fallbacks will run" in err


@pytest.mark.slow
def test_builds_the_library_the_loader_accepts(tmp_path):
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.skip("no cmake / C++ compiler")
    from realtime.live import native

    lib = native_build.build_native(tmp_path / "_native", tmp_path / "build")
    assert lib is not None and lib.name == native.LIB_NAME
    handle = ctypes.CDLL(str(lib))
    handle.tryon_native_abi_version.restype = ctypes.c_int
    assert handle.tryon_native_abi_version() == native.ABI_VERSION
