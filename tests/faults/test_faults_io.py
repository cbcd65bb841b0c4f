"""Fault battery: files the project writes get ordinary modes, and claims on output paths."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from faultkit import REPO, child_env


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_honour_the_umask(tmp_path, umask):
    """Before: every checkpoint, ONNX graph, config, dataset file and report was mode 0600."""
    target = tmp_path / "report.json"
    code = ("import os, sys; os.umask(int(sys.argv[2], 8)); from realtime.io import atomic_write_bytes; "
            "atomic_write_bytes(sys.argv[1], b'{}')")
    subprocess.run([sys.executable, "-c", code, str(target), oct(umask)], cwd=REPO, env=child_env(), check=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["report.json"]  # no temporary file left


def test_second_claim_of_an_output_is_refused_and_a_released_claim_is_free(tmp_path):
    from realtime.io import OutputInUse, claim_output

    out = tmp_path / "video.mp4"
    release = claim_output(out)
    code = "import sys; from realtime.io import claim_output; claim_output(sys.argv[1])"
    other = subprocess.run([sys.executable, "-c", code, str(out)], cwd=REPO, env=child_env(), capture_output=True,
                           text=True)
    assert other.returncode != 0 and f"{out} is being written by another process (pid {os.getpid()})" in other.stderr
    with pytest.raises(OutputInUse):
        claim_output(out)  # in the same process too
    release()
    release()  # idempotent
    claim_output(out)()
    assert not any(p.name.endswith(".lock") for p in tmp_path.iterdir())  # nothing left behind
