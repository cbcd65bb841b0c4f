"""File writes that never leave a torn file, exclusive claims on output paths, and content hashes.

Every artifact the project writes (checkpoints, ONNX graphs, engines, configs, datasets,
reports) goes through :func:`atomic_write_bytes`: a temporary file in the same folder,
fsynced, then ``os.replace``-d over the target, so a crash or Ctrl-C never leaves a
truncated file. The file gets the mode any other new file would get (0666 less the umask).

Files written progressively (videos, keypoint logs) are claimed first with
:func:`claim_output`, so two processes never write the same path at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the classic swap (not thread-safe, but brief)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename), mode 0666 & ~umask.

    Raises:
        OSError: of the same kind as the cause (full disk, permission, read-only file system),
            with a message naming ``path``; nothing was replaced.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), 0o666 & ~current_umask())  # mkstemp creates 0600
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:  # name the file (a write error names none)
            raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror} (nothing was replaced: an earlier "
                            f"{path.name}, if any, is intact)") from exc
        raise


def ensure_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check that it takes a new file (permissions, read-only
    file system, a full disk's inode table), so a long job fails before it starts, not at the end.

    Raises:
        OSError: of the cause's kind, with a message naming the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise type(exc)(exc.errno, f"folder {folder} is not writable ({exc.strerror or exc}); choose another "
                        "folder or fix its permissions") from None
    return folder


class OutputInUse(RuntimeError):
    """Another process is writing the same output path."""


def claim_output(path: str | Path) -> Callable[[], None]:
    """Claim ``path`` for this process until the returned function is called.

    The claim is an advisory ``flock`` on a hidden sibling ``.NAME.lock`` (released by the
    OS if the process dies, so a crash never leaves a stale claim). Where ``fcntl`` does not
    exist (Windows) nothing is locked.

    Raises:
        OutputInUse: another process holds the claim.
        OSError: the folder cannot be written (permission, read-only file system).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return lambda: None
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputInUse(f"{path} is being written by another process (pid {holder}); wait for it to "
                              "finish or choose another output path") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino  # not unlinked by a releasing holder meanwhile
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    held = [True]

    def release() -> None:
        if held.pop() if held else False:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            os.close(fd)

    return release


def file_sha256(path: str | Path, length: int = 16) -> str:
    """Short content hash of a file (recorded in exported artifacts)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]
