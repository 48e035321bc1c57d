"""Red-green (--tdd): a task that needs tests must add one, and all must pass.

A real temporary Python project with a real pytest suite (one test to start
with), and a small agent that writes code, and tests or not, into the
project root (its cwd) before it says done.  seqharness counts the tests the
project's own pytest collects before the attempt and after it.  At the
end, the two rules on their own: how a collect command's output is counted,
and which dispatch units need a new test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from repokit import REPO

from seqharness.taskscan import parse
from seqharness.tdd import DEFAULT_TITLES, Tally, count_tests, needs_tests
from seqharness.testing import SpecProject
from seqharness.units import build_units

PY = shlex.quote(sys.executable)
COLLECT = f"{PY} -m pytest --collect-only -q -p no:cacheprovider"
RUN = f"{PY} -m pytest -q -p no:cacheprovider"

# TDD_AGENT chooses what the agent does:
#   notest    implements subtract, adds no test
#   pass      implements subtract and adds a passing test for it
#   failtest  adds a test for subtract, implements it wrongly
#   fix       implements subtract correctly, adds no test
#   retry     failtest on its first attempt, fix on a retry
AGENT = '''
import os, sys
prompt = open(sys.argv[sys.argv.index("--prompt-file") + 1]).read()
with open(os.environ["PROMPTS_LOG"], "a") as fh:
    fh.write(prompt + "\\n=====\\n")
mode = os.environ.get("TDD_AGENT", "notest")
if mode == "retry":
    mode = "fix" if "This is attempt 2" in prompt else "failtest"
right = mode in ("notest", "pass", "fix")
with open("calc.py", "w") as fh:
    fh.write("def add(a, b):\\n    return a + b\\n\\n\\n")
    fh.write("def subtract(a, b):\\n    return a %s b\\n" % ("-" if right else "+"))
if mode in ("pass", "failtest"):
    with open(os.path.join("tests", "test_subtract.py"), "w") as fh:
        fh.write("from calc import subtract\\n\\n\\ndef test_subtract():\\n    assert subtract(5, 3) == 2\\n")
print("agent mode", mode)
print("<promise>TASK_DONE</promise>")
'''


def _python_project(project: SpecProject, tmp_path: Path, tasks: str) -> str:
    """calc.py with add, one passing test, the spec; the agent's --backend value."""
    project.spec("calc", tasks)
    (project.root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (project.root / "tests").mkdir()
    (project.root / "tests" / "test_calc.py").write_text(textwrap.dedent("""
        from calc import add

        def test_add():
            assert add(2, 3) == 5
        """))
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    project.env["PROMPTS_LOG"] = str(tmp_path / "prompts.log")
    return f"cmd:{PY} {shlex.quote(str(agent))} --prompt-file {{prompt_file}}"


def _tdd(*extra: str) -> list[str]:
    return ["--tdd", "--tdd-collect", COLLECT, "--tdd-run", RUN, *extra]


def _system_out(report: Path) -> list[str]:
    return [c.findtext("system-out") or "" for c in ET.parse(report).getroot().iter("testcase")]


def test_done_without_a_new_test_fails_with_the_reason(project: SpecProject, tmp_path: Path) -> None:
    backend = _python_project(project, tmp_path, "- [ ] 1. Implement subtract\n  - _Tests: yes_\n")
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/calc", *_tdd(), "--junitxml", str(report), backend=backend,
                      env={"TDD_AGENT": "notest"})
    res.assert_failed(1)
    assert "task 1 failed: no new test: 1 test collected before and after the task" in res.output
    failure = ET.parse(report).getroot().find(".//testcase/failure")
    assert failure is not None and "no new test" in failure.get("message", "")
    assert "tests collected: 1 -> 1" in _system_out(report)[0]
    state = project.spec_state("calc")
    assert state["completed"] == [] and state["tasks"]["1"]["status"] == "failed"
    assert "no new test" in (project.specs_dir / "SEQUENTIAL_PROGRESS.md").read_text()


def test_a_new_passing_test_passes_and_reports_before_and_after(project: SpecProject, tmp_path: Path) -> None:
    """Marked by its title ("Write ..."); the default commands (`python -m pytest ...`)."""
    backend = _python_project(project, tmp_path, "- [ ] 1. Write a test for subtract, then implement it\n")
    project.env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + project.env.get("PATH", "")
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/calc", "--tdd", "--junitxml", str(report), backend=backend,
                      env={"TDD_AGENT": "pass"})
    res.assert_passed()
    assert "tests collected: 1 -> 2" in _system_out(report)[0]
    assert project.spec_state("calc")["completed"] == ["1"]
    transcript = project.transcript("calc", "1")
    # before the agent: the count; after it: the count, then the whole suite
    first = transcript.index("--collect-only")
    assert first < transcript.index("agent mode pass") < transcript.rindex("--collect-only")
    assert "2 passed" in transcript
    prompt = project.prompt("calc", "1")
    assert "add at least one new test" in prompt


def test_a_new_failing_test_fails(project: SpecProject, tmp_path: Path) -> None:
    backend = _python_project(project, tmp_path, "- [ ] 1. Add tests for subtract\n")
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/calc", *_tdd(), "--junitxml", str(report), backend=backend,
                      env={"TDD_AGENT": "failtest"})
    res.assert_failed(1)
    assert "task 1 failed: the tests do not pass (1 -> 2 collected)" in res.output
    failure = ET.parse(report).getroot().find(".//testcase/failure")
    assert failure is not None and "test_subtract" in (failure.text or "")
    assert "tests collected: 1 -> 2" in _system_out(report)[0]


def test_a_task_not_marked_is_not_checked(project: SpecProject, tmp_path: Path) -> None:
    backend = _python_project(project, tmp_path, textwrap.dedent("""\
        - [ ] 1. Implement subtract
        - [ ] 2. Write the changelog entry
          - _Tests: no_
        """))
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/calc", *_tdd(), "--junitxml", str(report), backend=backend,
                      env={"TDD_AGENT": "notest"})
    res.assert_outcomes(passed=2)
    for task in ("1", "2"):
        assert "--collect-only" not in project.transcript("calc", task)
    assert all("tests collected" not in out for out in _system_out(report))
    assert "add at least one new test" not in project.prompt("calc", "1")


def test_without_tdd_nothing_is_checked(project: SpecProject, tmp_path: Path) -> None:
    backend = _python_project(project, tmp_path, "- [ ] 1. Write a test for subtract\n  - _Tests: yes_\n")
    res = project.run(".kiro/specs/calc", backend=backend, env={"TDD_AGENT": "notest"})
    res.assert_passed()
    assert "--collect-only" not in project.transcript("calc", "1")


def test_a_retry_counts_from_before_the_first_attempt(project: SpecProject, tmp_path: Path) -> None:
    """Attempt 1 adds a failing test; attempt 2 fixes the code and adds no other test: red, then green."""
    backend = _python_project(project, tmp_path, "- [ ] 1. Test subtract\n")
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/calc", *_tdd("--task-retries", "1"), "--junitxml", str(report),
                      backend=backend, env={"TDD_AGENT": "retry"})
    res.assert_passed()
    second = (tmp_path / "prompts.log").read_text().split("\n=====\n")[1]
    assert "This is attempt 2" in second and "the tests do not pass" in second
    assert "test_subtract" in second                      # pytest's report of the failure
    assert "tests collected: 1 -> 2" in _system_out(report)[0]
    assert "--collect-only" not in project.transcript("calc", "1", attempt=2).split("agent mode")[0]


def test_a_later_run_keeps_the_count_from_before_the_task(project: SpecProject, tmp_path: Path) -> None:
    """A run that failed with a red test; the next run makes it green and passes."""
    backend = _python_project(project, tmp_path, "- [ ] 1. Test subtract\n")
    project.run(".kiro/specs/calc", *_tdd(), backend=backend, env={"TDD_AGENT": "failtest"}).assert_failed(1)
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/calc", *_tdd(), "--junitxml", str(report), backend=backend,
                      env={"TDD_AGENT": "fix"})
    res.assert_passed()
    assert "tests collected: 1 -> 2" in _system_out(report)[0]
    # --reset forgets it: the same task now adds nothing over 2 tests
    (project.specs_dir / "calc" / "tasks.md").write_text("- [ ] 1. Test subtract\n")
    res = project.run(".kiro/specs/calc", *_tdd(), "--reset", backend=backend, env={"TDD_AGENT": "fix"})
    res.assert_failed(1)
    assert "no new test: 2 tests collected before and after the task" in res.output


def test_with_verify_the_suite_runs_once_after_the_count(project: SpecProject, tmp_path: Path) -> None:
    """The red-green wrapper runs inside the verify gate's: count first, then --verify runs the tests."""
    backend = _python_project(project, tmp_path, "- [ ] 1. Write a test for subtract\n")
    marker_run = f"{PY} -m pytest -q -p no:cacheprovider --tdd-run-marker"  # would fail if it ran
    res = project.run(".kiro/specs/calc", "--tdd", "--tdd-collect", COLLECT, "--tdd-run", marker_run,
                      "--verify", f"{PY} -m pytest -q -p no:cacheprovider", backend=backend,
                      env={"TDD_AGENT": "pass"})
    res.assert_passed()
    transcript = project.transcript("calc", "1")
    assert "--tdd-run-marker" not in transcript
    after = transcript.split("agent mode pass", 1)[1]
    assert after.index("--collect-only") < after.index("verification passed: exit 0") \
        < after.rindex("--- seqharness: verifying:")
    assert after.count("--- seqharness: verifying:") == 2     # the count, then --verify
    # no new test: --verify is never run
    project.spec("calc", "- [ ] 1. Write a test for subtract\n")
    res = project.run(".kiro/specs/calc", "--tdd", "--tdd-collect", COLLECT, "--reset",
                      "--verify", f"touch {tmp_path / 'verified'}", backend=backend,
                      env={"TDD_AGENT": "notest"})
    res.assert_failed(1)
    assert "no new test" in res.output and not (tmp_path / "verified").exists()


def test_collection_errors_after_the_task_fail_it(project: SpecProject, tmp_path: Path) -> None:
    agent = tmp_path / "broken_agent.py"
    agent.write_text('open("tests/test_broken.py", "w").write("def test_x(:\\n")\n'
                     'print("<promise>TASK_DONE</promise>")\n')
    _python_project(project, tmp_path, "- [ ] 1. Test subtract\n")
    res = project.run(".kiro/specs/calc", *_tdd(),
                      backend=f"cmd:{PY} {shlex.quote(str(agent))} --prompt-file {{prompt_file}}")
    res.assert_failed(1)
    assert "task 1 failed: cannot count the tests after the task:" in res.output
    assert "exit 2" in res.output


def test_the_ini_key_turns_it_on(project: SpecProject, tmp_path: Path) -> None:
    backend = _python_project(project, tmp_path, "- [ ] 1. Test subtract\n")
    res = project.run(".kiro/specs/calc", "-o", "seqharness_tdd=true", "--tdd-collect", COLLECT,
                      "--tdd-run", RUN, backend=backend, env={"TDD_AGENT": "notest"})
    res.assert_failed(1)
    assert "no new test" in res.output


def test_the_project_file_turns_it_on(project: SpecProject, tmp_path: Path) -> None:
    backend = _python_project(project, tmp_path, "- [ ] 1. Implement subtract\n")
    (project.root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [tool.seqharness]
        tdd = true
        tdd-titles = "(?i)^implement"
        tdd-collect = {json.dumps(COLLECT)}
        tdd-run = {json.dumps(RUN)}
        """))
    res = project.run(".kiro/specs/calc", backend=backend, env={"TDD_AGENT": "pass"})
    res.assert_passed()
    assert "red-green: 1 -> 2 collected, all pass" in project.transcript("calc", "1")


def test_the_title_rule_is_configurable(project: SpecProject, tmp_path: Path) -> None:
    backend = _python_project(project, tmp_path, "- [ ] 1. Implement subtract\n- [ ] 2. Test subtract\n")
    res = project.run(".kiro/specs/calc", *_tdd("--tdd-titles", "(?i)^implement"), "--maxfail", "2",
                      backend=backend, env={"TDD_AGENT": "notest"})
    res.assert_outcomes(passed=1, failed=1)
    state = project.spec_state("calc")
    assert state["tasks"]["1"]["status"] == "failed" and state["completed"] == ["2"]


def test_unusable_options_are_usage_errors(project: SpecProject) -> None:
    project.spec("feature", "- [ ] 1. Test it\n")
    res = project.run(".kiro/specs/feature", "--tdd", "--tdd-titles", "(unclosed")
    assert res.ret == 4 and "--tdd-titles '(unclosed': not a regular expression" in res.output
    res = project.run(".kiro/specs/feature", "--tdd", "--tdd-collect", "surely-no-such-collector-xyz -q")
    assert res.ret == 4 and "--tdd-collect: program 'surely-no-such-collector-xyz' not found" in res.output
    res = project.run(".kiro/specs/feature", "--tdd", "--tdd-run", "'unbalanced")
    assert res.ret == 4 and "--tdd-run \"'unbalanced\": cannot split the command line" in res.output
    assert project.agent_calls() == []


def test_the_template_conftest(project: SpecProject, tmp_path: Path) -> None:
    """conftest_templates/tdd_red_green.py, copied into the project, gates without --tdd."""
    backend = _python_project(project, tmp_path, "- [ ] 1. Write a test for subtract\n- [ ] 2. Document it\n")
    text = (REPO / "conftest_templates" / "tdd_red_green.py").read_text()
    for old, new in {'COLLECT = "python -m pytest --collect-only -q"': f"COLLECT = {COLLECT!r}",
                     'RUN = "python -m pytest -q"': f"RUN = {RUN!r}"}.items():
        assert old in text, f"the template no longer contains {old!r}"
        text = text.replace(old, new)
    project.conftest(text)
    res = project.run(".kiro/specs/calc", backend=backend, env={"TDD_AGENT": "notest"})
    res.assert_failed(1)
    assert "task 1 failed: no new test: 1 tests collected before, 1 after" in res.output
    # red on the first attempt, green on the retry: the count from before the first one stands
    res = project.run(".kiro/specs/calc", "--task-retries", "1", backend=backend, env={"TDD_AGENT": "retry"})
    res.assert_outcomes(passed=2)             # task 2 is not checked
    second = (tmp_path / "prompts.log").read_text().split("\n=====\n")[2]
    assert "This is attempt 2" in second and "the tests do not pass" in second
    assert sorted(project.spec_state("calc")["completed"]) == ["1", "2"]


# -- the two rules on their own: counting a collect command's output, and which units need tests


@pytest.mark.parametrize(("output", "expected"), [
    ("tests/test_a.py::test_one\ntests/test_a.py::test_two\n\n2 tests collected in 0.01s\n", 2),
    ("t.py::test_one\n\n1 test collected in 0.01s\n", 1),
    ("\nno tests collected in 0.56s\n", 0),
    ("t.py::test_a\n\n1/2 tests collected (1 deselected) in 0.5s\n", 1),
    ("t.py::a\nt.py::b\nERROR test_bad.py\n!!! Interrupted: 1 error during collection !!!\n"
     "2 tests collected, 1 error in 0.7s\n", 2),
    ("============ test session starts ============\ncollected 3 items\n", 3),
    ("collected 5 items / 2 deselected / 3 selected\n", 3),
    ("t.py::test_a\nt.py::test_b[x::y]\nt.py::C::test_c\n", 3),     # ids only, no summary
    ("--- seqharness: verifying: x ---\n   17\n--- seqharness: verification passed ---\n", 17),  # | wc -l
    ("--- seqharness: verifying: x ---\nsomething else\n", None),
    ("", None),
])
def test_count_tests(output: str, expected: int | None) -> None:
    assert count_tests(output.splitlines(keepends=True)) == expected


def test_the_last_summary_wins_and_tracebacks_are_not_ids() -> None:
    output = ("t.py::a\n    raise ValueError('x::y')\nE   AssertionError: a::b\n_____ t.py::a _____\n"
              "1 test collected in 0.1s\n")
    assert count_tests(output.splitlines()) == 1
    assert count_tests(["t.py::a", "    at t.py::a", "E   t.py::a"]) == 1


TITLES = re.compile(DEFAULT_TITLES)


def _units(text: str, **kwargs: str) -> dict[str, bool]:
    units = build_units(parse(text.encode()), kwargs.get("granularity", "parent"))
    return {u.name: needs_tests(u, TITLES) for u in units}


def test_titles_starting_with_write_add_test_or_test_need_tests() -> None:
    assert _units(
        "- [ ] 1. Write unit tests for the parser\n"
        "- [ ] 2. Add tests for login\n"
        "- [ ] 3. test the CLI\n"
        "- [ ] 4. **Write** the failing test\n"
        "- [ ] 5. Implement the parser\n"
        "- [ ] 6. Rewrite the README\n"
        "- [ ] 7. Add the login page\n"
        "- [ ] 8. Testing is not the point here, Tests neither\n"
    ) == {"1": True, "2": True, "3": True, "4": True, "5": False, "6": False, "7": False, "8": True}


def test_the_tests_annotation_decides() -> None:
    assert _units(
        "- [ ] 1. Implement the parser\n  - _Tests: yes_\n"
        "- [ ] 2. Write the changelog\n  - _Tests: no_\n"
        "- [ ] 3. Implement login\n  - _Tests: unit and integration_\n"
        "- [ ] 4. Write docs\n  - _Tests: n/a_\n"
    ) == {"1": True, "2": False, "3": True, "4": False}


def test_a_subtask_can_mark_its_unit() -> None:
    text = ("- [ ] 1. Build the parser\n"
            "  - [ ] 1.1 Implement tokens\n"
            "  - [ ] 1.2 Write tests for tokens\n"
            "- [ ] 2. Build the CLI\n"
            "  - [ ] 2.1 Wire it up\n    - _Tests: yes_\n"
            "- [ ] 3. Build the docs\n"
            "  - [ ]* 3.1 Write doc tests\n")
    assert _units(text) == {"1": True, "2": True, "3": False}   # an optional subtask is not run
    units = build_units(parse(text.encode()), "parent")
    assert needs_tests(units[2], TITLES, include_optional=True)
    assert _units(text, granularity="leaf") == {"1.1": False, "1.2": True, "2.1": True, "3.1": True}


def test_without_a_title_rule_only_annotations_count() -> None:
    units = build_units(parse(b"- [ ] 1. Write tests\n- [ ] 2. Do it\n  - _Tests: yes_\n"), "parent")
    assert [needs_tests(u, None) for u in units] == [False, True]


def test_tally_fact() -> None:
    assert Tally(12, 14).fact() == "12 -> 14"
    assert Tally(12).fact() == "12 -> ?"
    assert Tally(None, 3).fact() == "? -> 3"
