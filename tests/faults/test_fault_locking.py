"""Point 4: one run per spec, stale locks, and two specs running at the same time."""

from __future__ import annotations

import json
import signal
import threading
import time

from .faultkit import FaultProject, wait_until

TWO = "- [ ] 1. Slow one\n  - fake-agent: slow=2.5\n- [ ] 2. Two\n"


def _wait_running(project: FaultProject, unit: str = "1", timeout: float = 30) -> None:
    assert wait_until(lambda: any(c["task"] == unit for c in project.agent_calls()), timeout)


def test_second_run_on_the_same_spec_is_refused_with_exit_4(fproject: FaultProject) -> None:
    fproject.spec("feature", TWO)
    first = fproject.start(".kiro/specs/feature")
    try:
        _wait_running(fproject)
        state_before = fproject.state_path.read_bytes()
        second = fproject.run(".kiro/specs/feature", timeout=30)
        assert second.ret == 4, second.output
        assert f"spec is already being run by pid {first.pid}" in second.output
        assert "--wait-lock" in second.output
        assert "Traceback" not in second.output
        assert [c["task"] for c in fproject.agent_calls()] == ["1"]
        assert fproject.state_path.read_bytes() == state_before or first.poll() is None
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert [c["task"] for c in fproject.agent_calls()] == ["1", "2"]


def test_wait_lock_waits_and_then_runs_only_what_is_left(fproject: FaultProject) -> None:
    """The waiting run read state and tasks.md before the lock was free; it must
    see what the first run recorded meanwhile and re-run nothing."""
    spec = fproject.spec("feature", TWO)
    first = fproject.start(".kiro/specs/feature")
    try:
        _wait_running(fproject)
        second = fproject.run(".kiro/specs/feature", "--wait-lock", "60", "-rs", timeout=90)
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert second.ret == 0, second.output
    assert "2 skipped" in second.stdout and "already complete" in second.stdout
    assert "interrupted by an earlier run" not in second.stdout
    assert [c["task"] for c in fproject.agent_calls()] == ["1", "2"]
    assert (spec / "tasks.md").read_text() == TWO.replace("[ ]", "[x]")


def test_wait_lock_gives_up_after_its_time(fproject: FaultProject) -> None:
    fproject.spec("feature", "- [ ] 1. Long\n  - fake-agent: slow=8\n")
    first = fproject.start(".kiro/specs/feature")
    try:
        _wait_running(fproject)
        second = fproject.run(".kiro/specs/feature", "--wait-lock", "1", timeout=30)
        assert second.ret == 4 and "already being run" in second.output
        assert 1 <= second.duration < 6
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)


def test_lock_left_by_a_killed_run_is_recovered(fproject: FaultProject) -> None:
    fproject.spec("feature", TWO)
    first = fproject.start(".kiro/specs/feature")
    _wait_running(fproject)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    lock = fproject.root / ".kiro/specs/feature/.seqharness/run.lock"
    assert lock.read_text().strip() == str(first.pid)  # the file stays; the flock died with it
    res = fproject.run(".kiro/specs/feature", timeout=60)
    assert res.ret == 0, res.output
    assert "already being run" not in res.output
    assert "task 1 was interrupted by an earlier run" in res.stdout


def test_two_specs_run_at_the_same_time_without_touching_each_other(fproject: FaultProject) -> None:
    """Both runs write the one shared state file.  alpha's writes are slowed
    down between reading the file and renaming the new one over it, and beta
    pauses after recording each outcome (SEQHARNESS_FAULT ... sleep; different
    rhythms, so the runs do not fall into lockstep): without the state file's
    lock, alpha would put back an old copy of beta's entry, and that copy would
    stay long enough for a watcher, reading the file all along, to see beta's
    ``completed`` list shrink."""
    tasks = "".join(f"- [ ] {i}. Task {i}\n" for i in range(1, 9))
    fproject.spec("alpha", tasks)
    fproject.spec("beta", tasks)
    slow_writer = {"SEQHARNESS_FAULT": "tmp-written@*=sleep:0.15"}
    pausing = {"SEQHARNESS_FAULT": "outcome-recorded@*=sleep:0.3"}
    seen: dict[str, list[str]] = {"alpha": [], "beta": []}
    shrunk: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                doc = json.loads(fproject.state_path.read_text())
            except (OSError, ValueError):
                time.sleep(0.001)
                continue
            for name, before in list(seen.items()):
                now = doc.get("specs", {}).get(name, {}).get("completed", [])
                if len(now) < len(before):
                    shrunk.append(f"{name}: {before} -> {now}")
                seen[name] = now
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        a = fproject.start(".kiro/specs/alpha", env=slow_writer)
        b = fproject.start(".kiro/specs/beta", env=pausing)
        out_a, err_a = a.communicate(timeout=120)
        out_b, err_b = b.communicate(timeout=120)
    finally:
        stop.set()
        watcher.join(5)
    assert a.returncode == 0, out_a + err_a
    assert b.returncode == 0, out_b + err_b
    assert not shrunk, shrunk
    state = fproject.state()["specs"]
    assert state["alpha"]["completed"] == [str(i) for i in range(1, 9)]
    assert state["beta"]["completed"] == [str(i) for i in range(1, 9)]
    for name in ("alpha", "beta"):
        assert fproject.tasks_path(name).read_text() == tasks.replace("[ ]", "[x]")
    calls = [c["task"] for c in fproject.agent_calls()]
    assert sorted(calls) == sorted([str(i) for i in range(1, 9)] * 2)
    progress = (fproject.root / ".kiro/specs/SEQUENTIAL_PROGRESS.md").read_text()
    assert progress.count("· alpha · task") == 8 and progress.count("· beta · task") == 8
