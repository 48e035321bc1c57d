"""The test kit users get (``pytest_plugins = ["seqharness.testing"]``), used as they would.

Real processes only: the real ``seqharness`` command, the kit's own agent
(:mod:`seqharness.testagent`), real tmux, and for the user's view a real
nested pytest run (``pytester.runpytest_subprocess``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seqharness.testing import (
    RunResult,
    SpecProject,
    fake_backend,
    kill_tmux_server,
    new_project,
)

pytest_plugins = ["pytester"]

TWO_TASKS = """
    # Implementation Plan
    - [ ] 1. Create the model
    - [ ] 2. Add the login page
    """

USER_CONFTEST = '''
    """A team's seqharness customisation: one more rule in every prompt."""
    from seqharness.prompt import build_prompt


    def pytest_seqharness_build_prompt(unit, context):
        return build_prompt(unit, context) + "\\nTEAM RULE: run make lint before you say done.\\n"
    '''

USER_TEST = '''
    from pathlib import Path

    from seqharness.testing import fake_backend

    pytest_plugins = ["seqharness.testing"]

    HERE = Path(__file__).parent


    def test_team_rule_reaches_the_agent(seqharness_project):
        seqharness_project.conftest(HERE / "conftest.py")
        seqharness_project.spec("feature", """
            - [ ] 1. Create the model
            - [ ] 2. Add the login page
            """)
        res = seqharness_project.run(".kiro/specs/feature")
        res.assert_passed()
        res.assert_outcomes(passed=2)
        assert "TEAM RULE: run make lint" in seqharness_project.prompt("feature", "2")
        assert [c["task"] for c in seqharness_project.agent_calls()] == ["1", "2"]


    def test_a_halt_is_reported(seqharness_project):
        seqharness_project.conftest(HERE / "conftest.py")
        seqharness_project.spec("feature", "- [ ] 1. One\\n- [ ] 2. Two\\n")
        res = seqharness_project.run(".kiro/specs/feature",
                                     backend=fake_backend("--outcome", "2=halt:Which colour?"))
        res.assert_halted("Which colour?")
        res.assert_outcomes(passed=1, halted=1)
        assert seqharness_project.spec_state("feature")["halted_task"] == "2"
    '''


def test_a_users_conftest_is_tested_with_the_kit(pytester: pytest.Pytester) -> None:
    """A user's project: a seqharness hook in conftest.py, a test file loading the kit."""
    pytester.makeconftest(textwrap.dedent(USER_CONFTEST))
    pytester.makepyfile(test_seqharness_setup=textwrap.dedent(USER_TEST))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=2)


def test_the_kit_fails_a_users_test_with_a_readable_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_expects_too_much=textwrap.dedent('''
        pytest_plugins = ["seqharness.testing"]


        def test_expects_a_pass(seqharness_project):
            seqharness_project.spec("feature", "- [ ] 1. One\\n  - testagent: fail:7\\n")
            seqharness_project.run(".kiro/specs/feature").assert_passed()
        '''))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: expected exit 0 (all complete), got 1",
                                 "*<RunResult ret=1 (failed) after * s>",
                                 "*$ *seqharness .kiro/specs/feature --backend *seqharness.testagent*",
                                 "*--- stdout ---*", "*1 failed in *"])


def test_halt_assertions_and_what_a_run_left(seqharness_project: SpecProject) -> None:
    project = seqharness_project
    project.spec("feature", TWO_TASKS)
    question = "Which colour should the login button be?"
    res = project.run(".kiro/specs/feature", backend=fake_backend("--outcome", f"2=halt:{question}"))
    res.assert_halted()
    res.assert_halted(question)
    res.assert_outcomes(passed=1, halted=1)
    assert res.outcomes() == {"passed": 1, "halted": 1}
    with pytest.raises(AssertionError, match="expected exit 0 \\(all complete\\), got 2") as info:
        res.assert_passed()
    with pytest.raises(AssertionError, match="halted, but the question 'Is it Tuesday\\?'"):
        res.assert_halted("Is it Tuesday?")
    with pytest.raises(AssertionError, match="outcomes .* != expected"):
        res.assert_outcomes(passed=2)
    message = str(info.value)
    assert "<RunResult ret=2 (halted or interrupted)" in message
    assert "seqharness.testagent" in message and "--- stdout ---" in message
    assert "1 passed, 1 halted in" in message  # the tail of the output
    # What the run left behind, read through the kit
    state = project.spec_state("feature")
    assert state["completed"] == ["1"] and state["halted_task"] == "2"
    assert question in project.transcript("feature", "2")
    assert "Task id: 2" in project.prompt("feature", "2")
    assert "- [x] 1. Create the model" in project.tasks_md("feature")
    calls = project.agent_calls()
    assert [(c["task"], c["outcome"]) for c in calls] == [("1", "done"), ("2", f"halt:{question}")]
    assert calls[0]["cwd"] == str(project.root)


def test_failures_retries_and_the_prompt_directive(seqharness_project: SpecProject) -> None:
    project = seqharness_project
    project.spec("feature", """
        - [ ] 1. Broken
          - testagent: fail:3
        - [ ] 2. Never reached
        """)
    res = project.run(".kiro/specs/feature", "--retries", "1")
    res.assert_failed()
    res.assert_outcomes(failed=1)
    with pytest.raises(AssertionError, match="expected exit 2 \\(halted\\), got 1"):
        res.assert_halted()
    assert project.spec_state("feature")["tasks"]["1"]["last_exit"] == 3
    assert project.transcript_path("feature", "1").name.endswith("-a2.log")  # the newest
    assert "failed (scripted)" in project.transcript("feature", "1", attempt=1)
    assert [c["task"] for c in project.agent_calls()] == ["1", "1"]
    # silent: exit 0 without the done tag is a failure too; --outcome beats the directive
    res = project.run(".kiro/specs/feature", "-k", "1", backend=fake_backend("--outcome", "1=silent"))
    res.assert_failed()
    assert "no signal" in project.transcript("feature", "1")


def test_no_backend_a_usage_error_and_env_overrides(seqharness_project: SpecProject) -> None:
    project = seqharness_project
    project.spec("feature", TWO_TASKS)
    res = project.run(".kiro/specs/feature", "--co", "-q", backend=None)
    assert res.ret == 0, res
    assert "--backend" not in res.argv and project.agent_calls() == []
    assert "tasks.md::1" in res.stdout and "tasks.md::2" in res.stdout
    res = project.run(".kiro/specs/missing")
    res.assert_failed(4)
    with pytest.raises(AssertionError, match="no pytest summary line"):
        res.outcomes()
    # env: added for one run, and None removes a variable (here: no log is written)
    res = project.run(".kiro/specs/feature", env={"SEQHARNESS_TESTAGENT": "--sleep 0.3",
                                                  "SEQHARNESS_TESTAGENT_LOG": None})
    res.assert_passed()
    assert res.duration >= 0.6 and project.agent_calls() == []


def test_the_repr_keeps_the_tail_of_long_output() -> None:
    res = RunResult(1, "".join(f"line {i}\n" for i in range(500)), "boom\n",
                    ["seqharness", ".kiro/specs/x"], 1.5)
    text = repr(res)
    assert text.startswith("<RunResult ret=1 (failed) after 1.5 s>\n$ seqharness .kiro/specs/x\n")
    assert "--- stdout, last 60 of 500 lines ---" in text and "line 499" in text
    assert "line 439\n" not in text and text.endswith("--- stderr ---\nboom")


def test_the_agent_on_its_own(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("You are implementing one task.\n\nTask id: 3\nTask title: Three\n")
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "SEQHARNESS_TESTAGENT_LOG": str(log),
           "SEQHARNESS_TESTAGENT": "--outcome '3=halt:Tabs or spaces?' --outcome 4=fail"}
    argv = [sys.executable, "-m", "seqharness.testagent", "--prompt-file", str(prompt)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[-2:] == ["Tabs or spaces?", "<promise>HALT</promise>"]
    proc = subprocess.run([*argv, "--outcome", "3=fail:5"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 5  # the command line beats the environment
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["halt:Tabs or spaces?", "fail:5"]
    assert records[0]["task"] == "3" and records[0]["argv"][-2:] == ["--prompt-file", str(prompt)]


@pytest.mark.tmux
def test_tmux_project_shows_the_run_and_is_cleaned_up(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    project = new_project(tmp_path, tmux=True)  # as the seqharness_tmux_project fixture
    assert project.tmux_socket and "CODEAGENT_NO_TMUX" not in project.env
    folder = Path("/tmp") / f"tmux-{os.getuid()}"
    try:
        project.spec("feature", TWO_TASKS)
        project.run(".kiro/specs/feature").assert_passed()
        windows = project.tmux("list-windows", "-t", "=sequential-feature", "-F", "#{window_name}")
        assert {"task-1", "task-2"} <= set(windows.split())
        assert (folder / project.tmux_socket).exists()
    finally:
        kill_tmux_server(project.tmux_socket, project.env)
    assert not (folder / project.tmux_socket).exists()
    assert project.tmux("list-sessions") == ""


def test_tmux_needs_a_tmux_project(seqharness_project: SpecProject) -> None:
    assert seqharness_project.env["CODEAGENT_NO_TMUX"] == "1"
    assert not any(k.startswith(("PYTEST_", "TMUX")) for k in seqharness_project.env)
    with pytest.raises(ValueError, match="seqharness_tmux_project"):
        seqharness_project.tmux("list-sessions")


def test_the_readme_example_runs_as_written(pytester: pytest.Pytester) -> None:
    """The README's "Testing your conftest.py" example, with the team-rules
    template as the conftest under test, passes in a user's project."""
    repo = Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text()
    start = readme.index("# tests/test_seqharness_setup.py")
    example = readme[start:readme.index("```", start)]
    (pytester.path / "conftest.py").write_text((repo / "conftest_templates" / "team_prompt.py").read_text())
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_seqharness_setup.py").write_text(example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "tests")
    result.assert_outcomes(passed=2)
