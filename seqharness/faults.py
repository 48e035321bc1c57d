"""Fault injection for the test suite: ``SEQHARNESS_FAULT``.

The fault-injection tests (``tests/faults``) must stop a real seqharness
process at a precise moment - between the state write and the tasks.md write,
with the temporary state file written but not yet renamed, during the delay -
which a kill from outside at a random time hits only by luck.  So the code
names those moments with :func:`fault` calls, and an environment variable
says what to do when one is reached::

    SEQHARNESS_FAULT="POINT[@N][=ACTION][,POINT[@N][=ACTION]...]"

``POINT``
    one of :data:`POINTS` (below).
``N``
    act the N-th time this process reaches the point (default 1), or ``*``
    every time.
``ACTION``
    ``kill`` (default): SIGKILL this process, exactly like ``kill -9``;
    ``int`` / ``term``: send this process SIGINT / SIGTERM (a Ctrl-C or a
    ``kill`` at that moment); ``sleep:SECONDS``: stall there (a slow disk, a
    scheduler hiccup: widens a race window); ``enospc`` / ``eacces`` / ``eio``:
    raise that ``OSError`` there (a write that fails).

Unset (always, outside tests) :func:`fault` is one global test and a return:
no parsing, no counting, nothing else.  A malformed value is reported on
stderr once and ignored.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time

ENV = "SEQHARNESS_FAULT"

#: The named points, in the order a run reaches them.
POINTS = {
    "collect": "tasks.md read and parsed (collection)",
    "lock": "the spec's run lock acquired",
    "reconcile": "an earlier run's leftovers repaired",
    "tmp-written": "atomic write: temp file written and fsync'd, not yet renamed (state or tasks.md)",
    "renamed": "atomic write: renamed over the target, folder not yet fsync'd",
    "state-saved": "the state file was replaced (any save)",
    "running-recorded": "write order step 1 done: state says the unit runs",
    "marked": "step 2 done: tasks.md shows [-]",
    "assign-started": "an assignment agent (--assign-backend) was spawned",
    "agent-started": "the agent was spawned and its process group recorded",
    "progress-appended": "step 4 done: progress log entry written",
    "outcome-recorded": "step 5 done: state holds the outcome, tasks.md not yet updated",
    "ticked": "step 6 done: tasks.md updated",
    "delay": "inside --delay between attempts",
    "sessionfinish": "the run is over; JUnit and the final state are about to be written",
    "junit-writing": "inside pytest's JUnit writer: the report file is open and truncated, "
                     "its XML not yet written",
}

_ERRNO = {"enospc": errno.ENOSPC, "eacces": errno.EACCES, "eio": errno.EIO}

_plan: dict[str, list[tuple[int | None, str]]] | None = None
_counts: dict[str, int] = {}


def _parse(text: str) -> dict[str, list[tuple[int | None, str]]]:
    plan: dict[str, list[tuple[int | None, str]]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        where, _, action = item.partition("=")
        name, _, nth = where.partition("@")
        action = action.strip() or "kill"
        if name not in POINTS:
            raise ValueError(f"unknown point {name!r}")
        if action not in ("kill", "int", "term") and action not in _ERRNO and not action.startswith("sleep:"):
            raise ValueError(f"unknown action {action!r}")
        if action.startswith("sleep:"):
            float(action[6:])
        count = None if nth.strip() == "*" else int(nth or 1)
        plan.setdefault(name, []).append((count, action))
    return plan


def _load() -> dict[str, list[tuple[int | None, str]]] | None:
    text = os.environ.get(ENV, "")
    if not text:
        return None
    try:
        return _parse(text)
    except ValueError as exc:
        sys.stderr.write(f"seqharness: ignoring {ENV}={text!r}: {exc}\n")
        return None


_plan = _load()


def active(name: str) -> bool:
    """Does ``SEQHARNESS_FAULT`` name this point?  (For points that need a hook installed.)"""
    return _plan is not None and name in _plan


def fault(name: str) -> None:
    """Mark point *name*; act if ``SEQHARNESS_FAULT`` asks for it (tests only)."""
    if _plan is None:
        return
    entries = _plan.get(name)
    if not entries:
        return
    count = _counts[name] = _counts.get(name, 0) + 1
    for nth, action in entries:
        if nth is None or nth == count:
            _act(action, name)


def _act(action: str, name: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # not reached: SIGKILL cannot be caught
    elif action == "int":
        os.kill(os.getpid(), signal.SIGINT)
    elif action == "term":
        os.kill(os.getpid(), signal.SIGTERM)
    elif action.startswith("sleep:"):
        time.sleep(float(action[6:]))
    else:
        code = _ERRNO[action]
        raise OSError(code, f"{os.strerror(code)} (injected by {ENV} at {name})")
