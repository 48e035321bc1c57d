"""State file per spec, the run lock, and the CLI's flag translation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqharness import state as state_mod
from seqharness.cli import check_spec_path, translate_args
from seqharness.lock import LockedError, RunLock
from seqharness.state import StateStore


def test_state_is_per_spec_and_keeps_other_specs(tmp_path: Path) -> None:
    a = StateStore(tmp_path, "alpha")
    b = StateStore(tmp_path, "beta")
    a.state.add_completed(["1", "1.1"])
    a.save()
    b.state.add_completed(["1"])
    b.save()           # b was loaded before a saved: a's entry must survive
    doc = json.loads((tmp_path / "SEQUENTIAL_STATE.json").read_text())
    assert doc["specs"]["alpha"]["completed"] == ["1", "1.1"]
    assert doc["specs"]["beta"]["completed"] == ["1"]
    for key in ("completed", "halted", "halted_task", "halted_at", "started_at", "completed_at", "assignments"):
        assert key in doc["specs"]["alpha"]


def test_corrupt_state_is_moved_aside_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "SEQUENTIAL_STATE.json").write_text("{not json")
    store = StateStore(tmp_path, "alpha")
    assert store.state.completed == []
    assert "not valid JSON" in store.notes[0]
    assert (tmp_path / "SEQUENTIAL_STATE.json.corrupt").read_text() == "{not json"


def test_original_flat_state_is_kept_as_legacy(tmp_path: Path) -> None:
    (tmp_path / "SEQUENTIAL_STATE.json").write_text(json.dumps({"completed": ["1"], "halted": False}))
    store = StateStore(tmp_path, "alpha")
    assert store.state.completed == []
    store.save()
    doc = json.loads((tmp_path / "SEQUENTIAL_STATE.json").read_text())
    assert doc["legacy"]["completed"] == ["1"]


_DOC = {"version": 2, "specs": {"f": {"completed": ["1", "2.1"], "running": None, "paused_until": 1.5,
                                     "tasks": {"1": {"title": "Ünïcode ✓ \"quoted\"\n", "attempts": 3}}}}}


def test_state_encoding_is_compact_json_that_reads_back_equal() -> None:
    blob = state_mod.encode(_DOC)
    assert blob.endswith(b"\n") and blob.count(b"\n") == 1 and b": " not in blob
    assert json.loads(blob) == _DOC
    assert "✓".encode() in blob  # UTF-8, not \u escapes


def test_state_encoding_falls_back_to_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # A value orjson refuses (beyond 64 bits, as in a hand-edited file) ...
    huge = dict(_DOC, big=10**30)
    assert json.loads(state_mod.encode(huge)) == huge
    # ... and no orjson at all.
    monkeypatch.setattr(state_mod, "_orjson", None)
    assert json.loads(state_mod.encode(_DOC)) == _DOC


def test_lock_refuses_a_second_holder_and_is_freed_by_death(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; sys.path.insert(0, sys.argv[1]);"
                               "from seqharness.lock import RunLock; l = RunLock(sys.argv[2]); l.acquire();"
                               "print('locked', flush=True); time.sleep(60)",
                               str(Path(__file__).resolve().parents[2]), str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"by pid {holder.pid}"):
            RunLock(path).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(path)
    lock.acquire()   # the dead holder's lock is gone: never stale
    lock.release()


def test_translate_original_flags() -> None:
    assert translate_args(["--spec", "a", "--timeout", "5", "--retries=2", "-k", "x"]) == [
        "a", "--task-timeout", "5", "--task-retries=2", "-k", "x"]
    assert translate_args(["--spec=b"]) == ["b"]


def test_check_spec_path(tmp_path: Path) -> None:
    assert "no such spec folder" in check_spec_path(str(tmp_path / "nope"))
    assert "no tasks.md" in check_spec_path(str(tmp_path))
    spec = tmp_path / "s"
    spec.mkdir()
    (spec / "tasks.md").write_text("- [ ] 1. x\n")
    assert check_spec_path(str(spec)) is None
    assert check_spec_path(str(spec / "tasks.md")) is None
