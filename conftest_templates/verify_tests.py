"""conftest.py template: a task passes only when its tests pass - a gate you can change.

``--verify CMD`` runs one command after every task.  Copy this file when the
check depends on the task: here a task's ``_Verify: CMD_`` annotation names
its own check (``- _Verify: python -m pytest tests/test_login.py_``) and every
other task runs ``VERIFY``.  The command's output streams into the task's
transcript and tmux window; when it fails, its tail is in the JUnit failure
text, the progress log, and the next attempt's prompt.
"""

import os
import shlex

import pytest

from seqharness.outcome import Outcome
from seqharness.verify import run_check

VERIFY = "python -m pytest -q -x"                                          # EDIT
TIMEOUT = 900                                                              # EDIT: seconds


def command_for(unit):
    for annotation in unit.head.annotations:
        if annotation.norm == "verify":
            return annotation.value.strip()
    return VERIFY


@pytest.hookimpl(wrapper=True)
def pytest_seqharness_decide_outcome(attempt, result):
    """Runs after the backend decided; only a pass is checked."""
    outcome = yield
    if outcome.kind != "passed":
        return outcome
    check = run_check(shlex.split(command_for(attempt.unit)), cwd=attempt.spec.workdir,
                      transcript=attempt.transcript, timeout=TIMEOUT, env=dict(os.environ))
    if check.ok:
        return outcome
    return Outcome("failed", f"verification failed: {check.command}: {check.summary()}",
                   details=check.tail)
