"""Crash-safe file replacement.

Every file seqharness rewrites (the state file, ``tasks.md``) goes through
:func:`atomic_write`: the new bytes are written to a temporary file in the same
folder, flushed and fsync'd, renamed over the target, and the folder itself is
fsync'd where the platform allows.  A reader (or a run restarted after
``kill -9``) therefore sees either the old file or the new one, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from seqharness.faults import fault


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename inside it survives a power loss.

    Not every filesystem supports opening a directory; failing here is not an
    error worth stopping a run for, so it is silently skipped.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None,
                 durable: bool = True) -> None:
    """Replace *path* with *data* atomically (temp file, fsync, rename, fsync dir).

    With ``durable=False`` both fsyncs are skipped: the rename is still atomic
    for every reader and survives the writer being killed (the data is in the
    kernel), but a power loss may bring back the previous file.  For records
    that only matter while the writing process lives.

    The temporary file is created next to *path* so the rename never crosses a
    filesystem.  On any error the temporary file is removed and the original
    file is left untouched.  *mode* defaults to the existing file's permission
    bits (so a rewrite of ``tasks.md`` keeps them), else 0o644.  A symlink is
    written through (its target is replaced, the link stays a link).
    """
    target = Path(os.path.realpath(path))
    folder = target.parent
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        try:
            # Mode first, so the fsync below covers it: a chmod after the fsync
            # would dirty the inode again and cost a second journal write.
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        fault("tmp-written")
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fault("renamed")
    if durable:
        fsync_dir(folder)
