"""Usage limits: wait for the reset, retry the same task, spend no iteration.

The backend here is registered from the project's own conftest.py, as a user
would add a CLI seqharness does not ship; its agent is a small script that
reports a usage limit on its first call.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from seqharness.testing import SpecProject, seqharness_command

CONFTEST = '''
import re, time
from seqharness.backends import CommandBackend
from seqharness.outcome import LIMITED, Outcome

class LimitAware(CommandBackend):
    """Reads 'USAGE LIMIT resets at <epoch>' as a usage limit."""
    def interpret(self, result, reader=None, *, trust_exit_code=False):
        match = re.search(r"USAGE LIMIT resets at ([0-9.]+)", result.tail)
        if match:
            return Outcome(LIMITED, "usage limit reached", resume_at=float(match.group(1)))
        return super().interpret(result, reader, trust_exit_code=trust_exit_code)

def pytest_seqharness_add_backends(backends):
    backends.add("limitaware", LimitAware)
'''

AGENT = '''
import json, os, sys, time
counter = os.path.join(os.environ["AGENT_DIR"], "calls")
calls = json.load(open(counter)) if os.path.exists(counter) else []
calls.append(time.time())
json.dump(calls, open(counter, "w"))
if len(calls) == 1:
    print("USAGE LIMIT resets at %f" % (time.time() + float(os.environ["RESET_IN"])), flush=True)
    sys.exit(1)
print("<promise>TASK_DONE</promise>")
'''


def _setup(project: SpecProject, tmp_path: Path, reset_in: float) -> str:
    project.spec("feature", "- [ ] 1. Limited\n- [ ] 2. After\n")
    (project.root / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    agent = tmp_path / "agent.py"
    agent.write_text(textwrap.dedent(AGENT))
    project.env["AGENT_DIR"] = str(tmp_path)
    project.env["RESET_IN"] = str(reset_in)
    return f"limitaware:{sys.executable} {agent} {{prompt_file}}"


def _calls(tmp_path: Path) -> list[float]:
    return json.loads((tmp_path / "calls").read_text())


def test_usage_limit_waits_for_reset_then_passes_without_spending_an_iteration(
        project: SpecProject, tmp_path: Path) -> None:
    backend = _setup(project, tmp_path, reset_in=2.0)
    res = project.run(".kiro/specs/feature", "--max-iterations", "2", backend=backend)
    assert res.ret == 0, res.output
    assert "usage limit reached; waiting until" in res.stdout
    calls = _calls(tmp_path)
    assert len(calls) == 3                      # limited, retried task 1, task 2
    assert calls[1] - calls[0] >= 1.9           # waited for the reset
    progress = (project.root / ".kiro/specs/SEQUENTIAL_PROGRESS.md").read_text()
    assert "· LIMITED" in progress and progress.count("· PASSED") == 2
    assert project.state()["specs"]["feature"]["paused_until"] is None


def test_restart_during_the_wait_keeps_waiting_for_the_same_reset(project: SpecProject, tmp_path: Path) -> None:
    backend = _setup(project, tmp_path, reset_in=4.0)
    argv = [*seqharness_command(), ".kiro/specs/feature", "--backend", backend]
    first = subprocess.Popen(argv, cwd=project.root, env=project.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in first.stdout:
            if "waiting until" in line:
                break
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(timeout=10)
    paused_until = project.state()["specs"]["feature"]["paused_until"]
    assert paused_until > time.time()
    res = project.run(".kiro/specs/feature", backend=backend)
    assert res.ret == 0, res.output
    calls = _calls(tmp_path)
    assert len(calls) == 3
    assert calls[1] >= paused_until - 0.05      # the restarted run did not hammer
