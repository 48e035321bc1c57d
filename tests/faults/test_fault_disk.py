"""Point 7: a disk that fills up, folders that cannot be written, tmux and the agent missing.

A file the run must write (a transcript, the state) that cannot be written
stops the run with one clear line and exit 2 ("interrupted": run again once
it is fixed), at the step that failed: what was recorded before stays, and
the next run picks up as after a crash.  tmux trouble is said once and the
run goes on without it; a missing agent program is exit 4 before any task.
"""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .faultkit import (
    FaultProject,
    Stats,
    drop_file_override,
    marked_processes,
    permissions_enforced,
    tasks_intact,
    wait_until,
)

SPEC = "- [ ] 1. Small task\n- [ ] 2. Prints a lot\n  - fake-agent: flood=8M\n- [ ] 3. Last\n"


def _check_stopped(project: FaultProject, res, original: bytes, stats: Stats, needle: str) -> None:
    stats.hostile_inputs.add(f"disk: {needle}")
    if res.has_traceback():
        stats.tracebacks += 1
    assert not res.has_traceback(), res.output
    assert res.ret == 2, res.output
    assert needle in res.output and "the run stopped" in res.output, res.output
    state = project.spec_state("feature")
    assert state["completed"] == ["1"], state            # recorded before: kept
    assert tasks_intact(original, project.tasks_path("feature").read_bytes()) is None
    assert project.tasks_path("feature").read_text().startswith("- [x] 1.")
    progress = (project.root / ".kiro/specs/SEQUENTIAL_PROGRESS.md").read_text()
    assert "task 1 · PASSED" in progress
    assert wait_until(lambda: not marked_processes(project.mark), 3)  # the flooding agent was ended


def _recover(project: FaultProject, spec: Path, free_space) -> None:
    free_space()
    tasks = spec / "tasks.md"
    tasks.write_bytes(tasks.read_bytes().replace(b"fake-agent: flood=8M", b"fake-agent: done   "))
    res = project.run(".kiro/specs/feature", timeout=60)
    assert res.ret == 0, res.output
    assert [c["task"] for c in project.agent_calls()] == ["1", "2", "2", "3"]  # 1 never again
    assert tasks.read_text().count("[x]") == 3


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 3 MB tmpfs (root only); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_while_the_agent_prints(tiny_disk: Path, stats: Stats) -> None:
    """The transcript fills a real (tiny) disk; the report file is on it too."""
    from .faultkit import kill_marked, new_project

    project = new_project(tiny_disk / "p")
    try:
        spec = project.spec("feature", SPEC)
        original = (spec / "tasks.md").read_bytes()
        report = project.root / "report.xml"
        res = project.run(".kiro/specs/feature", "--junitxml", str(report), timeout=120)
        _check_stopped(project, res, original, stats, "No space left on device")
        assert "cannot write the transcript" in res.output
        assert "cannot write the report" in res.output  # the disk is still full

        def free() -> None:
            for log in (spec / ".seqharness" / "transcripts").glob("task-2-*.log"):
                log.unlink()
        _recover(project, spec, free)
    finally:
        kill_marked(project.mark)


def _fsize_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_file_size_limit_while_the_agent_prints(fproject: FaultProject, stats: Stats) -> None:
    """RLIMIT_FSIZE (works without root): writes past 1 MB fail with EFBIG."""
    spec = fproject.spec("feature", SPEC)
    original = (spec / "tasks.md").read_bytes()
    res = fproject.run(".kiro/specs/feature", preexec_fn=_fsize_limit(1 << 20), timeout=120)
    _check_stopped(fproject, res, original, stats, "File too large")
    # The interrupted attempt was recorded (the state file is small enough).
    record = fproject.spec_state("feature")["tasks"]["2"]
    assert record["status"] == "interrupted" and "File too large" in record["last_reason"]
    assert fproject.spec_state("feature")["running"] is None
    assert fproject.tasks_path("feature").read_bytes() == original.replace(b"[ ] 1.", b"[x] 1.")
    _recover(fproject, spec, lambda: None)


@pytest.fixture
def unprivileged(tmp_path: Path):
    if not permissions_enforced(tmp_path):
        pytest.skip("cannot run the command without the right to ignore file permissions")
    return drop_file_override


def test_read_only_transcripts_folder_stops_before_anything_changes(fproject: FaultProject, stats: Stats,
                                                                    unprivileged) -> None:
    spec = fproject.spec("feature", "- [ ] 1. One\n")
    transcripts = spec / ".seqharness" / "transcripts"
    transcripts.mkdir(parents=True)
    transcripts.chmod(0o555)
    try:
        res = fproject.run(".kiro/specs/feature", preexec_fn=unprivileged)
    finally:
        transcripts.chmod(0o755)
    stats.hostile_inputs.add("disk: read-only transcripts folder")
    assert not res.has_traceback(), res.output
    assert res.ret == 2, res.output
    assert "cannot write the transcript" in res.output and "Permission denied" in res.output
    state = fproject.spec_state("feature")
    assert state["running"] is None and state["completed"] == [] and state["tasks"] == {}
    assert (spec / "tasks.md").read_text() == "- [ ] 1. One\n"
    assert fproject.agent_calls() == []


LOCKING_AGENT = r'''
import os, sys
if sys.argv[1] == "2":  # the second task makes the state's folder read-only
    os.chmod(".kiro/specs", 0o555)
print("<promise>TASK_DONE</promise>", flush=True)
'''


def test_state_that_cannot_be_written_mid_run(fproject: FaultProject, tmp_path: Path, stats: Stats,
                                              unprivileged) -> None:
    """Task 2's agent makes .kiro/specs read-only: its pass cannot be recorded.
    The run stops before ticking it (no [x] without the state's pass); the
    next run sees the unit was running, restores its box and runs it again;
    task 1 is never run twice."""
    spec = fproject.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n- [ ] 3. Three\n")
    agent = tmp_path / "locking_agent.py"
    agent.write_text(LOCKING_AGENT)
    backend = f"cmd:{sys.executable} {agent} {{task_id}}"
    try:
        res = fproject.run(".kiro/specs/feature", backend=backend, preexec_fn=unprivileged)
    finally:
        (fproject.root / ".kiro/specs").chmod(0o755)
    stats.hostile_inputs.add("disk: state unwritable mid-run")
    assert not res.has_traceback(), res.output
    assert res.ret == 2, res.output
    assert "cannot write the state file" in res.output and "the run stopped" in res.output
    state = fproject.spec_state("feature")
    assert state["completed"] == ["1"] and state["running"]["unit"] == "2"
    assert (spec / "tasks.md").read_text() == "- [x] 1. One\n- [-] 2. Two\n- [ ] 3. Three\n"
    res = fproject.run(".kiro/specs/feature", "-v")
    assert res.ret == 0, res.output
    assert "task 2 was interrupted by an earlier run" in res.stdout
    assert "tasks.md::1 SKIPPED" in res.stdout and "tasks.md::2 PASSED" in res.stdout
    assert (spec / "tasks.md").read_text() == "- [x] 1. One\n- [x] 2. Two\n- [x] 3. Three\n"


# ----------------------------------------------------------------- tmux trouble
def _path_without_tmux(tmp_path: Path) -> str:
    bindir = tmp_path / "bin-no-tmux"
    bindir.mkdir(exist_ok=True)
    for tool in ("python3", "tail"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if found and not (bindir / tool).exists():
            (bindir / tool).symlink_to(found)
    return str(bindir)


def _tmux_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("seqharness:") and "tmux" in ln]


def test_tmux_missing_is_said_once(tmux_fproject: FaultProject, tmp_path: Path, stats: Stats) -> None:
    tmux_fproject.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n- [ ] 3. Three\n")
    res = tmux_fproject.run(".kiro/specs/feature", env={"PATH": _path_without_tmux(tmp_path)})
    stats.hostile_inputs.add("env: tmux missing")
    assert res.ret == 0, res.output
    lines = _tmux_lines(res.output)
    assert len(lines) == 1 and "tmux not found; running without tmux" in lines[0], lines


REFUSING_TMUX = """#!/bin/sh
echo "error connecting to /tmp/tmux-0/$2 (Connection refused)" >&2
exit 1
"""


def test_tmux_server_refusing_is_said_once(tmux_fproject: FaultProject, tmp_path: Path, stats: Stats) -> None:
    tmux_fproject.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    bindir = Path(_path_without_tmux(tmp_path))
    shim = bindir / "tmux"
    shim.write_text(REFUSING_TMUX)
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    res = tmux_fproject.run(".kiro/specs/feature", env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    stats.hostile_inputs.add("env: tmux refusing connections")
    assert res.ret == 0, res.output
    lines = _tmux_lines(res.output)
    assert len(lines) == 1 and "tmux unavailable" in lines[0] and "Connection refused" in lines[0], lines


def test_real_tmux_refusing_an_unsafe_socket_folder(tmux_fproject: FaultProject, tmp_path: Path,
                                                   stats: Stats) -> None:
    tmux_fproject.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    sockets = tmp_path / "tmux-sockets"
    (sockets / f"tmux-{os.getuid()}").mkdir(parents=True)
    (sockets / f"tmux-{os.getuid()}").chmod(0o777)  # tmux refuses to use it
    res = tmux_fproject.run(".kiro/specs/feature", env={"TMUX_TMPDIR": str(sockets)})
    stats.hostile_inputs.add("env: tmux socket folder refused")
    assert res.ret == 0, res.output
    lines = _tmux_lines(res.output)
    assert len(lines) == 1 and "running without tmux" in lines[0], lines


def test_tmux_server_dying_mid_run_is_said_once(tmux_fproject: FaultProject, stats: Stats) -> None:
    project = tmux_fproject
    project.spec("feature", "- [ ] 1. One\n  - fake-agent: slow=1\n- [ ] 2. Two\n- [ ] 3. Three\n")

    def kill_server() -> None:
        if wait_until(lambda: any(c["task"] == "1" for c in project.agent_calls()), 60):
            subprocess.run(["tmux", "-L", project.tmux_socket, "kill-server"], capture_output=True, timeout=10)

    killer = threading.Thread(target=kill_server)
    killer.start()
    res = project.run(".kiro/specs/feature")
    killer.join(10)
    stats.hostile_inputs.add("env: tmux server killed mid-run")
    assert res.ret == 0, res.output
    assert res.stdout.count("carrying on without tmux") == 1, res.stdout
    assert [c["task"] for c in project.agent_calls()] == ["1", "2", "3"]


# ----------------------------------------------------------------- the agent program
def test_missing_backend_program_is_exit_4_before_any_task(fproject: FaultProject, tmp_path: Path,
                                                            stats: Stats) -> None:
    spec = fproject.spec("feature", "- [ ] 1. One\n")
    not_executable = tmp_path / "agent.sh"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    for name, backend, needle in [
        ("not-on-path", "cmd:no-such-agent-cli-xyz {prompt_file}", "not found on PATH"),
        ("absolute-missing", "cmd:/nonexistent/agent {prompt_file}", "not found or not executable"),
        ("not-executable", f"cmd:{not_executable} {{prompt_file}}", "not found or not executable"),
        ("a-folder", f"cmd:{tmp_path} {{prompt_file}}", "not found or not executable"),
    ]:
        res = fproject.run(".kiro/specs/feature", backend=backend)
        stats.hostile_inputs.add(f"backend: {name}")
        assert res.ret == 4, (name, res.output)
        assert needle in res.output and not res.has_traceback(), (name, res.output)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, (name, res.output)
    assert fproject.agent_calls() == []
    assert not fproject.state_path.exists() and not (spec / ".seqharness").exists()
    assert (spec / "tasks.md").read_text() == "- [ ] 1. One\n"
