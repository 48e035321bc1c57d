"""The verification gate: the harness runs the team's own check before a task passes.

An agent's ``<promise>TASK_DONE</promise>`` is its word; with ``--verify CMD``
(ini ``seqharness_verify``) seqharness runs CMD itself in the workdir once the
agent says done, and the task passes only if CMD exits 0.  Otherwise it fails
with "verification failed", the tail of CMD's output goes to the JUnit
failure text and the progress log, and a retry's prompt carries it.  CMD's
output is appended to the attempt's transcript as it arrives, so the tmux
window shows it live.  It is plugin ``seqharness.verify``, a wrapper of
``pytest_seqharness_decide_outcome``: a conftest.py can gate the same way
(``conftest_templates/verify_tests.py``).
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from seqharness.harness import RunPlugin
from seqharness.outcome import FAILED, PASSED, Outcome
from seqharness.processes import TOKEN_ENV
from seqharness.reporting import clean_text

if TYPE_CHECKING:
    from seqharness.attempt import Attempt, UnitResult
    from seqharness.harness import SpecRun
    from seqharness.outcome import AttemptResult
    from seqharness.units import Unit

TAIL_BYTES = 16 * 1024      # output kept in memory for reports and the next prompt
TAIL_LINES = 40
KILL_GRACE = 3.0


@dataclass
class Check:
    """One run of the verification command."""

    command: str
    exit_code: int | None       # None: killed (timeout) or could not start
    duration: float
    tail: str
    error: str | None = None    # why it could not run, or "timed out"

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    def summary(self) -> str:
        if self.error is not None:
            return self.error
        return f"exit {self.exit_code} in {self.duration:.1f}s"


def run_check(argv: list[str], *, cwd: Path, transcript: Path, timeout: float,
              env: dict[str, str]) -> Check:
    """Run *argv* (no shell), stream its output into *transcript*, keep a bounded tail.

    The command gets its own session, so a timeout or Ctrl-C ends it and
    everything it started (SIGTERM, then SIGKILL after a grace period).
    """
    command = shlex.join(argv)
    start = time.monotonic()
    tail = bytearray()
    with open(transcript, "ab") as out:
        out.write(f"\n\n--- seqharness: verifying: {command} ---\n".encode("utf-8", "replace"))
        out.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as exc:
            return Check(command, None, time.monotonic() - start, "",
                         error=f"cannot run it: {exc.strerror or exc}")
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = start + timeout
        timed_out = False
        poller = select.poll()  # poll, not select: select fails for fds >= 1024
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not poller.poll(min(left, 0.5) * 1000):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out.write(chunk)
                out.flush()
                tail += chunk
                if len(tail) > TAIL_BYTES:
                    del tail[:-TAIL_BYTES]
            if not timed_out:
                # Its output ended; it may still be finishing (or closed its output early).
                timed_out = not _wait(proc, deadline)
        finally:
            if timed_out or proc.poll() is None:  # the timeout, or Ctrl-C
                _end_group(proc)
            proc.wait()
            proc.stdout.close()
        duration = time.monotonic() - start
        check = Check(command, None if timed_out else proc.returncode, duration, _tail_text(bytes(tail)),
                      error=f"timed out after {timeout:g}s" if timed_out else None)
        out.write(f"--- seqharness: verification {'passed' if check.ok else 'failed'}: "
                  f"{check.summary()} ---\n".encode())
    return check


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait for *proc* to exit until *deadline*; True if it did.

    A pidfd wakes us the moment it exits; ``Popen.wait(timeout)`` would poll
    in growing sleeps (about 1 ms per check of a quick command).
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            return False
        proc.wait()
        return True
    finally:
        os.close(fd)


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail_text(raw: bytes) -> str:
    text = clean_text(raw.decode("utf-8", "replace"))
    return "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])


class VerifyGate(RunPlugin):
    """Plugin ``seqharness.verify``."""

    def setup(self) -> None:
        self.argv: dict[str, list[str]] = {}          # spec name -> its verify argv
        self.last: dict[tuple[str, str], Check] = {}

    def pytest_seqharness_spec_start(self, spec: SpecRun) -> None:
        command = spec.settings.verify
        if not command:
            return
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise pytest.UsageError(f"--verify {command!r}: cannot split the command line: {exc}") from None
        if not argv:
            raise pytest.UsageError("--verify needs a command, e.g. --verify 'python -m pytest -q -x'")
        program = argv[0]
        found = (os.access(spec.workdir / program, os.X_OK) if os.sep in program
                 else shutil.which(program) is not None)
        if not found:
            raise pytest.UsageError(f"--verify: program {program!r} not found")
        self.argv[spec.name] = argv

    @pytest.hookimpl(wrapper=True)
    def pytest_seqharness_decide_outcome(self, attempt: Attempt,
                                         result: AttemptResult) -> Generator[None, Outcome | None, Outcome | None]:
        outcome = yield
        argv = self.argv.get(attempt.spec.name)
        if argv is None or outcome is None or outcome.kind != PASSED:
            return outcome
        env = dict(os.environ)
        env[TOKEN_ENV] = attempt.token  # a run killed now leaves nothing the next one cannot end
        check = run_check(argv, cwd=attempt.spec.workdir, transcript=attempt.transcript,
                          timeout=attempt.spec.settings.verify_timeout, env=env)
        self.last[attempt.spec.name, attempt.unit.name] = check
        if check.ok:
            return Outcome(PASSED, f"{outcome.reason}; verified: {check.command} ({check.summary()})")
        return Outcome(FAILED, f"verification failed: {check.command}: {check.summary()}",
                       details=check.tail or None)

    def pytest_seqharness_report_facts(self, spec: SpecRun, unit: Unit,
                                       result: UnitResult) -> list[tuple[str, str]] | None:
        check = self.last.get((spec.name, unit.name))
        if check is None:
            return None
        return [("verify", f"{check.command}: {'passed' if check.ok else 'failed'}, {check.summary()}")]


__all__ = ["Check", "VerifyGate", "run_check"]
