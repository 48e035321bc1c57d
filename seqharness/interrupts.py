"""Ctrl-C and SIGTERM: one clean way to stop a run.

* SIGTERM (``kill PID``, a CI job being cancelled, systemd stopping a unit) is
  turned into ``KeyboardInterrupt`` while tasks run, so it takes exactly the
  path of a Ctrl-C: the agent's process group is ended (TERM, grace, KILL),
  the attempt is recorded as interrupted, the JUnit file is written, and the
  exit code is pytest's "interrupted", 2.
* The first Ctrl-C / SIGTERM also switches to "stopping" (:func:`stopping`):
  further ones print a note instead of interrupting the cleanup (the agent's
  end, state, JUnit) - wherever they land, including inside pytest's own
  handling of the first.  One exception: inside :func:`hurry_window` (the
  grace period given to a SIGTERM'd agent) the next one still raises, so a
  second Ctrl-C kills the agent at once instead of waiting.  ``kill -9``
  always works, and is safe: see the write order in :mod:`seqharness.runner`.
* Bookkeeping that must not be cut in half - the state and tasks.md writes
  around an attempt - runs inside :func:`critical`: a Ctrl-C or SIGTERM
  arriving there is held and takes effect right after the block.

Signal handlers can only be set from the main thread; elsewhere these are
no-ops (pytest runs items in the main thread).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_saved: dict[int, Any] = {}
_noted = False
_hurry = False  # inside hurry_window(): a signal while stopping still raises
_stopped = False  # stopping() was called since install()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _first(signum: int, frame: Any) -> None:
    stopping()
    raise KeyboardInterrupt


def install() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt once, then only :func:`_note`
    (undo with :func:`restore`).  A SIGINT ignored by whoever started us
    (``nohup``, a background job) stays ignored."""
    global _stopped
    if not _main_thread() or _saved:
        return
    _stopped = False
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue
        _saved[sig] = signal.signal(sig, _first)


def _note(signum: int, frame: Any) -> None:
    global _noted
    if _hurry:
        raise KeyboardInterrupt
    if _noted:
        return
    _noted = True
    try:
        os.write(2, (f"\nseqharness: already stopping; finishing the state and the report "
                     f"(kill -9 {os.getpid()} to force; nothing recorded is lost)\n").encode())
    except OSError:
        pass


def stopping() -> None:
    """The run is stopping: from now on Ctrl-C / SIGTERM are only noted."""
    global _stopped
    if not _main_thread():
        return
    _stopped = True
    for sig in STOP_SIGNALS:
        previous = signal.signal(sig, _note)
        _saved.setdefault(sig, previous)


def restore() -> None:
    """Put back the handlers that were there before :func:`install` / :func:`stopping`."""
    global _noted
    if not _main_thread():
        return
    for sig, previous in _saved.items():
        signal.signal(sig, previous)
    _saved.clear()
    _noted = False


@contextmanager
def hurry_window() -> Iterator[None]:
    """While waiting for something that a second Ctrl-C may cut short."""
    global _hurry
    previous, _hurry = _hurry, True
    try:
        yield
    finally:
        _hurry = previous


@contextmanager
def critical() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM for the duration of the block, then deliver them.

    A signal that arrived inside is re-sent to this process after the old
    handlers are back, so it acts exactly as it would have (KeyboardInterrupt,
    a note while stopping, or the default action).  If the block raises, the
    held signal is dropped: an exception is already on its way out.
    """
    if not _main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        held.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for signum in dict.fromkeys(held):
        signal.raise_signal(signum)


def was_stopped() -> bool:
    """Did this run stop on a Ctrl-C / SIGTERM (or a disk fault)?"""
    return _stopped


def ignore_until_exit() -> None:
    """The command has finished and is about to exit with its code.

    Called by the ``seqharness`` command only, after a run that stopped on a
    signal: more Ctrl-C / SIGTERM may still be on their way (a user pressing it
    again and again, a supervisor repeating SIGTERM); with the default handler
    back, one landing during the interpreter's exit would turn exit code 2
    into a death by signal.  Not for in-process callers: it is never undone.
    """
    if not _main_thread():
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
