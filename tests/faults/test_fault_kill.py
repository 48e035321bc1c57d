"""Point 1: ``kill -9`` of seqharness anywhere in a multi-task run, and crash-safe files.

A run over a four-unit spec (one unit with subtasks, one whose agent outlives
a killed harness, ``--delay``, ``--junitxml``, real tmux in half the trials)
is killed with SIGKILL

* at named points inside seqharness (``SEQHARNESS_FAULT=<point>@<n>``: the
  n-th time the run reaches it; see ``seqharness/faults.py``), chosen across
  the whole timeline: parsing, lock, repair, every step of an attempt's write
  order, the temp file and the rename of atomic writes, the delay, just
  before JUnit; and
* from outside at random times, uniform over a clean run's duration
  (``FAULT_SEED`` reproduces a sequence).

After each kill a fresh run must find a valid state file and an intact
tasks.md (parseable, byte-identical apart from checkbox characters), must not
re-run a unit whose pass the state had recorded (counted in the fake agent's
log), must finish the rest, and no agent process of the killed run may be
left alive afterwards.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from repokit import fake_backend  # fixtures/fake_agent.py as a --backend

from .faultkit import (
    FaultProject,
    Stats,
    kill_marked,
    kill_tmux,
    marked_processes,
    new_project,
    state_problem,
    tasks_intact,
    temp_files,
    validate_junit,
    wait_until,
)

SPEC = """
    # Implementation Plan

    - [ ] 1. Set up the project
      - Create the folders
      - _Requirements: 1.1_
    - [ ] 2. Build the form
      - [ ] 2.1 Create the component
      - [ ] 2.2 Validate the input
    - [ ] 3. Long tool call (its agent outlives a killed harness)
      - fake-agent: survivor=0.4
    - [ ] 4. Wire it together
    """
UNITS = ["1", "2", "3", "4"]
RUN_ARGS = ("--delay", "0.2", "--max-iterations", "20")

# Named kill points (point@n), in timeline order.  Unit 3's agent is spawned
# by agent-started@3: killing there leaves an orphan that must be ended.
NAMED_POINTS = [
    "collect@1", "lock@1", "state-saved@2", "reconcile@1",
    "running-recorded@1", "marked@1", "agent-started@1", "progress-appended@1",
    "outcome-recorded@1", "ticked@1", "delay@1",
    "running-recorded@2", "outcome-recorded@2", "ticked@2", "delay@2",
    "agent-started@3", "progress-appended@3", "outcome-recorded@3", "delay@3",
    "marked@4", "outcome-recorded@4", "sessionfinish@1", "junit-writing@1",
    "tmp-written@2", "tmp-written@9", "tmp-written@20", "renamed@7", "renamed@18",
]
RANDOM_KILLS = int(os.environ.get("FAULT_RANDOM_KILLS") or 8)


def _expected_done(original: bytes) -> bytes:
    from seqharness.taskscan import parse

    data = bytearray(original)
    for task in parse(original).tasks:
        data[task.cell_start] = ord("x")
    return bytes(data)


def _trial(base: Path, label: str, *, fault: str | None, kill_after: float | None,
           tmux: bool, kill_when_running: str | None = None) -> dict:
    """One kill and one recovery; returns the findings (never raises on a finding)."""
    project = new_project(base / re.sub(r"[^A-Za-z0-9]+", "_", label), tmux=tmux)
    findings: dict = {"label": label, "problems": []}
    problems = findings["problems"]
    try:
        spec = project.spec("feature", SPEC)
        original = (spec / "tasks.md").read_bytes()
        report = project.root / "report.xml"
        args = (".kiro/specs/feature", *RUN_ARGS, "--junitxml", str(report))
        env = {"SEQHARNESS_FAULT": fault} if fault else None
        proc = project.start(*args, env=env)
        if kill_when_running is not None:  # once that unit's agent has started (and set up)
            wait_until(lambda: any(c["task"] == kill_when_running for c in project.agent_calls()), 60)
            time.sleep(0.15)
            proc.send_signal(signal.SIGKILL)
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)  # kill -9 PID
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        findings["killed"] = proc.returncode == -signal.SIGKILL
        if not findings["killed"]:
            if fault:  # a named point must be reached
                problems.append(f"fault {fault} did not kill the run (exit {proc.returncode}): {out[-500:]}{err[-500:]}")
            return findings
        # -- what the kill left
        if fault and fault.startswith("junit-writing") and (not report.exists() or report.stat().st_size):
            problems.append("the kill inside the JUnit writer should leave a truncated report")
        if (why := state_problem(project, "feature")) is not None:
            problems.append(f"after the kill: {why}")
            findings["corrupt"] = findings.get("corrupt", 0) + 1
        if (why := tasks_intact(original, (spec / "tasks.md").read_bytes())) is not None:
            problems.append(f"after the kill: tasks.md {why}")
            findings["corrupt"] = findings.get("corrupt", 0) + 1
        recorded = set()
        if project.state_path.exists():
            entry = project.state().get("specs", {}).get("feature", {})
            recorded = {k for k in entry.get("completed", []) if k in UNITS}
        calls_before = len(project.agent_calls())
        # An ordinary agent dies of the SIGHUP its lost terminal sends; what is
        # still alive after a moment is an orphan the next run must end.
        wait_until(lambda: not marked_processes(project.mark), 1.0)
        leftovers = marked_processes(project.mark)
        findings["leftovers"] = len(leftovers)
        # -- a fresh run
        res = project.run(*args, timeout=90)
        if res.ret != 0:
            problems.append(f"recovery run exited {res.ret}: {res.output[-1500:]}")
        if res.has_traceback():
            findings["traceback"] = True
            problems.append(f"traceback in the recovery run: {res.output[-1500:]}")
        if leftovers:
            if "ended its leftover agent" not in res.stdout:
                problems.append(f"leftover agent processes {leftovers} were not reported")
            else:
                findings["reaped"] = len(leftovers)
        rerun = [c["task"] for c in project.agent_calls()[calls_before:] if c["task"] in recorded]
        findings["reruns"] = len(rerun)
        if rerun:
            problems.append(f"re-ran {rerun} although the state had recorded their pass ({sorted(recorded)})")
        # -- the end state
        state = project.spec_state("feature")
        if not set(UNITS) <= set(state["completed"]) or state["running"] is not None:
            problems.append(f"state after recovery: completed={state['completed']} running={state['running']}")
        if (spec / "tasks.md").read_bytes() != _expected_done(original):
            problems.append(f"tasks.md after recovery: {(spec / 'tasks.md').read_bytes()!r}")
            findings["corrupt"] = findings.get("corrupt", 0) + 1
        try:
            validate_junit(report)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"JUnit after recovery invalid: {exc}")
            findings["corrupt"] = findings.get("corrupt", 0) + 1
        if temp_files(project):
            problems.append(f"temp files left: {temp_files(project)}")
        wait_until(lambda: not marked_processes(project.mark), 2.0)
        orphans = marked_processes(project.mark)
        findings["orphans"] = len(orphans)
        if orphans:
            problems.append(f"orphan processes after recovery: {orphans}")
        return findings
    finally:
        kill_tmux(project)  # first, so the server removes its socket file
        kill_marked(project.mark)


def _record(stats: Stats, results: list[dict]) -> list[str]:
    failures = []
    for r in results:
        if r.get("killed"):
            stats.kill_points.add(r["label"])
        stats.reruns += r.get("reruns", 0)
        stats.corrupt_files += r.get("corrupt", 0)
        stats.orphans += r.get("orphans", 0)
        stats.orphans_reaped += r.get("reaped", 0)
        stats.tracebacks += 1 if r.get("traceback") else 0
        failures += [f"[{r['label']}] {p}" for p in r["problems"]]
    return failures


@pytest.mark.slow
def test_kill9_anywhere_in_a_run_then_a_fresh_run_recovers(tmp_path: Path, stats: Stats) -> None:
    tmux = shutil.which("tmux") is not None
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    # A clean run first: it must pass, and its duration spans the random kills.
    start = time.monotonic()
    clean = _trial(tmp_path / "calibrate", "clean", fault=None, kill_after=None, tmux=False)
    duration = time.monotonic() - start
    assert not clean["problems"] and not clean["killed"], clean
    span = max(1.0, duration)  # the calibration ran to the end: one whole run
    plans = [(p, {"fault": p, "kill_after": None}) for p in NAMED_POINTS]
    times = sorted(rng.uniform(0.05, span * 0.9) for _ in range(RANDOM_KILLS))
    plans += [(f"random@{t:.3f}s", {"fault": None, "kill_after": t}) for t in times]
    plans.append(("while-agent-3-runs", {"fault": None, "kill_after": None, "kill_when_running": "3"}))
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(_trial, tmp_path, label, tmux=tmux and i % 2 == 0, **kw)
                   for i, (label, kw) in enumerate(plans)]
        results = [f.result() for f in futures]
    failures = _record(stats, results)
    killed = [r["label"] for r in results if r.get("killed")]
    assert not failures, f"seed {seed}:\n" + "\n".join(failures)
    assert len(killed) >= 25, f"seed {seed}: only {len(killed)} kills landed: {killed}"
    assert sum(r.get("reaped", 0) for r in results) >= 1, "no trial left an orphan to end"


def _kill_harness_when(fproject: FaultProject, proc: subprocess.Popen, ready: Callable[[], object],
                       settle: float = 0.0) -> int:
    """kill -9 the harness once *ready()* (and *settle* s more); return the pid of its
    agent, checked to have outlived it (it ignores SIGHUP)."""
    try:
        assert wait_until(ready, 20)
        time.sleep(settle)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    agent = fproject.agent_calls()[0]["pid"]
    time.sleep(0.5)
    assert marked_processes(fproject.mark) == [agent], "the agent should have outlived the harness"
    return agent


def _recovered(fproject: FaultProject, ret: int, stdout: str, output: str, message: str) -> None:
    """The next run said *message*, ended the leftover agent and ran task 1 again."""
    assert ret == 0, output
    assert message in stdout, stdout
    assert wait_until(lambda: not marked_processes(fproject.mark), 3)
    assert [c["task"] for c in fproject.agent_calls()] == ["1", "1", "2"]


def test_orphan_agent_of_a_killed_run_is_ended_by_the_next_run(fproject: FaultProject, stats: Stats) -> None:
    """The agent ignores SIGHUP and outlives its harness; the next run must end it and say so."""
    fproject.spec("feature", "- [ ] 1. Long tool call\n- [ ] 2. Next\n")
    proc = fproject.start(".kiro/specs/feature", env={"FAKE_AGENT_BEHAVIOUR": "survivor=60"})
    agent = _kill_harness_when(fproject, proc, lambda: fproject.agent_calls() and fproject.state_path.exists()
                               and (fproject.spec_state("feature").get("running") or {}).get("token"))
    running = fproject.spec_state("feature")["running"]
    assert running["pgid"] == agent
    environ = Path(f"/proc/{agent}/environ").read_bytes().split(b"\0")
    assert f"SEQHARNESS_AGENT_TOKEN={running['token']}".encode() in environ
    res = fproject.run(".kiro/specs/feature")
    _recovered(fproject, res.ret, res.stdout, res.output, f"ended its leftover agent process(es): {agent}")
    stats.kill_points.add("orphan-test")
    stats.orphans_reaped += 1


def test_agent_killed_before_it_was_recorded_is_found_by_the_pre_recorded_token(
        fproject: FaultProject, stats: Stats) -> None:
    """The harness dies right after spawning the agent, before ``running`` is
    written: the token the agent carries was recorded beforehand (``next_token``),
    so the next run still finds and ends it."""
    fproject.spec("feature", "- [ ] 1. Long tool call\n- [ ] 2. Next\n")
    # The harness stops between the spawn and step 1; once the agent has set
    # itself up to ignore SIGHUP (it logs its call first), kill -9 the harness.
    proc = fproject.start(".kiro/specs/feature",
                          env={"FAKE_AGENT_BEHAVIOUR": "survivor=60", "SEQHARNESS_FAULT": "agent-started@1=sleep:60"})
    agent = _kill_harness_when(fproject, proc, fproject.agent_calls, settle=0.3)
    entry = fproject.spec_state("feature")
    assert entry["running"] is None
    environ = Path(f"/proc/{agent}/environ").read_bytes().split(b"\0")
    assert f"SEQHARNESS_AGENT_TOKEN={entry['next_token']}".encode() in environ
    assert (fproject.tasks_path("feature")).read_text() == "- [ ] 1. Long tool call\n- [ ] 2. Next\n"
    res = fproject.run(".kiro/specs/feature")
    _recovered(fproject, res.ret, res.stdout, res.output,
               f"killed just after starting an agent; ended its leftover agent process(es): {agent}")
    stats.kill_points.add("agent-started-unrecorded")
    stats.orphans_reaped += 1


def test_assignment_agent_of_a_killed_run_is_ended_by_the_next_run(fproject: FaultProject, stats: Stats) -> None:
    """``--assign-backend`` starts its agent the way a task attempt does, with the
    run's token in its environment: a harness killed while it classifies a task
    leaves nothing behind that the next run cannot end."""
    fproject.spec("feature", "- [ ] 1. Long tool call\n- [ ] 2. Next\n")
    assigner = fake_backend().replace("cmd:", "cmd:env FAKE_AGENT_BEHAVIOUR=survivor=60 ", 1)
    proc = fproject.start(".kiro/specs/feature", "--assign-backend", assigner,
                          env={"SEQHARNESS_FAULT": "assign-started@1=sleep:60"})
    agent = _kill_harness_when(fproject, proc, fproject.agent_calls, settle=0.3)
    entry = fproject.spec_state("feature")
    environ = Path(f"/proc/{agent}/environ").read_bytes().split(b"\0")
    assert f"SEQHARNESS_AGENT_TOKEN={entry['next_token']}".encode() in environ
    res = fproject.run(".kiro/specs/feature")
    assert res.ret == 0, res.output
    assert f"killed just after starting an agent; ended its leftover agent process(es): {agent}" in res.stdout
    assert wait_until(lambda: not marked_processes(fproject.mark), 3)
    assert [c["task"] for c in fproject.agent_calls()][1:] == ["1", "2"]
    stats.kill_points.add("assign-started")
    stats.orphans_reaped += 1


# The seqharness command on a system where /proc cannot be used (no procfs, or
# one of another pid namespace): session._proc_usable() answers False.
_NO_PROC_SEQHARNESS = (
    "import sys, seqharness.processes as s; s._PROC_USABLE = False; "
    "from seqharness.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_without_proc_the_agents_group_is_recorded_and_ended(fproject: FaultProject, stats: Stats) -> None:
    """No /proc, no search by token: the state records the agent's process group
    once it is spawned, and the next run ends that group."""
    fproject.spec("feature", "- [ ] 1. Long tool call\n- [ ] 2. Next\n")
    argv = [sys.executable, "-c", _NO_PROC_SEQHARNESS, ".kiro/specs/feature", "--backend", fake_backend()]
    proc = subprocess.Popen(argv, cwd=fproject.root, env=fproject.full_env({"FAKE_AGENT_BEHAVIOUR": "survivor=60"}),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agent = _kill_harness_when(fproject, proc, lambda: fproject.agent_calls() and fproject.state_path.exists()
                               and (fproject.spec_state("feature").get("running") or {}).get("pgid"))
    assert fproject.spec_state("feature")["running"]["pgid"] == agent
    res = subprocess.run(argv, cwd=fproject.root, env=fproject.full_env(), stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=120, check=False)
    _recovered(fproject, res.returncode, res.stdout, res.stdout + res.stderr,
               f"ended its leftover agent process(es): group {agent}")
    stats.kill_points.add("orphan-test-no-proc")
    stats.orphans_reaped += 1


def _strace_ok() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _strace_ok(), reason="strace missing or ptrace not permitted")
def test_state_and_tasks_md_writes_are_atomic_and_fsynced(fproject: FaultProject, tmp_path: Path) -> None:
    """The real syscalls: every write is a temp file in the same folder renamed over the
    target; the outcome writes (state with the result, ``[x]``) are fsync'd before the
    rename and their folder after it; only the records that matter while the harness
    lives (``running``, ``[-]``) skip the fsyncs (see runner.py).
    The progress log is opened O_APPEND (never truncated), each entry one write(2)."""
    spec = fproject.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    trace = tmp_path / "trace"
    argv = ["strace", "-f", "-y", "-qq", "-s", "300", "-o", str(trace),
            "-e", "trace=openat,open,fsync,fdatasync,rename,renameat,renameat2,write", *fproject.argv(".kiro/specs/feature")]
    proc = subprocess.run(argv, cwd=fproject.root, env=fproject.full_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = trace.read_text(errors="replace").splitlines()
    specs = str(fproject.root / ".kiro" / "specs")
    durable = {"SEQUENTIAL_STATE.json": 0, "tasks.md": 0}
    fast = {"SEQUENTIAL_STATE.json": 0, "tasks.md": 0}
    last_durable_state = -1
    for i, line in enumerate(lines):
        m = re.search(r'rename(?:at2?)?\(.*?"([^"]*/\.(SEQUENTIAL_STATE\.json|tasks\.md)\.[^"]+\.tmp)".*?"([^"]+)"', line)
        if not m:
            continue
        tmp, name, target = m.group(1), m.group(2), m.group(3)
        assert os.path.dirname(tmp) == os.path.dirname(target), line
        if not any(re.search(r"\bf(?:data)?sync\(\d+<" + re.escape(tmp) + ">", b) for b in lines[:i]):
            fast[name] += 1
            continue
        folder = os.path.dirname(target)
        after = lines[i + 1:i + 40]
        assert any(re.search(r"\bfsync\(\d+<" + re.escape(folder) + ">", a) for a in after), \
            f"no fsync of {folder} after renaming {name}"
        durable[name] += 1
        if name == "SEQUENTIAL_STATE.json":
            last_durable_state = i
        else:
            # An [x] is written only after the state that records the pass is on disk.
            assert last_durable_state >= 0, "tasks.md made durable before any durable state"
    # Per task: running fast, outcome durable (with the next token); plus the run's
    # start, reconcile (the first token) and end saves.
    assert fast == {"SEQUENTIAL_STATE.json": 2, "tasks.md": 2}, fast
    assert durable["SEQUENTIAL_STATE.json"] >= 3 and durable["tasks.md"] == 2, durable
    progress = f"{specs}/SEQUENTIAL_PROGRESS.md"
    opens = [ln for ln in lines if "openat(" in ln and progress in ln and "O_APPEND" in ln]
    assert len(opens) == 2 and all("O_TRUNC" not in ln for ln in opens), opens
    writes = [ln for ln in lines if re.search(r"\bwrite\(\d+<" + re.escape(progress) + ">", ln)]
    assert len(writes) == 2, writes
    assert (spec / "tasks.md").read_text() == "- [x] 1. One\n- [x] 2. Two\n"
