"""The agent's processes outside its terminal: its process group (is anyone in it
still alive, end it, collect the leader's exit without letting its pid be
reused) and, for a run that was killed before it could do so, the search for
the agents it left behind.  Why it works this way: docs/session.md, "Process
groups" and "Leftover agents".
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from seqharness.interrupts import hurry_window

__all__ = [
    "KILL_WAIT",
    "TOKEN_ENV",
    "AgentGroup",
    "end_leftovers",
    "group_alive",
    "group_members",
    "new_token",
    "pidfd_open",
    "proc_usable",
    "processes_with_token",
    "signal_group",
]

KILL_WAIT = 5.0  # after SIGKILL, wait at most this long for the group to vanish
TOKEN_ENV = "SEQHARNESS_AGENT_TOKEN"


# --------------------------------------------------------------------- /proc and signals
_PROC_USABLE: bool | None = None


def proc_usable() -> bool:
    """Is /proc there and showing *our* pid namespace?"""
    global _PROC_USABLE
    if _PROC_USABLE is None:
        try:
            _PROC_USABLE = os.readlink("/proc/self") == str(os.getpid())
        except OSError:
            _PROC_USABLE = False
    return _PROC_USABLE


def group_members(pgid: int) -> list[int] | None:
    """Pids of live (non-zombie) processes in group *pgid*, or None without /proc."""
    if not proc_usable():
        return None
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    members = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 3 or fields[0] in (b"Z", b"X"):
            continue
        try:
            if int(fields[2]) == pgid:
                members.append(int(entry))
        except ValueError:
            continue
    return members


def group_alive(pgid: int) -> bool:
    """True while process group *pgid* has a live (non-zombie) member."""
    members = group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    """Send *sig* to group *pgid*; a group that is gone or not ours is ignored."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def pidfd_open(pid: int) -> int | None:
    """A pidfd for *pid* (Linux >= 5.3, Python >= 3.9), else None: poll-only fallback."""
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


# --------------------------------------------------------------------- a running agent
class AgentGroup:
    """The process group led by a child we spawned as a session leader
    (pid == pgid).  *isalive* is the child's own check, which reaps it once it
    has exited (pexpect's ``isalive()``, answering False if someone else
    reaped it); the exit status is then the child's to report.  *on_exit* is
    called once the leader's exit is first seen."""

    def __init__(self, pid: int, isalive: Callable[[], bool],
                 on_exit: Callable[[], None] | None = None) -> None:
        self.pid = pid
        self.isalive = isalive
        self.on_exit = on_exit
        self.leader_gone = False

    def leader_exited(self) -> bool:
        """Has the leader exited?  Does not reap it (WNOWAIT): while it is an
        unreaped zombie its pid, which is the group id, cannot be reused."""
        if self.leader_gone:
            return True
        if hasattr(os, "waitid") and hasattr(os, "WNOWAIT"):
            try:
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                self.leader_gone = True
            else:
                self.leader_gone = info is not None and info.si_pid != 0
            if self.leader_gone and self.on_exit is not None:
                self.on_exit()
            return self.leader_gone
        self.leader_gone = not self.isalive()
        return self.leader_gone

    def alive(self) -> bool:
        """Does the group still have a live member?

        Cheap in the common case: a running leader is a live member, and once
        it has exited and is reaped, ``killpg(pgid, 0)`` failing proves the
        group empty.  Reaping it is safe: Linux keeps a pid number reserved
        while any process still has it as its process group id, so the number
        cannot be handed to an unrelated process while we may signal the
        group.  Only when ``killpg`` succeeds is ``/proc`` scanned, because
        zombie members (exited, waiting for init) answer ``killpg`` too.
        """
        if not self.leader_exited():
            return True
        self.isalive()  # reap the leader
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        members = group_members(self.pid)
        return bool(members) if members is not None else True

    def terminate(self, grace: float, while_dying: Callable[[float], object]) -> None:
        """SIGTERM (+SIGCONT) the group, wait up to *grace* s for it to die,
        calling *while_dying(seconds)* to wait (and drain the agent's output),
        then SIGKILL whatever is left.  A second Ctrl-C skips the grace period."""
        if not self.alive():
            return
        signal_group(self.pid, signal.SIGTERM)
        signal_group(self.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        end = time.monotonic() + grace
        try:
            with hurry_window():  # even while the run is stopping
                while self.alive():
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    while_dying(min(0.02, remaining))
        except KeyboardInterrupt:
            self.kill()
            raise
        self.kill()

    def kill(self) -> None:
        """SIGKILL the group and wait (bounded) until no live member is left."""
        if not self.alive():
            return
        signal_group(self.pid, signal.SIGKILL)
        end = time.monotonic() + KILL_WAIT
        while self.alive() and time.monotonic() < end:
            time.sleep(0.01)

    def reap(self) -> bool:
        """Reap the leader (bounded wait; SIGKILL the group if it takes too
        long).  False if it could not be killed (D state?): we gave up waiting."""
        end = time.monotonic() + KILL_WAIT
        killed = False
        while self.isalive():
            if time.monotonic() >= end:
                if killed:
                    return False
                signal_group(self.pid, signal.SIGKILL)
                killed, end = True, time.monotonic() + KILL_WAIT
            time.sleep(0.005)
        return True


# --------------------------------------------------------------------- leftover agents
def new_token() -> str:
    """A fresh token to tag one attempt's processes with (in :data:`TOKEN_ENV`)."""
    return f"{os.getpid()}-{os.urandom(8).hex()}"


def processes_with_token(token: str) -> list[int] | None:
    """Pids of live processes whose environment holds our token (None: no /proc)."""
    if not proc_usable():
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
            signal_group(pgid, sig)
        end = time.monotonic() + grace
        while group_alive(pgid) and time.monotonic() < end:
            time.sleep(0.05)
        if group_alive(pgid):
            signal_group(pgid, signal.SIGKILL)
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
