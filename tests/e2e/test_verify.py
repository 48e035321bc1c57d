"""The verification gate (--verify): the harness runs the team's tests before a task passes.

A real temporary Python project with a real pytest suite, and an agent that
says done after writing code: wrong code on its first attempt, and on a
retry, code fixed from what the failed check printed (the prompt carries it).
"""

from __future__ import annotations

import shlex
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from seqharness.testing import SpecProject

AGENT = '''
import os, sys
prompt = open(sys.argv[sys.argv.index("--prompt-file") + 1]).read()
with open(os.environ["PROMPTS_LOG"], "a") as fh:
    fh.write(prompt + "\\n=====\\n")
# Wrong the first time; fixed once the prompt shows the failing test.
fixed = "test_add" in prompt and "assert" in prompt
with open("calc.py", "w") as fh:
    fh.write("def add(a, b):\\n    return a %s b\\n" % ("+" if fixed else "-"))
print("wrote calc.py")
print("<promise>TASK_DONE</promise>")
'''


def _python_project(project: SpecProject, tmp_path: Path) -> str:
    project.spec("calc", "- [ ] 1. Implement add in calc.py\n- [ ] 2. Document it\n")
    (project.root / "tests").mkdir()
    (project.root / "tests" / "test_calc.py").write_text(textwrap.dedent("""
        from calc import add

        def test_add():
            assert add(2, 3) == 5
        """))
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    project.env["PROMPTS_LOG"] = str(tmp_path / "prompts.log")
    return f"cmd:{shlex.quote(sys.executable)} {shlex.quote(str(agent))} --prompt-file {{prompt_file}}"


def _verify() -> list[str]:
    return ["--verify", f"{shlex.quote(sys.executable)} -m pytest -q -x -p no:cacheprovider tests"]


def test_done_with_a_failing_test_fails_verification_with_the_test_in_junit(
        project: SpecProject, tmp_path: Path) -> None:
    backend = _python_project(project, tmp_path)
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/calc", *_verify(), "--junitxml", str(report), backend=backend)
    res.assert_failed(1)
    assert "task 1 failed: verification failed:" in res.output
    failure = ET.parse(report).getroot().find(".//testcase/failure")
    assert failure is not None and failure.get("message", "").startswith("task 1 failed: verification failed")
    assert "test_add" in (failure.text or "") and "assert" in (failure.text or "")
    progress = (project.specs_dir / "SEQUENTIAL_PROGRESS.md").read_text()
    assert "verification failed" in progress and "test_add" in progress
    transcript = project.transcript("calc", "1")
    assert "--- seqharness: verifying:" in transcript and "1 failed" in transcript
    state = project.spec_state("calc")
    assert state["completed"] == [] and state["tasks"]["1"]["status"] == "failed"
    assert "- [ ] 1. Implement add" in project.tasks_md("calc")


def test_a_retry_gets_the_check_output_and_passes_once_fixed(project: SpecProject, tmp_path: Path) -> None:
    backend = _python_project(project, tmp_path)
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/calc", *_verify(), "--task-retries", "1", "--junitxml", str(report),
                      backend=backend)
    res.assert_passed()
    prompts = (tmp_path / "prompts.log").read_text().split("\n=====\n")
    first, second = prompts[0], prompts[1]
    assert "test_add" not in first
    assert "This is attempt 2" in second and "verification failed" in second
    assert "def test_add" in second and "assert" in second  # pytest's own report of the failure
    assert (project.root / "calc.py").read_text().strip().endswith("a + b")
    out = [c.findtext("system-out") or "" for c in ET.parse(report).getroot().iter("testcase")]
    assert "verify: " in out[0] and ": passed, exit 0" in out[0]
    assert project.spec_state("calc")["completed"][:1] == ["1"]


@pytest.mark.parametrize(("command", "message"), [
    ("'python -m pytest", "--verify \"'python -m pytest\": cannot split the command line"),
    ("surely-no-such-checker-xyz --all", "--verify: program 'surely-no-such-checker-xyz' not found"),
])
def test_an_unusable_verify_command_is_a_usage_error(project: SpecProject, command: str, message: str) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    res = project.run(".kiro/specs/feature", "--verify", command)
    assert res.ret == 4, res
    assert message in res.output
    assert project.agent_calls() == []


def test_the_verify_command_is_never_run_for_a_failed_attempt(project: SpecProject, tmp_path: Path) -> None:
    marker = tmp_path / "verified"
    project.spec("feature", "- [ ] 1. One\n  - fake-agent: fail\n")
    res = project.run(".kiro/specs/feature", "--verify", f"touch {marker}")
    res.assert_failed(1)
    assert not marker.exists()
