"""Fixtures of the fault-injection suite (issue 4).

Each test gets a fresh repository in ``tmp_path`` whose processes carry a
unique ``FAULT_MARK``; at teardown anything still carrying it is killed (a
failing test must not leak agents), and a private tmux server, if one was
used, is killed.  The figures the issue asks for (kill points tried, tasks
re-run, corrupt files, orphans, hostile inputs, tracebacks) are collected in
:data:`STATS` and printed at the end of the run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .faultkit import Stats, kill_marked, kill_tmux, new_project

STATS = Stats()


@pytest.fixture
def stats() -> Stats:
    return STATS


@pytest.fixture
def fproject(tmp_path: Path):
    project = new_project(tmp_path)
    yield project
    kill_marked(project.mark)


@pytest.fixture
def tmux_fproject(tmp_path: Path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    project = new_project(tmp_path, tmux=True)
    yield project
    kill_tmux(project)  # first, so the server removes its socket file
    kill_marked(project.mark)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    s = STATS
    if not (s.kill_points or s.hostile_inputs or s.signals):
        return
    terminalreporter.section("fault injection", sep="-")
    terminalreporter.write_line(
        f"kill -9 points tried: {len(s.kill_points)}; tasks re-run after a recorded pass: {s.reruns}; "
        f"corrupt files: {s.corrupt_files}; orphan agent processes: {s.orphans} "
        f"(leftovers ended by the next run: {s.orphans_reaped})")
    terminalreporter.write_line(
        f"SIGINT/SIGTERM runs: {s.signals}; hostile inputs tried: {len(s.hostile_inputs)}; "
        f"tracebacks seen: {s.tracebacks}")
