"""Finding and ending agent processes left behind by a run that was killed.

A run that dies by ``kill -9`` (or a crash, or a power cut of its terminal)
cannot end its agent.  The agent usually dies anyway - closing the PTY sends
it SIGHUP - but an agent that ignores SIGHUP, or a tool it started, can run
on for hours, editing the repository while the next run works on it.

So every attempt is tagged: the runner records a random token in the state
before the agent is spawned (``next_token``, then in the ``running`` entry
with the agent's process group), and starts the agent with
``SEQHARNESS_AGENT_TOKEN=<token>`` in its environment, which its children
inherit.  The next run of the spec (it holds the spec's lock, so
the run that wrote the entry is gone) looks for live processes carrying that
token and ends them: SIGTERM (+SIGCONT), a grace period, SIGKILL.  Matching
the token, not just the group id, means a process that merely reuses an old
pid is never touched.  Without ``/proc`` the recorded process group is used.
"""

from __future__ import annotations

import os
import signal
import time

from seqharness.session import _proc_usable, group_alive

TOKEN_ENV = "SEQHARNESS_AGENT_TOKEN"


def new_token() -> str:
    return f"{os.getpid()}-{os.urandom(8).hex()}"


def processes_with_token(token: str) -> list[int] | None:
    """Pids of live processes whose environment holds our token (None: no /proc)."""
    if not _proc_usable():
        return None
    needle = f"\0{TOKEN_ENV}={token}\0".encode()
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue  # gone, or not ours to read
        if needle in b"\0" + env + b"\0":  # a zombie's environ is empty: not counted
            found.append(int(entry))
    return found


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def end_leftovers(token: str | None, pgid: int | None, grace: float = 2.0) -> tuple[list[int], list[int]]:
    """End the processes of an earlier attempt; return (found, still alive).

    With /proc: every live process carrying *token*.  Without: the group
    *pgid* (reported as ``[-pgid]``).
    """
    if token:
        pids = processes_with_token(token)
        if pids is not None:
            return _end_pids(token, pids, grace)
    if isinstance(pgid, int) and pgid > 1 and group_alive(pgid):
        for sig in (signal.SIGTERM, signal.SIGCONT):
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        end = time.monotonic() + grace
        while group_alive(pgid) and time.monotonic() < end:
            time.sleep(0.05)
        if group_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            end = time.monotonic() + 2.0
            while group_alive(pgid) and time.monotonic() < end:
                time.sleep(0.05)
        return [-pgid], ([-pgid] if group_alive(pgid) else [])
    return [], []


def _end_pids(token: str, pids: list[int], grace: float) -> tuple[list[int], list[int]]:
    found = set(pids)
    if not pids:
        return [], []
    for pid in pids:
        _send(pid, signal.SIGTERM)
        _send(pid, signal.SIGCONT)
    end = time.monotonic() + grace
    left = pids
    while left and time.monotonic() < end:
        time.sleep(0.05)
        left = processes_with_token(token) or []
        found.update(left)
    for _ in range(3):  # children forked meanwhile carry the token too
        if not left:
            break
        for pid in left:
            _send(pid, signal.SIGKILL)
        end = time.monotonic() + 2.0
        while left and time.monotonic() < end:
            time.sleep(0.02)
            left = processes_with_token(token) or []
            found.update(left)
    return sorted(found), sorted(left)
