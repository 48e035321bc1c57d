"""conftest.py template: red-green - a task that needs tests must add one, and all must pass.

``--tdd`` does this with options; copy this file to change the rule itself.
A task needs tests when its title matches ``TITLES`` or it carries
``_Tests: yes_``.  The tests are counted (``COLLECT``) before the task's
first attempt and again once the agent says done: the count must have grown
and ``RUN`` must pass.  The count from before the first attempt is kept for
the retries of this run (``--retries``), so a test written red in one attempt
and made green in the next counts as new.  (``--tdd`` also keeps it for later
runs.)  Every hook is ``optionalhook``, so your own plain ``pytest`` run,
which loads this conftest.py too, does not mind hooks it does not know.
"""

import os
import re
import shlex
import subprocess

import pytest

from seqharness.outcome import Outcome
from seqharness.verify import run_check

TITLES = re.compile(r"^(write|add test|test)", re.IGNORECASE)              # EDIT
COLLECT = "python -m pytest --collect-only -q"                             # EDIT
RUN = "python -m pytest -q"                                                # EDIT
TIMEOUT = 900                                                              # EDIT: seconds

before = {}     # unit name -> tests collected before its first attempt


def needs_tests(unit):
    for annotation in unit.head.annotations:
        if annotation.norm == "tests":
            return annotation.value.strip().lower() not in ("no", "false", "none")
    return bool(TITLES.search(unit.title))


def count_tests(workdir):
    """pytest -q ends with '12 tests collected in 0.1s' ('no tests collected': exit 5)."""
    proc = subprocess.run(shlex.split(COLLECT), cwd=workdir, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    found = re.findall(r"(\d+)(?:/\d+)? tests? collected", proc.stdout)
    if proc.returncode == 5:
        return 0
    return int(found[-1]) if proc.returncode == 0 and found else None


@pytest.hookimpl(optionalhook=True)
def pytest_seqharness_invocation(attempt, invocation):
    """Before the agent starts: count, once per task."""
    if needs_tests(attempt.unit) and attempt.unit.name not in before:
        before[attempt.unit.name] = count_tests(attempt.spec.workdir)


@pytest.hookimpl(wrapper=True, trylast=True, optionalhook=True)
def pytest_seqharness_decide_outcome(attempt, result):
    """After the backend's reading (and inside a --verify gate): only a pass is checked."""
    outcome = yield
    if outcome.kind != "passed" or not needs_tests(attempt.unit):
        return outcome
    old, new = before.get(attempt.unit.name), count_tests(attempt.spec.workdir)
    if old is None or new is None:
        return Outcome("failed", f"cannot count the tests ({old} before, {new} after): {COLLECT}")
    if new <= old:
        return Outcome("failed", f"no new test: {old} tests collected before, {new} after",
                       details="Add at least one new test for this task, make it pass, then say done.")
    check = run_check(shlex.split(RUN), cwd=attempt.spec.workdir, transcript=attempt.transcript,
                      timeout=TIMEOUT, env=dict(os.environ))
    if not check.ok:
        return Outcome("failed", f"the tests do not pass ({old} -> {new} collected): {check.summary()}",
                       details=check.tail)
    return Outcome("passed", f"{outcome.reason}; tests collected {old} -> {new}, all pass")


@pytest.hookimpl(optionalhook=True)
def pytest_seqharness_attempt_finish(attempt, outcome):
    if outcome.kind == "passed":
        before.pop(attempt.unit.name, None)
