"""Ctrl-C and SIGTERM: one clean way to stop a run.

* SIGTERM (``kill PID``, a CI job being cancelled, systemd stopping a unit) is
  turned into ``KeyboardInterrupt`` while tasks run, so it takes exactly the
  path of a Ctrl-C: the agent's process group is ended (TERM, grace, KILL),
  the attempt is recorded as interrupted, the JUnit file is written, and the
  exit code is pytest's "interrupted", 2.
* Bookkeeping that must not be cut in half - the state and tasks.md writes
  around an attempt - runs inside :func:`critical`: a Ctrl-C or SIGTERM
  arriving there is held and takes effect right after the block.
* Once the run is stopping (pytest's ``pytest_keyboard_interrupt``),
  :func:`stopping` makes further Ctrl-C / SIGTERM print a note instead of
  interrupting the cleanup (state, JUnit).  ``kill -9`` still works, and is
  safe: see the write order in :mod:`seqharness.runner`.

Signal handlers can only be set from the main thread; elsewhere these are
no-ops (pytest runs items in the main thread).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_saved: dict[int, Any] = {}
_noted = False


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def install() -> None:
    """Make SIGTERM raise KeyboardInterrupt (undo with :func:`restore`)."""
    if not _main_thread() or signal.SIGTERM in _saved:
        return
    _saved[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)


def _note(signum: int, frame: Any) -> None:
    global _noted
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
    if not _main_thread():
        return
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
    for sig in dict.fromkeys(held):
        signal.raise_signal(sig)
