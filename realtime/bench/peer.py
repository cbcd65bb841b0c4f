"""The peer of ``tryon bench``: MediaPipe FaceMesh + a glasses warp on the same frames, in the same run.

MediaPipe lives in the teacher virtualenv (it pins numpy<2), never in this environment:
:class:`FaceMeshPeer` starts :mod:`realtime.bench.peer_worker` with the teacher venv's
python and sends it one frame index at a time over a pipe, so its frames interleave with
the pipeline's and the ratio (per-frame path / peer) comes from the same moments of a shared
machine. The worker gets the very JPEG bytes the pipeline decodes and the bundled glasses.

The environment: ``$TEACHER_VENV``, else ``.venv-teacher`` at the repository root (where
``bash training/teacher/setup_env.sh`` creates it). When it is absent, :func:`peer_python`
raises :class:`PeerUnavailable` with the command that creates it; ``tryon bench --peer auto``
then reports the peer as not measured and why.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from realtime.accessories import Accessory

#: Environment variable naming the teacher virtualenv (the same one training/teacher reads).
ENV_VENV = "TEACHER_VENV"
#: Where the setup script puts it when no variable is set.
DEFAULT_VENV = Path(__file__).resolve().parents[2] / ".venv-teacher"
SETUP_COMMAND = "bash training/teacher/setup_env.sh"
WORKER = Path(__file__).resolve().with_name("peer_worker.py")
#: Stages the worker times, in order (``end_to_end``: capture to display).
PEER_STAGES = ("capture", "landmarks", "composite", "display", "end_to_end")
#: What the peer's stages include (printed with the report).
PEER_NOTE = ("MediaPipe FaceMesh (video mode, 1 face, no iris refinement; BGR->RGB included) + a glasses warp "
             "from the outer eye corners (getPerspectiveTransform, premultiplied warp + blend inside the footprint) "
             "+ the mirror into a reused buffer, on the same JPEG frames (decode included), in the teacher env; "
             "MediaPipe picks its own threads")


class PeerUnavailable(RuntimeError):
    """The teacher environment is missing (the message says how to create it)."""


class PeerError(RuntimeError):
    """The peer worker failed (the message carries its error and the end of its stderr)."""


def peer_python(venv: str | Path | None = None) -> Path:
    """The teacher venv's python: ``venv``, else ``$TEACHER_VENV``, else ``<repo>/.venv-teacher``.

    Raises:
        PeerUnavailable: no python there (the message names where it looked and the setup command).
    """
    where = Path(venv) if venv else Path(os.environ[ENV_VENV]) if os.environ.get(ENV_VENV) else DEFAULT_VENV
    py = where / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if not py.exists():
        origin = "--peer-venv" if venv else f"${ENV_VENV}" if os.environ.get(ENV_VENV) else \
            f"the default (${ENV_VENV} is not set)"
        raise PeerUnavailable(f"the MediaPipe peer needs the teacher environment: {where} ({origin}) has no "
                              f"{py.relative_to(where)}. Create it with `{SETUP_COMMAND} {where}` or point "
                              f"${ENV_VENV} at one")
    return py


class FaceMeshPeer:
    """The peer worker on ``jpegs`` with the accessory ``acc``; use as a context manager.

    Args:
        jpegs: the frames, as the pipeline gets them.
        acc: the glasses to warp (its alpha-box corners define the warp).
        venv: the teacher venv (None: :func:`peer_python`'s default).
        timeout_s: longest wait for the worker to start or to answer one frame.

    Raises:
        PeerUnavailable: no teacher environment.
        PeerError: the worker did not start (its message and stderr are in the error).
    """

    def __init__(self, jpegs: Sequence[bytes], acc: Accessory, venv: str | Path | None = None,
                 timeout_s: float = 180.0) -> None:
        self.python = peer_python(venv)
        self.timeout_s = timeout_s
        self._tmp = tempfile.TemporaryDirectory(prefix="tryon_peer_")
        tmp = Path(self._tmp.name)
        (tmp / "frames").mkdir()
        for i, data in enumerate(jpegs):
            (tmp / "frames" / f"frame_{i:05d}.jpg").write_bytes(data)
        png = tmp / "accessory.png"
        if not cv2.imwrite(str(png), np.ascontiguousarray(acc.rgba[..., [2, 1, 0, 3]])):
            raise PeerError(f"could not write the accessory for the peer to {png}")
        corners = json.dumps(np.asarray(acc.init_vertex_xy, np.float64).tolist())
        # the teacher interpreter must not see this environment's packages
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self._stderr_path = tmp / "stderr.txt"
        self._stderr = open(self._stderr_path, "w", encoding="utf-8")
        try:
            self.proc = subprocess.Popen([str(self.python), str(WORKER), "--frames", str(tmp / "frames"),
                                          "--accessory", str(png), "--corners", corners],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         text=True, env=env, bufsize=1)
        except OSError as exc:
            self._stderr.close()
            self._tmp.cleanup()
            raise PeerError(f"cannot start the peer worker with {self.python}: {exc}") from exc
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name="tryon-peer-reader").start()
        try:
            self.info = self._answer("starting")
        except BaseException:
            self.close()
            raise
        if not self.info.get("ready"):
            self.close()
            raise PeerError(f"peer worker ({self.python}): unexpected first line {self.info}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _stderr_tail(self) -> str:
        self._stderr.flush()
        text = self._stderr_path.read_text(encoding="utf-8", errors="replace").strip()
        return ("; its stderr ends: " + text[-1500:]) if text else ""

    def _answer(self, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=self.timeout_s)
        except queue.Empty:
            raise PeerError(f"peer worker ({self.python}) gave no answer within {self.timeout_s:g} s while "
                            f"{what}{self._stderr_tail()}") from None
        if line is None:
            raise PeerError(f"peer worker ({self.python}) exited (code {self.proc.wait()}) while {what}"
                            f"{self._stderr_tail()}")
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            raise PeerError(f"peer worker ({self.python}): not a JSON line while {what}: {line[:200]!r}") from None
        if "error" in msg:
            raise PeerError(f"peer worker ({self.python}) failed while {what}: {msg['error']}{self._stderr_tail()}")
        return msg

    def step(self, index: int) -> dict[str, Any]:
        """Run frame ``index`` (modulo the frame count) through the peer; its reply
        (``ms`` per :data:`PEER_STAGES`, ``found``, ``quad``, ``drawn_px``)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{int(index)}\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise PeerError(f"peer worker ({self.python}) is gone: {exc}{self._stderr_tail()}") from None
        return self._answer(f"on frame {index}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        self._tmp.cleanup()

    def __enter__(self) -> "FaceMeshPeer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
