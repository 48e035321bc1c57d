"""Point 3: agents that hang, ignore SIGTERM, or leave a grandchild holding the terminal.

Each attempt's reason is read back from the state file (``last_reason``), and
every process the agent started is checked to be gone afterwards.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from .faultkit import FaultProject, alive, marked_processes, wait_until


def _reason(project: FaultProject, unit: str = "1") -> str:
    return project.spec_state("feature")["tasks"][unit]["last_reason"]


def _agent_pids(project: FaultProject) -> list[int]:
    return [c["pid"] for c in project.agent_calls()]


def test_silent_agent_is_ended_by_idle_timeout(fproject: FaultProject) -> None:
    fproject.spec("feature", "- [ ] 1. Hangs silently\n  - fake-agent: hang\n")
    res = fproject.run(".kiro/specs/feature", "--idle-timeout", "1", "--timeout", "60")
    assert res.ret == 1, res.output
    assert res.duration < 20
    assert _reason(fproject).startswith("idle:"), _reason(fproject)
    assert fproject.spec_state("feature")["tasks"]["1"]["status"] == "failed"
    assert not any(alive(p) for p in _agent_pids(fproject))


def test_busy_agent_is_ended_by_timeout(fproject: FaultProject) -> None:
    """It prints every 0.1 s, so only --timeout can end it."""
    fproject.spec("feature", "- [ ] 1. Never finishes\n  - fake-agent: slow=120\n")
    res = fproject.run(".kiro/specs/feature", "--timeout", "1.5", "--idle-timeout", "1")
    assert res.ret == 1, res.output
    assert res.duration < 20
    assert _reason(fproject).startswith("timeout:"), _reason(fproject)
    assert not any(alive(p) for p in _agent_pids(fproject))


def test_agent_ignoring_sigterm_is_killed(fproject: FaultProject) -> None:
    fproject.spec("feature", "- [ ] 1. Deaf to SIGTERM\n  - fake-agent: hang-ignore-term\n")
    res = fproject.run(".kiro/specs/feature", "--timeout", "1")
    assert res.ret == 1, res.output
    assert _reason(fproject).startswith("timeout:")
    # --timeout 1, then the 3 s grace after SIGTERM, then SIGKILL: the attempt
    # (as timed by seqharness, in the progress log) is over well within 6 s.
    progress = (fproject.root / ".kiro/specs/SEQUENTIAL_PROGRESS.md").read_text()
    attempt = float(re.search(r"- duration: ([0-9.]+)s", progress).group(1))
    assert 3.5 < attempt < 6, attempt
    assert not any(alive(p) for p in _agent_pids(fproject))
    assert not marked_processes(fproject.mark)


def _helper_pid(project: FaultProject) -> int:
    transcripts = sorted((project.root / ".kiro/specs/feature/.seqharness/transcripts").glob("*.log"))
    match = re.search(r"background helper \(pid (\d+)\)", transcripts[0].read_text(errors="replace"))
    assert match, transcripts[0].read_text(errors="replace")
    return int(match.group(1))


def test_grandchild_holding_the_terminal_does_not_keep_the_run_waiting(fproject: FaultProject) -> None:
    """The agent prints the done signal and exits; a helper it started sleeps 60 s
    with the terminal still open.  The run notices the agent's own exit."""
    fproject.spec("feature", "- [ ] 1. Leaves a helper\n  - fake-agent: grandchild\n- [ ] 2. Next\n")
    res = fproject.run(".kiro/specs/feature", "--timeout", "30")
    assert res.ret == 0, res.output
    assert res.duration < 12, f"the run waited for the grandchild: {res.duration:.1f}s"
    helper = _helper_pid(fproject)
    assert not alive(helper), "the helper in the agent's process group should have been ended"
    assert fproject.spec_state("feature")["completed"] == ["1", "2"]


DAEMON_AGENT = r'''
import os, subprocess, sys
# A helper in its own session (out of the agent's process group) that keeps the
# terminal open for a minute, like a dev server started with setsid.
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print("<promise>TASK_DONE</promise>", flush=True)
'''


def test_grandchild_in_its_own_session_does_not_keep_the_run_waiting(fproject: FaultProject,
                                                                    tmp_path: Path) -> None:
    fproject.spec("feature", "- [ ] 1. Starts a daemon\n- [ ] 2. Next\n")
    agent = tmp_path / "daemon_agent.py"
    agent.write_text(DAEMON_AGENT)
    start = time.monotonic()
    res = fproject.run(".kiro/specs/feature", "--timeout", "30",
                       backend=f"cmd:{sys.executable} {agent} {{prompt_file}}")
    assert res.ret == 0, res.output
    assert time.monotonic() - start < 12
    assert wait_until(lambda: fproject.spec_state("feature")["completed"] == ["1", "2"], 1)
