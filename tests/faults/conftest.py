"""Fixtures of the fault battery (helpers in ``faultkit``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import preexec, write_clip


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """One folder for the session's inputs."""
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def tiny_glasses(shared_dir) -> Path:
    """A random-init ``tiny`` glasses checkpoint (no fault here depends on what it predicts)."""
    torch = pytest.importorskip("torch")
    from realtime.checkpoint import save_checkpoint
    from realtime.config import model_preset
    from realtime.model import TryOnNet

    torch.manual_seed(0)
    cfg = model_preset("tiny", "glasses")
    path = shared_dir / "glasses_tiny.pt"
    save_checkpoint(path, TryOnNet(cfg).state_dict(), cfg, meta={"note": "fault battery: random init"})
    return path


@pytest.fixture(scope="session")
def clip(shared_dir) -> Path:
    """12 frames of the moving astronaut, 320x180, 15 fps."""
    return write_clip(shared_dir / "clip.avi", 12)


@pytest.fixture(scope="session")
def read_only_dir(shared_dir) -> Path:
    """A folder (mode 0555) that children started with ``no_write_override=True`` cannot write into,
    even as root (CI runs as root, which otherwise writes anywhere)."""
    path = shared_dir / "read_only"
    path.mkdir()
    path.chmod(0o555)
    try:
        probe = subprocess.run([sys.executable, "-c", f"open({str(path / 'probe')!r}, 'w')"], capture_output=True,
                               text=True, preexec_fn=preexec(no_write_override=True))
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot start a child without root's write override here: {exc}")
    if probe.returncode == 0:
        pytest.skip("cannot drop root's write override here (prctl PR_CAPBSET_DROP refused?), so no folder "
                    "is unwritable to the child")
    yield path
    path.chmod(0o755)
