"""Helpers of the fault battery: run ``tryon`` commands in a child process under a fault (a
file-size limit standing in for a full disk, an unprivileged user for a folder without write
rights, a signal), make small inputs, read outputs back."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def child_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO),
                OPENCV_FFMPEG_LOGLEVEL="-8", **extra)


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1


def drop_write_override() -> None:
    """In a child about to exec: give up root's override of write permissions (CAP_DAC_OVERRIDE,
    dropped from the bounding set, so the exec'd program never has it). A folder mode 0555 then
    refuses writes to root too, while everything root owns stays readable (unlike switching to
    an unprivileged user, who may not even reach the interpreter)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE)")


def preexec(fsize: int | None = None, no_write_override: bool = False):
    """The ``preexec_fn`` of a child under a fault."""
    def pre() -> None:
        if fsize is not None:  # a full disk: writes past fsize bytes fail with EFBIG instead of a signal
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if no_write_override:
            drop_write_override()
    return pre


def run_tryon(args: list[str], *, fsize: int | None = None, no_write_override: bool = False,
              cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
    """``python -m realtime.cli ARGS`` in a child process (``fsize``: RLIMIT_FSIZE in bytes;
    ``no_write_override``: root's override of folder permissions dropped)."""
    proc = subprocess.run([sys.executable, "-m", "realtime.cli", *map(str, args)],
                          preexec_fn=preexec(fsize, no_write_override),
                          cwd=cwd or REPO, env=child_env(**(env or {})), capture_output=True, text=True,
                          timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_clip(path: Path, frames: int, size_wh=(320, 180), fps: float = 15.0) -> Path:
    """A short clip of the astronaut portrait under synthetic motion, written by the product's
    own recorder (MJPG in an AVI)."""
    from skimage.data import astronaut

    from realtime.live.capture import PortraitMotionSource
    from realtime.live.record import VideoRecorder

    src = PortraitMotionSource(astronaut(), size_wh=size_wh, fps=fps, seconds=frames / fps)
    with VideoRecorder(path.with_suffix(".avi"), fps, size_wh) as rec:
        while (frame := src.read()) is not None:
            rec.write(frame.image)
    return rec.path


def count_frames(path: Path) -> int:
    """Frames that decode from ``path`` (0 when it does not open)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.isOpened() and cap.read()[0]:
        n += 1
    cap.release()
    return n
