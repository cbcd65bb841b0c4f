"""Package layout: import direction, lazy heavy imports, the console script."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    """Top-level package names ``path`` imports (anywhere in the file, lazy imports included)."""
    return {name.split(".")[0] for name in _modules_imported(path)}


def _modules_imported(path: Path) -> set[str]:
    """Dotted module names ``path`` imports, anywhere in the file (function-level imports too).

    ``from pkg import name`` counts as ``pkg.name`` when that is a module of the tree, else ``pkg``.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                names.add(sub if _module_path(sub) is not None else node.module)
    return names


def _module_path(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _layer(module: str) -> str:
    """``core`` (realtime/*.py), ``backends``, ``live``, ``bench``, or the top-level package."""
    parts = module.split(".")
    if parts[0] != "realtime":
        return parts[0]
    if len(parts) > 1 and parts[1] in ("backends", "live", "bench"):
        return parts[1]
    return "core"


#: What each layer may import from realtime: a layer builds on the ones before it, never on
#: the ones after it (no import runs back up).
ALLOWED = {
    "core": {"core"},
    "backends": {"core", "backends"},
    "live": {"core", "backends", "live"},
    "bench": {"core", "backends", "live", "bench"},
    "training": {"core", "backends"},
    "engine_build": {"core", "backends"},
}
#: Stated exceptions: (importing module, imported module) -> why.
EXCEPTIONS = {
    ("training.ship", "realtime.live.capture"): "the Helen pupil check runs the live pipeline on photos",
    ("training.ship", "realtime.live.pipeline"): "the Helen pupil check runs the live pipeline on photos",
    ("engine_build.doctor", "realtime.live.doctor"): "tryon doctor runs the user checks (camera, display, H.264, "
                                                     "virtual camera) before the engine checks",
}


def _tree_modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in ("realtime", "training", "engine_build") for p in (ROOT / pkg).rglob("*.py")}


def test_realtime_never_imports_training_or_engine_build():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "realtime").rglob("*.py")
                 if _imports(p) & {"training", "engine_build"}]
    assert not offenders


def test_layers_import_only_the_layers_below():
    offenders = []
    for name, path in sorted(_tree_modules().items()):
        allowed = ALLOWED[_layer(name)]
        for dep in sorted(_modules_imported(path)):
            if dep.split(".")[0] != "realtime" or (name, dep) in EXCEPTIONS:
                continue
            if _layer(dep) not in allowed:
                offenders.append(f"{name} -> {dep} ({_layer(name)} may import {sorted(allowed)})")
    assert not offenders, "\n".join(offenders)


def test_no_import_cycle_inside_realtime():
    modules = {n: p for n, p in _tree_modules().items() if n.startswith("realtime")}
    graph = {n: {d for d in _modules_imported(p) if d in modules and d != n} for n, p in modules.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_core_stays_small():
    """The top level of realtime/ is the shared core only (at most 15 modules)."""
    top = sorted(p.name for p in (ROOT / "realtime").glob("*.py"))
    assert len(top) <= 15, top


def test_the_layering_rules_can_fail(tmp_path, monkeypatch):
    """The checks above see a lazy import that runs back up, and a cycle."""
    fake = tmp_path / "realtime"
    (fake / "live").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "live" / "__init__.py").write_text("")
    (fake / "geometry.py").write_text("def f():\n    from realtime.live import app\n")
    (fake / "live" / "app.py").write_text("from realtime.geometry import f\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    mods = {_module_name(p): p for p in fake.rglob("*.py")}
    assert "realtime.live.app" in _modules_imported(mods["realtime.geometry"])
    assert _layer("realtime.live.app") not in ALLOWED[_layer("realtime.geometry")]
    with pytest.raises(AssertionError, match="import cycles"):
        monkeypatch.setattr(sys.modules[__name__], "_tree_modules", lambda: mods)
        test_no_import_cycle_inside_realtime()


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
