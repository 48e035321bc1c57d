"""End-to-end: the real ``seqharness`` command on real specs with the fake agent.

These are the runs a user makes.  tmux is off here (CODEAGENT_NO_TMUX=1)
except in test_tmux_run.py, so the suite stays fast.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from repokit import fake_backend, validate_junit

from seqharness.testing import SpecProject, seqharness_command

THREE_TASKS = """
    # Implementation Plan

    - [ ] 1. Set up the project
      - Create folders
      - _Requirements: 1.1_

    - [ ] 2. Build the login form
      - [ ] 2.1 Create the form component
        - _Requirements: 2.1_
      - [ ] 2.2 Validate input
      - [ ]* 2.3 Write property tests

    - [ ] 3. Wire it together
      - _Requirements: 3.1_
    """


def test_all_pass_exits_0_ticks_tasks_and_records_state(project: SpecProject, tmp_path: Path) -> None:
    spec = project.spec("feature", THREE_TASKS)
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/feature", "--junitxml", str(report), "-v")
    assert res.ret == 0, res.output
    assert "3 passed" in res.stdout
    text = (spec / "tasks.md").read_text()
    assert "- [x] 1. Set up" in text
    assert "- [x] 2. Build" in text
    assert "  - [x] 2.1 Create" in text and "  - [x] 2.2 Validate" in text
    assert "  - [ ]* 2.3 Write" in text  # optional subtask left alone
    assert "- [x] 3. Wire" in text
    state = project.state()["specs"]["feature"]
    assert state["completed"][:1] == ["1"] and "2" in state["completed"] and "2.1" in state["completed"]
    assert state["halted"] is False and state["completed_at"]
    # No agent of the run is left, so no token for the next run to search /proc for.
    assert state["running"] is None and state["next_token"] is None
    assert [c["task"] for c in project.agent_calls()] == ["1", "2", "3"]
    progress = (project.root / ".kiro/specs/SEQUENTIAL_PROGRESS.md").read_text()
    assert progress.count("· PASSED") == 3
    transcripts = sorted((spec / ".seqharness" / "transcripts").glob("*.log"))
    assert len(transcripts) == 3
    assert "<promise>TASK_DONE</promise>" in transcripts[0].read_text(errors="replace")
    validate_junit(report)
    root = ET.parse(report).getroot()
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["1", "2", "3"]
    out = cases[0].find("system-out")
    assert out is not None and "transcript:" in out.text and "attempts: 1" in out.text


def test_second_run_skips_completed_tasks(project: SpecProject) -> None:
    project.spec("feature", THREE_TASKS)
    assert project.run(".kiro/specs/feature").ret == 0
    res = project.run(".kiro/specs/feature", "-rs")
    assert res.ret == 0, res.output
    assert "3 skipped" in res.stdout
    assert "already complete" in res.stdout
    assert len(project.agent_calls()) == 3


def test_node_ids_and_collect_only(project: SpecProject) -> None:
    project.spec("feature", THREE_TASKS)
    res = project.run(".kiro/specs/feature", "--co", "-q", backend=None)
    assert res.ret == 0, res.output
    lines = [ln for ln in res.stdout.splitlines() if "::" in ln]
    assert lines == [".kiro/specs/feature/tasks.md::1", ".kiro/specs/feature/tasks.md::2",
                     ".kiro/specs/feature/tasks.md::3"]
    leaf = project.run(".kiro/specs/feature", "--co", "-q", "--granularity", "leaf", backend=None)
    assert [ln.split("::")[1] for ln in leaf.stdout.splitlines() if "::" in ln] == ["1", "2.1", "2.2", "2.3", "3"]
    assert project.agent_calls() == []


def test_k_selects_by_id_and_title(project: SpecProject) -> None:
    project.spec("feature", THREE_TASKS)
    res = project.run(".kiro/specs/feature", "-k", "3 or login", "-v")
    assert res.ret == 0, res.output
    assert [c["task"] for c in project.agent_calls()] == ["2", "3"]
    assert "2 passed, 1 deselected" in res.stdout


def test_halt_exits_2_and_next_run_resumes_there(project: SpecProject) -> None:
    spec = project.spec("feature", """
        - [ ] 1. First
        - [ ] 2. Needs a decision
          - fake-agent: halt
        - [ ] 3. Last
        """)
    res = project.run(".kiro/specs/feature", "--max-iterations", "10")
    assert res.ret == 2, res.output
    assert "HALTED" in res.stdout
    assert "which database" in res.stdout
    state = project.state()["specs"]["feature"]
    assert state["halted"] is True and state["halted_task"] == "2"
    assert "which database" in state["halt_question"]
    assert "- [ ] 2. Needs" in (spec / "tasks.md").read_text()
    # The human answers (here: by changing the scripted behaviour) and reruns.
    tasks = spec / "tasks.md"
    tasks.write_text(tasks.read_text().replace("fake-agent: halt", "fake-agent: done"))
    res2 = project.run(".kiro/specs/feature")
    assert res2.ret == 0, res2.output
    assert "resuming spec feature at halted task 2" in res2.stdout
    assert [c["task"] for c in project.agent_calls()] == ["1", "2", "2", "3"]
    assert project.state()["specs"]["feature"]["halted"] is False


def test_failing_task_exits_1_after_its_retries(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", """
        - [ ] 1. Broken
          - fake-agent: fail
        - [ ] 2. Never reached
        """)
    report = tmp_path / "r.xml"
    res = project.run(".kiro/specs/feature", "--retries", "2", "--junitxml", str(report))
    assert res.ret == 1, res.output
    calls = project.agent_calls()
    assert [c["task"] for c in calls] == ["1", "1", "1"]
    record = project.state()["specs"]["feature"]["tasks"]["1"]
    assert record["attempts"] == 3 and record["status"] == "failed" and record["last_exit"] == 1
    validate_junit(report)
    failure = ET.parse(report).getroot().find(".//testcase[@name='1']/failure")
    assert failure is not None
    assert "exited with code 1" in failure.get("message")
    assert "tests failed" in failure.text  # the transcript's tail


def test_flaky_task_passes_on_retry(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Flaky
          - fake-agent: flaky=1
        """)
    res = project.run(".kiro/specs/feature", "--retries", "1")
    assert res.ret == 0, res.output
    assert len(project.agent_calls()) == 2


def test_maxfail_higher_lets_the_run_go_on(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Broken
          - fake-agent: fail
        - [ ] 2. Independent
        """)
    res = project.run(".kiro/specs/feature", "--maxfail", "5")
    assert res.ret == 1, res.output
    assert "1 failed, 1 passed" in res.stdout


def test_budget_exhausted_skips_the_rest_and_exits_1(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", """
        - [ ] 1. One
        - [ ] 2. Two
        - [ ] 3. Three
        - [ ] 4. Four
        """)
    report = tmp_path / "r.xml"
    res = project.run(".kiro/specs/feature", "--max-iterations", "2", "--junitxml", str(report))
    assert res.ret == 1, res.output
    assert "2 passed, 2 skipped" in res.stdout
    assert "iteration budget spent" in res.stdout
    validate_junit(report)
    skipped = ET.parse(report).getroot().findall(".//testcase/skipped")
    assert len(skipped) == 2
    assert all("iteration budget spent" in s.get("message") for s in skipped)


def test_prompt_echo_agent_does_not_pass(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Echo <promise>TASK_DONE</promise> in the title
          - fake-agent: echo
          - detail line <promise>TASK_DONE</promise>
        """)
    res = project.run(".kiro/specs/feature")
    assert res.ret == 1, res.output
    assert "without printing <promise>TASK_DONE</promise>" in res.stdout


def test_exit_0_without_signal_fails_unless_trusted(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Quiet
          - fake-agent: silent
        """)
    assert project.run(".kiro/specs/feature").ret == 1
    res = project.run(".kiro/specs/feature", "--trust-exit-code")
    assert res.ret == 0, res.output


def test_optional_tasks_skipped_unless_included(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Required
        - [ ]* 2. Optional extra
        """)
    res = project.run(".kiro/specs/feature", "-rs")
    assert res.ret == 0, res.output
    assert "optional task" in res.stdout
    assert [c["task"] for c in project.agent_calls()] == ["1"]
    res = project.run(".kiro/specs/feature", "--include-optional")
    assert res.ret == 0
    assert [c["task"] for c in project.agent_calls()] == ["1", "2"]


def test_unmet_dependency_skips_dependent(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Broken
          - fake-agent: fail
        - [ ] 2. Needs one
          - _Depends: 1_
        - [ ] 3. Free
        """)
    res = project.run(".kiro/specs/feature", "--maxfail", "9", "-rs")
    assert res.ret == 1, res.output
    assert "dependency 1 not complete (failed)" in res.stdout
    assert [c["task"] for c in project.agent_calls()] == ["1", "3"]


def test_dependency_reorders_units(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Needs two first
          - _Depends: 2_
        - [ ] 2. Base
        """)
    res = project.run(".kiro/specs/feature")
    assert res.ret == 0, res.output
    assert [c["task"] for c in project.agent_calls()] == ["2", "1"]


def test_original_flags_spec_delay_workdir(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", """
        - [ ] 1. Write a file
          - fake-agent: write=made-by-agent.txt
        """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = project.run("--spec", ".kiro/specs/feature", "--delay", "0", "--max-iterations", "5",
                      "--workdir", str(elsewhere), "--tmux-session", "x")
    assert res.ret == 0, res.output
    assert (elsewhere / "made-by-agent.txt").exists()
    assert project.agent_calls()[0]["cwd"] == str(elsewhere)


def test_default_workdir_is_folder_above_kiro(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Write a file
          - fake-agent: write=out.txt
        """)
    res = project.run(".kiro/specs/feature")
    assert res.ret == 0, res.output
    assert (project.root / "out.txt").exists()


def test_two_specs_keep_separate_state(project: SpecProject) -> None:
    project.spec("alpha", "- [ ] 1. Alpha one\n")
    project.spec("beta", "- [ ] 1. Beta one\n")
    assert project.run(".kiro/specs/alpha").ret == 0
    state = project.state()["specs"]
    assert state["alpha"]["completed"] == ["1"] and "beta" not in state
    res = project.run(".kiro/specs/beta")
    assert res.ret == 0, res.output
    assert project.state()["specs"]["beta"]["completed"] == ["1"]


def test_plugin_under_plain_pytest_matches_command(project: SpecProject) -> None:
    import subprocess
    import sys

    project.spec("feature", THREE_TASKS)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "seqharness.plugin", "--co", "-q",
                           "--rootdir", str(project.root), ".kiro/specs/feature"],
                          cwd=project.root, env=project.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ".kiro/specs/feature/tasks.md::2" in proc.stdout


def test_plain_pytest_does_not_collect_specs(project: SpecProject) -> None:
    import subprocess
    import sys

    project.spec("feature", THREE_TASKS)
    (project.root / "test_ok.py").write_text("def test_ok():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q"], cwd=project.root,
                          env=project.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test_ok.py::test_ok" in proc.stdout
    assert "tasks.md" not in proc.stdout


def test_usage_errors_are_one_line_exit_4(project: SpecProject, tmp_path: Path) -> None:
    res = project.run(".kiro/specs/missing")
    assert res.ret == 4
    assert res.stderr.strip().count("\n") == 0 and "missing" in res.stderr
    (project.root / "empty").mkdir()
    res = project.run("empty")
    assert res.ret == 4 and "no tasks.md" in res.stderr
    project.spec("feature", "- [ ] 1. One\n")
    res = project.run(".kiro/specs/feature", backend="nonsense")
    assert res.ret == 4 and "unknown backend 'nonsense'" in res.output
    assert "Traceback" not in res.output
    res = project.run(".kiro/specs/feature", backend="cmd:/nonexistent/agent {prompt_file}")
    assert res.ret == 4 and "not found" in res.output
    assert project.agent_calls() == []


def test_malformed_spec_is_one_line_with_file_and_line(project: SpecProject) -> None:
    project.spec("cyclic", """
        - [ ] 1. One
          - _Depends: 2_
        - [ ] 2. Two
          - _Depends: 1_
        """)
    res = project.run(".kiro/specs/cyclic")
    assert res.ret == 4, res.output
    assert "tasks.md:1: dependency cycle" in res.output
    assert "Traceback" not in res.output
    project.spec("nothing", "# Plan\n\nJust prose.\n")
    res = project.run(".kiro/specs/nothing")
    assert res.ret == 4
    assert ".kiro/specs/nothing/tasks.md:1: no tasks found" in res.output


def test_halt_in_junit_is_a_failure_whose_message_starts_with_halt(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", """
        - [ ] 1. Ask
          - fake-agent: halt
        - [ ] 2. Later
        """)
    report = tmp_path / "r.xml"
    res = project.run(".kiro/specs/feature", "--junitxml", str(report), "--maxfail", "5")
    assert res.ret == 2, res.output
    validate_junit(report)
    failure = ET.parse(report).getroot().find(".//testcase[@name='1']/failure")
    assert failure is not None and failure.get("message").startswith("HALT: task 1 needs human input")
    assert "which database" in failure.get("message")
    assert [c["task"] for c in project.agent_calls()] == ["1"]  # the run stopped at once


def test_last_failed_reruns_only_the_failed_task(project: SpecProject) -> None:
    spec = project.spec("feature", """
        - [ ] 1. Broken
          - fake-agent: fail
        - [ ] 2. Fine
        """)
    assert project.run(".kiro/specs/feature", "--maxfail", "5").ret == 1
    tasks = spec / "tasks.md"
    tasks.write_text(tasks.read_text().replace("fake-agent: fail", "fake-agent: done"))
    res = project.run(".kiro/specs/feature", "--lf")
    assert res.ret == 0, res.output
    assert "rerun previous 1 failure" in res.stdout and "1 passed" in res.stdout
    assert [c["task"] for c in project.agent_calls()] == ["1", "2", "1"]


def test_xunit1_puts_task_facts_in_testcase_properties(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    report = tmp_path / "r.xml"
    res = project.run(".kiro/specs/feature", "--junitxml", str(report), "-o", "junit_family=xunit1")
    assert res.ret == 0, res.output
    props = {p.get("name"): p.get("value")
             for p in ET.parse(report).getroot().findall(".//testcase/properties/property")}
    assert props["attempts"] == "1" and props["exit_code"] == "0"
    assert props["transcript"].startswith(".kiro/specs/feature/.seqharness/transcripts/task-1-")
    assert "fake_agent.py" in props["backend"]


def test_agent_output_with_control_characters_gives_valid_junit(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", """
        - [ ] 1. Binary noise then fail
          - fake-agent: fail
        """)
    report = tmp_path / "r.xml"
    script = tmp_path / "noisy_agent.py"
    script.write_text(
        "import sys\n"
        "sys.stdout.buffer.write(b'nul\\x00 esc\\x1b[31mred\\x1b[0m bell\\x07 vt\\x0b ff\\x0c "
        "bad utf8 \\xff\\xfe osc \\x1b]0;title\\x07 end\\n')\n"
        "sys.exit(3)\n")
    import sys
    res = project.run(".kiro/specs/feature", "--junitxml", str(report),
                      backend=f"cmd:{sys.executable} {script} {{prompt_file}}")
    assert res.ret == 1, res.output
    validate_junit(report)
    failure = ET.parse(report).getroot().find(".//testcase/failure")
    assert "exited with code 3" in failure.get("message")
    assert "red" in failure.text and "\x1b" not in failure.text and "end" in failure.text


def test_timeouts_fail_with_their_reason(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Hangs
          - fake-agent: hang
        """)
    res = project.run(".kiro/specs/feature", "--idle-timeout", "0.5")
    assert res.ret == 1, res.output
    assert "idle: the agent printed nothing" in res.stdout
    res = project.run(".kiro/specs/feature", env={"CODEX_TIMEOUT": "700"})  # ms, as the original
    assert res.ret == 1, res.output
    assert "timeout: the agent ran longer" in res.stdout


def test_delay_between_tasks_but_not_after_the_last(project: SpecProject) -> None:
    import time

    project.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    start = time.monotonic()
    res = project.run(".kiro/specs/feature", "--delay", "1.5")
    elapsed = time.monotonic() - start
    assert res.ret == 0, res.output
    calls = project.agent_calls()
    assert calls[1]["time"] - calls[0]["time"] >= 1.5
    project.spec("single", "- [ ] 1. Only\n")
    start = time.monotonic()
    assert project.run(".kiro/specs/single", "--delay", "30").ret == 0
    assert time.monotonic() - start < 15 < elapsed + 15


def test_checkbox_is_in_progress_while_the_agent_runs(project: SpecProject, tmp_path: Path) -> None:
    import sys

    spec = project.spec("feature", "- [ ] 1. Look at yourself\n- [ ] 2. Second\n")
    script = tmp_path / "peek.py"
    script.write_text(
        "import sys\n"
        "text = open('.kiro/specs/feature/tasks.md').read()\n"
        "open('seen-' + sys.argv[1] + '.md', 'w').write(text)\n"
        "print('<promise>TASK_DONE</promise>')\n")
    res = project.run(".kiro/specs/feature", backend=f"cmd:{sys.executable} {script} {{task_id}}")
    assert res.ret == 0, res.output
    assert (project.root / "seen-1.md").read_text() == "- [-] 1. Look at yourself\n- [ ] 2. Second\n"
    assert (project.root / "seen-2.md").read_text() == "- [x] 1. Look at yourself\n- [-] 2. Second\n"
    assert (spec / "tasks.md").read_text() == "- [x] 1. Look at yourself\n- [x] 2. Second\n"


def test_failed_task_checkbox_is_restored_byte_for_byte(project: SpecProject) -> None:
    original = "# Plan\r\n\r\n- [ ] 1. Broken ünïcode\r\n  - fake-agent: fail\r\n- [X] 2. Done"
    spec = project.spec("feature", "- [ ] 1. x\n")
    (spec / "tasks.md").write_bytes(original.encode())
    assert project.run(".kiro/specs/feature").ret == 1
    assert (spec / "tasks.md").read_bytes() == original.encode()


def test_reset_forgets_the_spec_state(project: SpecProject) -> None:
    spec = project.spec("feature", "- [ ] 1. One\n")
    assert project.run(".kiro/specs/feature", "--no-tasks-update").ret == 0
    assert (spec / "tasks.md").read_text() == "- [ ] 1. One\n"     # --no-tasks-update
    res = project.run(".kiro/specs/feature", "-rs", "--no-tasks-update")
    assert "already complete (recorded in state)" in res.stdout
    res = project.run(".kiro/specs/feature", "--reset")
    assert res.ret == 0 and "1 passed" in res.stdout
    assert len(project.agent_calls()) == 2


def test_live_view_on_a_terminal(project: SpecProject) -> None:
    import pexpect

    project.spec("feature", """
        - [ ] 1. Slow one
          - fake-agent: slow=1.2
        - [ ] 2. Second
        """)
    cmd = seqharness_command()
    env = {k: v for k, v in project.env.items() if k != "CI"}   # CI turns the live view off
    env["TERM"] = "xterm-256color"
    child = pexpect.spawn(cmd[0], [*cmd[1:], ".kiro/specs/feature", "--backend", fake_backend(), "-v"],
                          cwd=str(project.root), env=env,
                          dimensions=(40, 150), encoding="utf-8", codec_errors="replace", timeout=60)
    child.expect(r"attempt 1 ·")          # the live panel, drawn while task 1 runs
    child.expect(r"Second")               # it lists the other tasks too
    child.expect(r"2 passed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_unknown_blocking_question_becomes_a_halt_with_the_screen(project: SpecProject) -> None:
    project.spec("feature", """
        - [ ] 1. Asks and waits
          - fake-agent: ask
        - [ ] 2. Later
        """)
    res = project.run(".kiro/specs/feature", "--question-idle", "1")
    assert res.ret == 2, res.output
    state = project.state()["specs"]["feature"]
    assert state["halted_task"] == "1"
    assert "Apply the migration? [y/n]" in state["halt_question"]
    assert [c["task"] for c in project.agent_calls()] == ["1"]
