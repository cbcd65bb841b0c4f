"""Package layout: import direction, lazy heavy imports, the console script."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_realtime_never_imports_training_or_engine_build():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "realtime").rglob("*.py")
                 if _imports(p) & {"training", "engine_build"}]
    assert not offenders


def test_core_modules_import_without_torch():
    code = ("import sys; import realtime.geometry, realtime.codec, realtime.config, realtime.preprocess, "
            "realtime.cli; bad=[m for m in ('torch','tensorrt','pycuda','onnxruntime') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cli_help_and_version():
    from realtime import __version__
    from realtime.cli import SUBCOMMANDS

    res = subprocess.run([sys.executable, "-m", "realtime.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0
    for name in ("make-dataset", "train", "eval", "export", "build-engine", "live", "record", "demo", "bench"):
        assert name in SUBCOMMANDS and name in res.stdout
    res = subprocess.run([sys.executable, "-m", "realtime.cli", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and __version__ in res.stdout


def test_every_subcommand_target_resolves():
    from realtime.cli import SUBCOMMANDS, resolve

    missing = []
    for name in SUBCOMMANDS:
        try:
            resolve(name)
        except (ModuleNotFoundError, AttributeError) as exc:
            missing.append(f"{name}: {exc}")
    if missing:
        pytest.fail("unresolved subcommands: " + "; ".join(missing))
