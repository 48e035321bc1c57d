"""End-to-end with real tmux on a private socket: the human's live view."""

from __future__ import annotations

import time
from pathlib import Path

from repokit import validate_junit

from seqharness.testing import SpecProject


def _windows(project: SpecProject, session: str) -> list[str]:
    out = project.tmux("list-windows", "-t", f"={session}", "-F", "#{window_name}")
    return [line for line in out.splitlines() if line]


def test_each_attempt_gets_a_task_window_with_live_output(tmux_project: SpecProject, tmp_path: Path) -> None:
    tmux_project.spec("demo", """
        - [ ] 1. Set up
        - [ ] 2. Build it
          - [ ] 2.1 Part one
        - [ ] 3. Quick failure
          - fake-agent: fail
        """)
    report = tmp_path / "r.xml"
    res = tmux_project.run(".kiro/specs/demo", "--junitxml", str(report))
    assert res.ret == 1, res.output
    assert "tmux -L" in res.stdout and "attach -t sequential-demo" in res.stdout
    names = _windows(tmux_project, "sequential-demo")
    assert {"task-1", "task-2", "task-3"} <= set(names)
    # The window shows the agent's output and the outcome line, after the run.
    out = tmux_project.tmux("list-windows", "-t", "=sequential-demo", "-F", "#{window_id} #{window_name}")
    ids = {name: wid for wid, name in (line.split(" ", 1) for line in out.splitlines())}
    deadline = time.monotonic() + 5
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux_project.tmux("capture-pane", "-p", "-J", "-t", ids["task-3"], "-S", "-200")
        if "FAILED" in screen:
            break
        time.sleep(0.1)
    assert "tests failed" in screen
    assert "seqharness: task 3 attempt 1: FAILED" in screen
    validate_junit(report)


def test_missing_tmux_is_said_once_and_run_goes_on(tmux_project: SpecProject, tmp_path: Path) -> None:
    tmux_project.spec("demo", "- [ ] 1. One\n- [ ] 2. Two\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    import os
    import sys

    # A PATH with python but without tmux.
    (bindir / "python3").symlink_to(sys.executable)
    res = tmux_project.run(".kiro/specs/demo", env={"PATH": str(bindir)})
    assert res.ret == 0, res.output
    assert res.stdout.count("tmux not found") == 1
    assert os.environ.get("PATH")  # the test did not clobber our own PATH
