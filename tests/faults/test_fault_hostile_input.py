"""Point 5: bad and hostile input.

Every case ends either in exit 4 with one line naming the file (and the line,
where there is one), or in a documented, sensible reading - and never in a
traceback.  Readings chosen (and documented in the README / the modules):

* invalid UTF-8, a BOM, CRLF / lone CR / mixed line endings: read as text,
  written back byte for byte (only the checkbox byte changes);
* duplicate ids: both tasks run, the second is named ``1[2]``;
* a subtask whose parent is missing, a task depending on itself: it runs on
  its own / the self-dependency is ignored;
* a state file that is corrupt, of the original flat layout, or has values of
  the wrong type: set aside or reset with a note, and the run goes on;
* tasks.md edited between runs: what changed is said, passes recorded for a
  task that an id no longer names do not count, passes of renumbered tasks
  are kept.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .faultkit import (
    FaultProject,
    Run,
    Stats,
    drop_file_override,
    permissions_enforced,
    tasks_intact,
)


def _one_line_error(res: Run, *needles: str) -> None:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    for needle in needles:
        assert needle in lines[0], res.output


def _account(stats: Stats, name: str, res: Run) -> None:
    stats.hostile_inputs.add(name)
    if res.has_traceback():
        stats.tracebacks += 1
    assert not res.has_traceback(), res.output


BAD_FILES = {
    # name: (tasks.md bytes, expected error text)
    "empty": (b"", "tasks.md:1: no tasks found"),
    "only-blank-lines": (b"\n\n   \n\t\n", "tasks.md:1: no tasks found"),
    "no-tasks": (b"# Plan\n\nJust prose, a [link](x) and - a list item.\n", "tasks.md:1: no tasks found"),
    "checkboxes-only-in-code": (b"```\n- [ ] 1. In a fence\n```\n", "tasks.md:1: no tasks found"),
    "binary-nul": (b"- [ ] 1. One\n- [ ] 2. T\x00wo\n", "tasks.md:2: binary file"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
    "cycle": (b"- [ ] 1. A\n  - _Depends: 3_\n- [ ] 2. B\n  - _Depends: 1_\n- [ ] 3. C\n  - _Depends: 2_\n",
              "tasks.md:1: dependency cycle: 1 -> 3 -> 2 -> 1"),
    "two-cycle-later": (b"- [ ] 1. A\n- [ ] 2. B\n  - _Depends: 3_\n- [ ] 3. C\n  - _Depends: 2_\n",
                        "tasks.md:2: dependency cycle"),
    "unknown-dependency": (b"- [ ] 1. A\n- [ ] 2. B\n  - _Depends: 7_\n", "tasks.md:2: task 2 depends on unknown task '7'"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_malformed_tasks_file_is_one_line_exit_4(fproject: FaultProject, stats: Stats, name: str) -> None:
    data, needle = BAD_FILES[name]
    spec = fproject.spec("feature", data)
    res = fproject.run(".kiro/specs/feature")
    _account(stats, name, res)
    assert res.ret == 4, res.output
    _one_line_error(res, needle)
    assert (spec / "tasks.md").read_bytes() == data
    assert fproject.agent_calls() == [] and not fproject.state_path.exists()


def _long(n: int) -> bytes:
    return ("ü" + "x" * (n - 1)).encode()


SENSIBLE_FILES = {
    # name: (tasks.md bytes, expected agent calls)
    "invalid-utf8": (b"- [ ] 1. caf\xe9 \xff\xfe\xc3\n- [ ] 2. Two \xed\xa0\x80\n", ["1", "2"]),
    "bom": (b"\xef\xbb\xbf- [ ] 1. One\n- [ ] 2. Two\n", ["1", "2"]),
    "crlf": (b"# Plan\r\n\r\n- [ ] 1. One\r\n  - detail\r\n- [ ] 2. Two\r\n", ["1", "2"]),
    "lone-cr": (b"- [ ] 1. One\r- [ ] 2. Two\r", ["1", "2"]),
    "mixed-newlines": (b"- [ ] 1. One\r\n- [ ] 2. Two\n- [ ] 3. Three\r- [ ] 4. Four", ["1", "2", "3", "4"]),
    "no-final-newline": (b"- [ ] 1. One", ["1"]),
    "duplicate-ids": (b"- [ ] 1. One\n- [ ] 1. One again\n- [ ] 2. Two\n", ["1", "1[2]", "2"]),
    "subtask-without-parent": (b"- [ ] 3.1 Orphan subtask\n      - [ ] 4.2 Indented orphan\n- [ ] 5. Task\n",
                               ["3.1", "5"]),
    "self-dependency": (b"- [ ] 1. A\n  - _Depends: 1_\n", ["1"]),
    "title-20000-chars": (b"- [ ] 1. " + _long(20000) + b"\n- [ ] 2. Short\n", ["1", "2"]),
    "idless-title-20000-chars": (b"- [ ] " + _long(20000) + b"\n", ["\u00fc" + "x" * 39]),
    "line-1mb-no-newline-prose": (b"- [ ] 1. One\n" + b"y" * 1_000_000, ["1"]),
    "deep-nesting-300": (b"".join(b"  " * i + f"- [ ] T{i} Level {i}\n".encode() for i in range(300)), ["T0"]),
    "unicode-controls-in-title": ("- [ ] 1. RTL \u202e gnirts zero\u200bwidth \x01\x1b[31m red\n".encode(), ["1"]),
    "unclosed-front-matter": (b"---\ntitle: x\n- [ ] 1. One\n", ["1"]),
    "unclosed-fence-after-task": (b"- [ ] 1. One\n```\n- [ ] 2. Hidden\n", ["1"]),
    "emoji-cell": ("- [\u2705] 1. Done by emoji\n- [ ] 2. Two\n".encode(), ["1", "2"]),
}


@pytest.mark.parametrize("name", sorted(SENSIBLE_FILES))
def test_odd_tasks_file_has_a_sensible_reading(fproject: FaultProject, stats: Stats, name: str,
                                               tmp_path: Path) -> None:
    data, calls = SENSIBLE_FILES[name]
    spec = fproject.spec("feature", data)
    report = tmp_path / "report.xml"
    res = fproject.run(".kiro/specs/feature", "--junitxml", str(report))
    _account(stats, name, res)
    assert res.ret == 0, res.output
    assert [c["task"] for c in fproject.agent_calls()] == calls
    after = (spec / "tasks.md").read_bytes()
    assert tasks_intact(data, after) is None, tasks_intact(data, after)
    from .faultkit import validate_junit

    validate_junit(report)


def test_ten_thousand_tasks(fproject: FaultProject, stats: Stats) -> None:
    data = "".join(f"- [ ] {i}. Task number {i}\n  - _Requirements: {i % 50}.1_\n"
                   for i in range(1, 10001)).encode()
    spec = fproject.spec("feature", data)
    res = fproject.run(".kiro/specs/feature", "--co", "-q", backend=None, timeout=120)
    _account(stats, "10000-tasks", res)
    assert res.ret == 0, res.output[-2000:]
    assert "10000 tests collected" in res.stdout
    assert res.duration < 60
    res = fproject.run(".kiro/specs/feature", "-k", "9999", "-q", timeout=120)
    assert res.ret == 0, res.output[-2000:]
    assert [c["task"] for c in fproject.agent_calls()] == ["9999"]
    after = (spec / "tasks.md").read_bytes()
    assert after == data.replace(b"- [ ] 9999. ", b"- [x] 9999. ")


# ----------------------------------------------------------------- spec paths
def test_spec_path_missing_or_a_file(fproject: FaultProject, stats: Stats) -> None:
    spec = fproject.spec("feature", "- [ ] 1. One\n")
    (fproject.root / "notes.txt").write_text("not a spec\n")
    os.mkfifo(spec / "pipe")
    for name, path, needle in [
        ("spec-path-missing", ".kiro/specs/nope", ".kiro/specs/nope: no such spec folder"),
        ("spec-path-md-file", ".kiro/specs/feature/requirements.md", "not a tasks.md file"),
        ("spec-path-other-file", "notes.txt", "notes.txt: not a spec folder or a tasks.md file"),
        ("spec-path-fifo", ".kiro/specs/feature/pipe", "not a spec folder or a tasks.md file"),
        ("spec-path-empty-folder", ".kiro", "no tasks.md in this folder"),
    ]:
        res = fproject.run(path, timeout=30)
        _account(stats, name, res)
        assert res.ret == 4, (name, res.output)
        _one_line_error(res, needle)
    assert fproject.agent_calls() == []


def test_tasks_md_that_is_not_a_regular_file(fproject: FaultProject, stats: Stats) -> None:
    folder = fproject.root / ".kiro" / "specs" / "feature"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "tasks.md")  # reading it would block forever
    res = fproject.run(".kiro/specs/feature", timeout=30)
    _account(stats, "tasks-md-fifo", res)
    assert res.ret == 4, res.output
    _one_line_error(res, "tasks.md: not a regular file")


def test_symlinked_tasks_md_is_written_through(fproject: FaultProject, stats: Stats, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere" / "tasks.md"
    real.parent.mkdir()
    real.write_text("- [ ] 1. One\n")
    folder = fproject.root / ".kiro" / "specs" / "feature"
    folder.mkdir(parents=True)
    (folder / "tasks.md").symlink_to(real)
    res = fproject.run(".kiro/specs/feature")
    _account(stats, "tasks-md-symlink", res)
    assert res.ret == 0, res.output
    assert (folder / "tasks.md").is_symlink()
    assert real.read_text() == "- [x] 1. One\n"


@pytest.fixture
def unprivileged(tmp_path: Path):
    if not permissions_enforced(tmp_path):
        pytest.skip("cannot run the command without the right to ignore file permissions")
    return drop_file_override


def test_unreadable_spec(fproject: FaultProject, stats: Stats, unprivileged) -> None:
    spec = fproject.spec("feature", "- [ ] 1. One\n")
    try:
        (spec / "tasks.md").chmod(0)
        res = fproject.run(".kiro/specs/feature", preexec_fn=unprivileged)
        _account(stats, "tasks-md-unreadable", res)
        assert res.ret == 4, res.output
        _one_line_error(res, "tasks.md: permission denied")
        (spec / "tasks.md").chmod(0o644)
        spec.chmod(0)
        res = fproject.run(".kiro/specs/feature", preexec_fn=unprivileged)
        _account(stats, "spec-folder-unreadable", res)
        assert res.ret == 4, res.output
        _one_line_error(res, ".kiro/specs/feature: permission denied")
    finally:
        spec.chmod(0o755)
        (spec / "tasks.md").chmod(0o644)
    assert fproject.agent_calls() == []


def test_unwritable_specs_folder(fproject: FaultProject, stats: Stats, unprivileged) -> None:
    spec = fproject.spec("feature", "- [ ] 1. One\n")
    specs = spec.parent
    try:
        specs.chmod(0o555)  # the state file cannot be created
        res = fproject.run(".kiro/specs/feature", preexec_fn=unprivileged)
        _account(stats, "specs-folder-unwritable", res)
        assert res.ret == 4, res.output
        _one_line_error(res, "SEQUENTIAL_STATE.json", "ermission denied")
        specs.chmod(0o755)
        shutil.rmtree(spec / ".seqharness")  # made by the first run before it stopped
        spec.chmod(0o555)  # the run lock cannot be created
        res = fproject.run(".kiro/specs/feature", preexec_fn=unprivileged)
        _account(stats, "spec-folder-unwritable", res)
        assert res.ret == 4, res.output
        _one_line_error(res, "cannot create the lock", "ermission denied")
        assert fproject.agent_calls() == []
        # With its .seqharness folder in place, only tasks.md cannot be rewritten:
        # said once, and the state still records the pass.
        spec.chmod(0o755)
        (spec / ".seqharness").mkdir()
        spec.chmod(0o555)
        res = fproject.run(".kiro/specs/feature", preexec_fn=unprivileged)
        _account(stats, "tasks-md-folder-unwritable", res)
        assert res.ret == 0, res.output
        assert res.stdout.count("not updating checkboxes") == 1
        assert fproject.spec_state("feature")["completed"] == ["1"]
        assert (spec / "tasks.md").read_text() == "- [ ] 1. One\n"
    finally:
        specs.chmod(0o755)
        spec.chmod(0o755)


# ----------------------------------------------------------------- the state file
BAD_STATES = {
    "corrupt-json": (b'{"specs": {"feature": {"completed": ["1"', "not valid JSON"),
    "not-utf8": (b"\xff\xfe{\x00}", "not valid JSON"),
    "deeply-nested": (b"[" * 100000, "not valid JSON"),
    "array": (b"[1, 2, 3]", "not a JSON object"),
    "null": (b"null", "not a JSON object"),
    "older-flat-layout": (b'{"completed": ["1", "2"], "halted": false, "started_at": "2024-01-01"}', "original flat layout"),
    "specs-is-a-list": (b'{"version": 2, "specs": []}', ""),
    "entry-is-a-list": (b'{"specs": {"feature": ["1"]}}', ""),
    "completed-of-lists": (b'{"specs": {"feature": {"completed": [[1], {"a": 1}]}}}', "unusable values reset (completed)"),
    "completed-string": (b'{"specs": {"feature": {"completed": "1"}}}', "unusable values reset (completed)"),
    "tasks-of-lists": (b'{"specs": {"feature": {"tasks": {"1": [], "2": "x"}}}}', "unusable values reset (tasks)"),
    "running-string": (b'{"specs": {"feature": {"running": "yes"}}}', "unusable values reset (running)"),
    "running-odd-fields": (b'{"specs": {"feature": {"running": {"unit": ["1"], "cell": 5, "pid": "x", "pgid": [], "token": 7}}}}', ""),
    "iterations-string": (b'{"specs": {"feature": {"iterations": "many"}}}', "unusable values reset (iterations)"),
    "attempts-string": (b'{"specs": {"feature": {"tasks": {"1": {"attempts": "x"}}}}}', ""),
    "paused-until-infinite": (b'{"specs": {"feature": {"paused_until": 1e400}}}', "unusable values reset (paused_until)"),
    "paused-until-string": (b'{"specs": {"feature": {"paused_until": "tomorrow"}}}', "unusable values reset (paused_until)"),
    "paused-until-year-5000": (b'{"specs": {"feature": {"paused_until": 95617584000}}}', "ignoring a recorded usage-limit pause"),
    "halted-odd": (b'{"specs": {"feature": {"halted": "yes", "halted_task": [1]}}}', "unusable values reset"),
    "plan-odd": ((b'{"specs": {"feature": {"plan": {"granularity": "parent", "units": [1]}, "completed": ["1"], '
                  b'"tasks": {"1": {"title_sha": 5, "keys": "1"}}}}}'), ""),
}


@pytest.mark.parametrize("name", sorted(BAD_STATES))
def test_bad_state_file_is_set_aside_or_repaired(fproject: FaultProject, stats: Stats, name: str) -> None:
    raw, note = BAD_STATES[name]
    fproject.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    fproject.state_path.write_bytes(raw)
    res = fproject.run(".kiro/specs/feature", timeout=60)
    _account(stats, f"state-{name}", res)
    assert res.ret == 0, res.output
    assert note in res.stdout
    state = fproject.spec_state("feature")
    assert state["running"] is None and set(state["completed"]) >= {"2"}
    if name == "corrupt-json":
        assert (fproject.root / ".kiro/specs/SEQUENTIAL_STATE.json.corrupt").read_bytes() == raw
    if name == "older-flat-layout":
        assert fproject.state()["legacy"]["completed"] == ["1", "2"]


def test_state_file_that_is_a_folder(fproject: FaultProject, stats: Stats) -> None:
    fproject.spec("feature", "- [ ] 1. One\n")
    fproject.state_path.mkdir()
    res = fproject.run(".kiro/specs/feature")
    _account(stats, "state-is-a-folder", res)
    assert res.ret == 4, res.output
    _one_line_error(res, "SEQUENTIAL_STATE.json: cannot read state file")


# ----------------------------------------------------------------- edits between runs
def test_tasks_renumbered_between_runs(fproject: FaultProject, stats: Stats) -> None:
    """Without checkbox updates the state is all there is: a new task that took
    a passed task's id must run, and the passed task under its new id must not."""
    spec = fproject.spec("feature", "- [ ] 1. Alpha\n- [ ] 2. Beta\n- [ ] 3. Gamma\n")
    assert fproject.run(".kiro/specs/feature", "--no-tasks-update").ret == 0
    (spec / "tasks.md").write_text("- [ ] 1. Zeta, inserted first\n- [ ] 2. Alpha\n- [ ] 3. Beta\n"
                                   "- [ ] 4. Gamma\n- [ ] 5. Omega, added last\n")
    res = fproject.run(".kiro/specs/feature", "--no-tasks-update", "-rs")
    _account(stats, "tasks-renumbered", res)
    assert res.ret == 0, res.output
    assert "changed since the last run" in res.stdout
    assert "new: 4, 5" in res.stdout
    assert "task 1 is a different task now" in res.stdout
    assert "task 1 is now task 2; its pass is kept" in res.stdout
    assert "task 3 is now task 4; its pass is kept" in res.stdout
    assert [c["task"] for c in fproject.agent_calls()] == ["1", "2", "3", "1", "5"]
    assert "3 skipped" in res.stdout


def test_tasks_added_and_removed_between_runs(fproject: FaultProject, stats: Stats) -> None:
    spec = fproject.spec("feature", "- [ ] 1. Alpha\n- [ ] 2. Beta\n- [ ] 3. Gamma\n")
    assert fproject.run(".kiro/specs/feature", "-k", "1 or 3").ret == 0
    # The user deletes task 3 (passed), keeps 1 (passed, ticked), renames 2 (never ran), adds 4.
    (spec / "tasks.md").write_text("- [x] 1. Alpha\n- [ ] 2. Beta, reworded\n- [ ] 4. Delta\n")
    res = fproject.run(".kiro/specs/feature", "-rs")
    _account(stats, "tasks-added-removed", res)
    assert res.ret == 0, res.output
    line = next(ln for ln in res.stdout.splitlines() if "changed since the last run" in ln)
    assert "new: 4" in line and "removed: 3" in line and "different text: 2" in line
    assert [c["task"] for c in fproject.agent_calls()] == ["1", "3", "2", "4"]
    assert (spec / "tasks.md").read_text() == "- [x] 1. Alpha\n- [x] 2. Beta, reworded\n- [x] 4. Delta\n"


def test_ticked_renumbered_task_and_new_task_at_its_old_id(fproject: FaultProject, stats: Stats) -> None:
    """With checkbox updates on, the [x] travels with its line; the new task that
    took id 1 is not mistaken for the one that passed."""
    spec = fproject.spec("feature", "- [ ] 1. Alpha\n")
    assert fproject.run(".kiro/specs/feature").ret == 0
    (spec / "tasks.md").write_text("- [ ] 1. New first task\n- [x] 2. Alpha\n")
    res = fproject.run(".kiro/specs/feature", "-rs")
    _account(stats, "tasks-renumbered-ticked", res)
    assert res.ret == 0, res.output
    assert [c["task"] for c in fproject.agent_calls()] == ["1", "1"]
    assert (spec / "tasks.md").read_text() == "- [x] 1. New first task\n- [x] 2. Alpha\n"
    assert fproject.spec_state("feature")["completed"] == ["2", "1"]
