"""Point 2: SIGINT and SIGTERM while an agent runs, and a second Ctrl-C during cleanup.

The agent here ignores SIGTERM and has started a helper (in its process
group) that ignores it too, so only the KILL after the grace period ends
them.  After the signal: the whole group is gone within 5 s, the state says
the task was interrupted (not passed, not failed), its checkbox is restored,
the JUnit file is written and valid, and the exit code is 2 (pytest's
"interrupted", as the README documents).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from .faultkit import (
    FaultProject,
    Stats,
    alive,
    marked_processes,
    state_problem,
    tasks_intact,
    validate_junit,
    wait_until,
)

STUBBORN_AGENT = r'''
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
# The helper is a tool started with nohup: it ignores SIGHUP as well, so the
# hangup the kernel sends when the agent dies does not end it; only a signal
# to the whole process group does.
helper = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "signal.signal(signal.SIGHUP, signal.SIG_IGN); time.sleep(120)"])
with open(os.environ["PIDS_FILE"], "w") as fh:
    fh.write(f"{os.getpid()} {helper.pid}")
print("working; ignoring SIGTERM", flush=True)
time.sleep(120)
'''

SPEC = "- [ ] 1. Stubborn task\n- [ ] 2. Never reached\n"


def _start(project: FaultProject, tmp_path: Path, *args: str, env: dict | None = None):
    agent = tmp_path / "stubborn.py"
    agent.write_text(STUBBORN_AGENT)
    pids_file = tmp_path / "pids"
    report = tmp_path / "report.xml"
    proc = project.start(".kiro/specs/feature", "--junitxml", str(report), *args,
                         backend=f"cmd:{sys.executable} {agent} {{prompt_file}}",
                         env={"PIDS_FILE": str(pids_file), **(env or {})})
    assert wait_until(lambda: pids_file.exists() and pids_file.read_text().count(" ") == 1, 30), \
        proc.communicate(timeout=5)
    pids = [int(p) for p in pids_file.read_text().split()]
    return proc, pids, report


def _check_interrupted(project: FaultProject, proc, pids: list[int], report: Path, sent_at: float,
                       original: bytes, stats: Stats) -> str:
    out, err = proc.communicate(timeout=30)
    output = out + err
    stats.signals += 1
    # The agent's whole group (agent and helper) ended within 5 s of the signal.
    gone = wait_until(lambda: not any(alive(p) for p in pids), max(0.0, sent_at + 5 - time.monotonic()))
    assert gone, f"agent group still alive 5 s after the signal: {[p for p in pids if alive(p)]}"
    assert proc.returncode == 2, output
    if "Traceback" in output:
        stats.tracebacks += 1
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    assert state_problem(project, "feature") is None
    state = project.spec_state("feature")
    assert state["tasks"]["1"]["status"] == "interrupted", state
    assert state["running"] is None and "1" not in state["completed"], state
    assert project.tasks_path("feature").read_bytes() == original
    assert tasks_intact(original, project.tasks_path("feature").read_bytes()) is None
    validate_junit(report)
    assert "2" not in state["tasks"], "the run went on after the signal"
    progress = (project.root / ".kiro/specs/SEQUENTIAL_PROGRESS.md").read_text()
    assert "task 1 · INTERRUPTED" in progress
    assert not marked_processes(project.mark)
    return output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_agent_runs_ends_group_records_interrupted_writes_junit(
        fproject: FaultProject, tmp_path: Path, stats: Stats, sig: int) -> None:
    spec = fproject.spec("feature", SPEC)
    original = (spec / "tasks.md").read_bytes()
    proc, pids, report = _start(fproject, tmp_path)
    assert (spec / "tasks.md").read_bytes() == original.replace(b"[ ] 1.", b"[-] 1.")
    sent_at = time.monotonic()
    proc.send_signal(sig)
    _check_interrupted(fproject, proc, pids, report, sent_at, original, stats)
    # The next run takes the task up again.
    res = fproject.run(".kiro/specs/feature")
    assert res.ret == 0, res.output
    assert [c["task"] for c in fproject.agent_calls()] == ["1", "2"]


@pytest.mark.parametrize("fault", [
    "progress-appended=int,sessionfinish=int",
    "progress-appended=term,outcome-recorded=int,ticked=term,sessionfinish=term",
], ids=["ctrl-c-twice", "term-and-ctrl-c-in-every-step"])
def test_second_interrupt_during_cleanup_corrupts_nothing(fproject: FaultProject, tmp_path: Path,
                                                          stats: Stats, fault: str) -> None:
    """The first Ctrl-C comes from outside while the agent runs; the next ones are
    delivered by the fault hook inside the cleanup: between the progress log and
    the state write, between the state and tasks.md writes, and just before the
    JUnit file is written."""
    spec = fproject.spec("feature", SPEC)
    original = (spec / "tasks.md").read_bytes()
    proc, pids, report = _start(fproject, tmp_path, env={"SEQHARNESS_FAULT": fault})
    sent_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    output = _check_interrupted(fproject, proc, pids, report, sent_at, original, stats)
    assert "already stopping" in output


@pytest.mark.parametrize("gap, count", [(0.0, 3), (0.05, 3), (0.4, 3), (1.5, 3), (0.02, 25)])
def test_ctrl_c_pressed_again_and_again_during_cleanup(fproject: FaultProject, tmp_path: Path,
                                                       stats: Stats, gap: float, count: int) -> None:
    """*count* Ctrl-C from outside, *gap* seconds apart, landing anywhere in the
    cleanup (the agent's grace period, the state writes, pytest's own handling
    of the first, JUnit): the second one skips the grace period (the group is
    killed at once); none corrupts anything or shows a traceback."""
    spec = fproject.spec("feature", SPEC)
    original = (spec / "tasks.md").read_bytes()
    proc, pids, report = _start(fproject, tmp_path)
    sent_at = time.monotonic()
    for _ in range(count):
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
    _check_interrupted(fproject, proc, pids, report, sent_at, original, stats)


@pytest.mark.parametrize("point", ["running-recorded", "progress-appended", "outcome-recorded"])
def test_first_interrupt_inside_the_bookkeeping_waits_for_it(fproject: FaultProject, tmp_path: Path,
                                                            stats: Stats, point: str) -> None:
    """A Ctrl-C that lands among the writes of an attempt (injected at *point*)
    takes effect only once they are done: a pass the agent made is recorded
    and ticked, never thrown away half-written; before the agent started, the
    attempt is recorded as interrupted and its box restored."""
    spec = fproject.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    report = tmp_path / "report.xml"
    res = fproject.run(".kiro/specs/feature", "--junitxml", str(report),
                       env={"SEQHARNESS_FAULT": f"{point}@1=int"})
    stats.signals += 1
    assert res.ret == 2, res.output
    assert not res.has_traceback(), res.output
    state = fproject.spec_state("feature")
    assert state["running"] is None, state
    if point == "running-recorded":
        assert fproject.agent_calls() == []
        assert state["tasks"]["1"]["status"] == "interrupted" and state["completed"] == []
        assert (spec / "tasks.md").read_text() == "- [ ] 1. One\n- [ ] 2. Two\n"
    else:
        assert [c["task"] for c in fproject.agent_calls()] == ["1"]
        assert state["completed"] == ["1"], state
        assert (spec / "tasks.md").read_text() == "- [x] 1. One\n- [ ] 2. Two\n"
    validate_junit(report)


def test_sigterm_during_the_delay_stops_cleanly(fproject: FaultProject, tmp_path: Path, stats: Stats) -> None:
    spec = fproject.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    report = tmp_path / "report.xml"
    proc = fproject.start(".kiro/specs/feature", "--delay", "30", "--junitxml", str(report))
    assert wait_until(lambda: fproject.state_path.exists()
                      and "1" in fproject.spec_state("feature")["completed"]
                      and (spec / "tasks.md").read_text().startswith("- [x] 1."), 30)
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    stats.signals += 1
    assert time.monotonic() - started < 5
    assert proc.returncode == 2, out + err
    assert "Traceback" not in out + err
    state = fproject.spec_state("feature")
    assert state["completed"] == ["1"] and state["running"] is None
    assert (spec / "tasks.md").read_text() == "- [x] 1. One\n- [ ] 2. Two\n"
    validate_junit(report)
    assert [c["task"] for c in fproject.agent_calls()] == ["1"]
