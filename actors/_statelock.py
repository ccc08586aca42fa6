"""Advisory lock files: one process at a time on a state directory or a driver's root.

Two daemons with the same identity on one state directory would share its
registry rows, and two drivers on one root its files: the second one's setup
could undo the first one's work in progress (a half-written snapshot), and its
exit mark the first one's rows stopped. The lock is taken before anything is
touched, never waits, and the kernel lets go of it when the process ends,
however it ends. Within one process a second holder is refused too (flock
locks belong to the open file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path

from actors.errors import StateDirInUse


class LockFile:
    """An exclusive flock on `path`, taken with `acquire()` and given back with `release()`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).absolute()
        self._fd: int | None = None

    def acquire(self) -> LockFile:
        """Take the lock or raise StateDirInUse at once (with the holder's pid if known)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateDirInUse(str(self.path), holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:  # e.g. a full disk: give the lock back
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go (idempotent). The file stays: removing it could race a new holder."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock


def service_lock(state_dir: Path, binary: str, host: str) -> LockFile:
    """The lock of one service identity (binary and host) in its state directory."""
    name = re.sub(r"[^A-Za-z0-9._@-]", "_", f"{binary}@{host}")
    return LockFile(Path(state_dir) / f"{name}.lock")


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
