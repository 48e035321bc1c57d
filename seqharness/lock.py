"""One run per spec at a time.

The lock is an ``flock`` on ``<spec>/.seqharness/run.lock``.  The kernel
drops it when the holding process dies, so a lock left by a run that was
killed with ``kill -9`` is never stale: the next run simply acquires it.  The
holder's pid is written into the file only to tell a refused user *who* holds
it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class LockedError(Exception):
    """Another seqharness process is running this spec."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder                # the holder's pid as it wrote it, or ""


class RunLock:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, *, wait: float | None = None) -> None:
        """Take the lock; raise :class:`LockedError` if held (after *wait* seconds)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is None or time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    who = f" by pid {holder}" if holder else ""
                    raise LockedError(f"{self.path}: spec is already being run{who}", holder) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return ""
