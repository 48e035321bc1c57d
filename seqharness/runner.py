"""Running one dispatch unit: attempts, retries, checkboxes, state and logs.

Order of writes for one attempt (chosen so that a crash between any two of
them leaves a state from which the next run does the right thing):

0. (already on disk) state: ``next_token``, a random token for this attempt
   the agent is spawned with ``SEQHARNESS_AGENT_TOKEN=<token>`` in its
   environment, which its children inherit (see :mod:`seqharness.reaper`)
1. the agent is spawned; then state: ``running`` = this unit, the checkbox it
   had, the token and the agent's process group    (atomic, not durable)
2. tasks.md: the head's checkbox becomes ``[-]``                 (atomic, not durable)
3. the agent runs; its output streams into the transcript
4. progress log: the attempt's entry                             (one append)
5. state: outcome recorded, ``completed`` extended on a pass,
   ``running`` cleared, a fresh ``next_token``                   (atomic, durable)
6. tasks.md: ``[x]`` on a pass, the old checkbox restored otherwise (atomic, durable)

The run's first token is written by :func:`reconcile` when the run starts;
each outcome save (5) writes the next one.  So nothing has to be written
between deciding to run a unit and spawning its agent, and steps 1-2 run
once the agent is already starting up on another core: each rename costs
about as much as a durable write on ext4 (it flushes the new file), and this
way neither delays the agent.

* crash between the spawn and 1: the state has no ``running``, but its
  ``next_token`` is the one the agent carries; the next run ends every process
  carrying it (and says so) and runs the unit again (it never passed).
* crash between 1 and 2, or between 2 and 5: the next run sees ``running``,
  first ends any process still carrying the token (the agent of the killed
  run), then restores the box if it shows ``[-]``, and runs the unit again.
* crash between 5 and 6: the state says completed; the next run skips the
  unit and ticks its box (``reconcile``).
A pass is therefore never lost and never run twice once step 5 is on disk.
Without a usable ``/proc`` the reaper cannot search by token and uses the
process group recorded in step 1 instead (a crash before 1 then leaves an
agent that ignores SIGHUP running: on such systems that window cannot be
closed without a write before the spawn).

"Atomic" is :func:`seqharness.atomic.atomic_write`: temp file in the same
folder, flush, rename; "durable" adds the fsync of the file and of the folder.
The records of steps 0-2 (``next_token``, ``running``, ``[-]``) matter only while
this process or its agent lives: a killed harness leaves them in the kernel,
and a power loss that drops them also ends the agent, after which a stale
``[-]`` reads as "not done" anyway.  So only the outcome (5, 6) pays for
fsyncs: two durable writes per attempt, the floor crash safety needs.  The
progress log is one ``O_APPEND`` write per entry (a killed harness loses
nothing of it; the state is the record the next run trusts).  Steps 1-2 and
steps 4-6 run inside :func:`seqharness.interrupts.critical`, so a Ctrl-C or
SIGTERM never splits them (``kill -9`` can, and the list above covers it).

Writing the ``[-]`` while the agent starts means the agent could, in
principle, edit tasks.md at the same moment; every write here re-reads the
file and checks the task's line first (see :func:`seqharness.taskfile.set_status`),
as it must anyway for the humans and the IDE that edit it at any time, and
the write is done within a millisecond of the spawn, long before any agent
CLI has booted its runtime, let alone reached a tool call.

A file that cannot be written (a full disk, a read-only folder) stops the
run with :class:`RunStopped`, at the step that failed: nothing after it is
written (no ``[x]`` without the state's pass), nothing before it is undone,
and the next run repairs the rest as after a crash.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from seqharness import interrupts
from seqharness.assign import backend_for
from seqharness.backends import Backend, BackendContext
from seqharness.faults import fault
from seqharness.harness import Harness, SpecRun, safe_filename, stamp
from seqharness.outcome import FAILED, HALTED, INTERRUPTED, LIMITED, PASSED, Outcome
from seqharness.progress import ProgressEntry
from seqharness.prompt import PromptContext, build_prompt
from seqharness.reaper import TOKEN_ENV, end_leftovers, new_token
from seqharness.reporting import clean_text
from seqharness.session import AttemptResult, run_attempt
from seqharness.state import now_iso
from seqharness.taskfile import Task, TaskFileError, parse, set_status
from seqharness.units import Unit


class RunStopped(Exception):
    """A file the run must write cannot be written: the run stops cleanly.

    Raised at the step that failed (see the module doc); the item turns it
    into one line and pytest's "interrupted" exit, 2.
    """


def _save_state(sr: SpecRun, *, durable: bool = True) -> None:
    try:
        sr.state.save(durable=durable)
    except OSError as exc:
        raise RunStopped(f"cannot write the state file {sr.state.path}: {exc.strerror or exc}") from None


#: A limit that is still there after this many waits in a row is not a
#: limit we can wait out (a billing problem reported as one, say): halt.
MAX_LIMITS_IN_A_ROW = 10


@dataclass
class AttemptRecord:
    number: int
    outcome: Outcome
    result: AttemptResult
    transcript: Path


@dataclass
class UnitResult:
    outcome: Outcome
    attempts: list[AttemptRecord] = field(default_factory=list)
    backend: Backend | None = None

    @property
    def last(self) -> AttemptRecord | None:
        return self.attempts[-1] if self.attempts else None


def _set_cell(h: Harness, sr: SpecRun, task: Task, cell: str, *, durable: bool = True) -> None:
    """Write one checkbox; a concurrent edit of tasks.md is reported, not fatal.

    The state file is the source of truth, so losing a checkbox update costs
    only cosmetics; the next run's reconcile writes it again.
    """
    if not h.settings.update_tasks:
        return
    if len(task.cell.encode("utf-8")) != 1:
        return  # multi-byte cells (e.g. an emoji) are never rewritten
    try:
        set_status(sr.tasks_path, task, cell, durable=durable)
    except TaskFileError as exc:
        h.say_once(f"stale:{sr.tasks_path}", f"seqharness: not updating checkboxes: {exc}")
        return
    except OSError as exc:  # a read-only spec folder, a full disk: the state still records it
        h.say_once(f"stale:{sr.tasks_path}",
                   f"seqharness: not updating checkboxes: cannot write {sr.tasks_path}: {exc.strerror or exc}")
        return
    # Keep the in-memory fingerprint in step with the file we just wrote.
    old = task.line_bytes
    rel = task.cell_start - task.line_start
    task.line_bytes = old[:rel] + cell.encode() + old[rel + 1:]
    task.cell = cell


def reconcile(h: Harness, sr: SpecRun) -> None:
    """Repair what a crashed or killed earlier run left half-done (see module doc).

    The earlier attempt's leftover agent processes are ended before its
    ``running`` entry is cleared, so a crash in here leaves the entry for the
    next run to act on again.  Then tasks.md is compared with the plan the
    last run saw (:func:`_check_plan`), and boxes of recorded passes ticked.
    """
    state = sr.state
    _sweep_temp_files(sr)
    running = state.data.get("running")
    pending = state.data.get("next_token")
    if isinstance(pending, str) and pending and not (
            isinstance(running, dict) and running.get("token") == pending):
        # Killed after spawning an agent but before recording it as running.
        _end_leftover_agent(h, {"token": pending, "unit": None})
    if isinstance(running, dict):
        name = running.get("unit")
        _end_leftover_agent(h, running)
        unit = next((u for u in sr.units if u.name == name), None)
        if unit is not None and not state.is_completed(unit.name):
            cell = running.get("cell", " ")
            if unit.head.cell == "-" and cell != "-":
                _set_cell(h, sr, unit.head, cell if isinstance(cell, str) and len(cell) == 1 else " ")
            h.say(f"seqharness: task {unit.name} was interrupted by an earlier run that stopped; it runs again")
        state.data["running"] = None
    _check_plan(h, sr)
    _check_pause(h, sr)
    # Always saved: the first agent's token must be on disk before it starts.
    state.data["next_token"] = new_token()
    _save_state(sr)
    fault("reconcile")
    for unit in sr.units:
        if sr.state.is_completed(unit.name):
            for task in unit.required_tasks(h.settings.include_optional):
                if not task.done and task.cell != "x":
                    _set_cell(h, sr, task, "x")
                    task.status = "done"


def _sweep_temp_files(sr: SpecRun) -> None:
    """Remove temp files of tasks.md writes that a killed run left behind.

    tasks.md is only written by the holder of the spec's lock, which is us,
    so any ``.tasks.md.*.tmp`` next to it is from a writer that died.
    """
    for leftover in sr.tasks_path.parent.glob(f".{sr.tasks_path.name}.*.tmp"):
        try:
            leftover.unlink()
        except OSError:
            pass


def _end_leftover_agent(h: Harness, running: dict) -> None:
    token, pgid = running.get("token"), running.get("pgid")
    found, alive = end_leftovers(token if isinstance(token, str) else None,
                                 pgid if isinstance(pgid, int) else None)
    if not found:
        return
    def show(pids: list[int]) -> str:
        return ", ".join(f"group {-p}" if p < 0 else str(p) for p in pids)
    unit = running.get("unit")
    when = (f"while task {clean_text(str(unit))[:40]} ran" if unit is not None
            else "just after starting an agent")
    if alive:
        h.say(f"seqharness: an earlier run was killed {when}; its agent is still running "
              f"and could not be ended: {show(alive)}")
    else:
        h.say(f"seqharness: an earlier run was killed {when}; ended its leftover agent "
              f"process(es): {show(found)}")


def _title_key(title: str) -> str:
    return hashlib.sha1(" ".join(title.split()).encode("utf-8", "replace")).hexdigest()[:12]


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(clean_text(n) for n in names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def _check_plan(h: Harness, sr: SpecRun) -> bool:
    """Say how tasks.md changed since the last run; keep the passes that still apply.

    Passes are recorded under the unit's name (its id).  When tasks.md is
    renumbered between runs an id can come to name a different task: the old
    pass must not make that task look complete, and the task that passed,
    now under another id, keeps its pass.  Tasks are told apart by a hash of
    their title, recorded with every attempt and in ``plan`` (name -> hash of
    every unit, as the last run saw them).  Changing ``--granularity``
    renames every unit, so then nothing is compared.  Returns True if the
    state changed.
    """
    data = sr.state.data
    gran = h.settings.granularity
    current = {u.name: _title_key(u.title) for u in sr.units}
    new_plan = {"granularity": gran, "units": current}
    old_plan = data.get("plan")
    if isinstance(old_plan, dict) and old_plan.get("granularity") not in (None, gran):
        data["plan"] = new_plan
        return True
    old_units = old_plan.get("units") if isinstance(old_plan, dict) else None
    parts: list[str] = []
    if isinstance(old_units, dict):
        added = [n for n in current if n not in old_units]
        removed = [n for n in old_units if n not in current]
        changed = [n for n in current if n in old_units and old_units[n] != current[n]]
        if added:
            parts.append(f"new: {_names(added)}")
        if removed:
            parts.append(f"removed: {_names(removed)}")
        if changed:
            parts.append(f"different text: {_names(changed)}")
    by_key: dict[str, list[Unit]] = {}
    for unit in sr.units:
        by_key.setdefault(current[unit.name], []).append(unit)
    completed = set(data["completed"])
    records = data["tasks"]
    drop: set[str] = set()
    moves: list[tuple[str, Unit, dict]] = []
    for name, rec in list(records.items()):
        sha = rec.get("title_sha")
        if not isinstance(sha, str) or name not in completed or current.get(name) == sha:
            continue
        movers = [u for u in by_key.get(sha, []) if u.name != name]
        if name in current:
            keys = rec.get("keys")
            drop.update(k for k in (keys if isinstance(keys, list) else [name]) if isinstance(k, str))
            drop.add(name)
            records.pop(name)
            parts.append(f"task {clean_text(name)} is a different task now; the pass recorded for "
                         f"{clean_text(str(rec.get('title', '?')))[:60]!r} does not count for it")
        if len(movers) == 1:
            moves.append((name, movers[0], rec))
    if drop:
        data["completed"] = [k for k in data["completed"] if k not in drop]
    for old_name, unit, rec in moves:
        if not sr.state.is_completed(unit.name):
            sr.state.add_completed(unit.task_keys)
            records[unit.name] = dict(rec, keys=unit.task_keys)
            parts.append(f"task {clean_text(old_name)} is now task {unit.name}; its pass is kept")
    if parts:
        h.say(f"seqharness: {sr.tasks_path} changed since the last run: " + "; ".join(parts))
    if data.get("plan") != new_plan:
        data["plan"] = new_plan
        return True
    return bool(parts)


def _check_pause(h: Harness, sr: SpecRun) -> bool:
    """Drop a recorded usage-limit pause further away than --limit-wait-max.

    The run that recorded it would have halted instead, so such a value is
    not ours (a hand-edited or damaged state); waiting on it could mean
    waiting forever.
    """
    until = sr.state.data.get("paused_until")
    if isinstance(until, (int, float)) and until - time.time() > h.settings.limit_wait_max:
        h.say("seqharness: ignoring a recorded usage-limit pause that ends further away than "
              "--limit-wait-max")
        sr.state.data["paused_until"] = None
        return True
    return False


def _next_transcript(sr: SpecRun, unit: Unit, attempt: int) -> Path:
    sr.transcripts_dir.mkdir(parents=True, exist_ok=True)
    return sr.transcripts_dir / f"task-{safe_filename(unit.name)}-{stamp()}-a{attempt}.log"


def run_unit(h: Harness, sr: SpecRun, unit: Unit) -> UnitResult:
    """Run *unit* until it passes, halts, is interrupted, or uses its attempts.

    A usage or rate limit (outcome ``limited``) is not a failure: the run
    waits for the reset (recorded as ``paused_until`` in the state, so a
    restarted run keeps waiting instead of hammering) and retries the same
    attempt without spending an iteration or a retry.
    """
    settings = h.settings
    records: list[AttemptRecord] = []
    previous: str | None = None
    number = 1
    backend = backend_for(h, sr, unit)
    limits = 0
    while number <= settings.retries + 1:
        if not h.budget.take():
            h.budget_spent_at = unit.name
            reason = f"iteration budget spent (--max-iterations {settings.max_iterations})"
            if records:
                reason = f"{records[-1].outcome.reason}; then {reason}"
            return UnitResult(Outcome(FAILED, reason), records, backend)
        if not wait_out_pause(h, sr) and h.attempts_run > 0:
            h.pause(settings.delay, getattr(h.view, "delay_tick", None))
        h.attempts_run += 1
        record = _attempt(h, sr, unit, number, previous, backend)
        records.append(record)
        kind = record.outcome.kind
        if kind == LIMITED:
            limits += 1
            if limits > MAX_LIMITS_IN_A_ROW:
                reason = f"usage limit reported {limits} times in a row; it does not lift"
                return UnitResult(Outcome(HALTED, reason, question=record.outcome.reason + "; " + reason),
                                  records, backend)
            h.budget.used -= 1          # a limit costs no iteration ...
            halt = schedule_pause(h, sr, record.outcome)
            if halt is not None:
                return UnitResult(halt, records, backend)
            continue                    # ... and no retry: same attempt number
        limits = 0
        if kind != FAILED:
            return UnitResult(record.outcome, records, backend)
        previous = record.outcome.reason
        number += 1
    return UnitResult(records[-1].outcome, records, backend)


def schedule_pause(h: Harness, sr: SpecRun, outcome: Outcome) -> Outcome | None:
    """Record when to retry after a usage limit; a halt if that is too far away."""
    now = time.time()
    resume = outcome.resume_at if outcome.resume_at is not None else now + h.settings.limit_wait_default
    if resume - now > h.settings.limit_wait_max:
        when = _dt.datetime.fromtimestamp(resume).astimezone().isoformat(timespec="minutes")
        return Outcome(HALTED, f"usage limit resets at {when}, beyond --limit-wait-max",
                       question=f"{outcome.reason}; it resets at {when}, later than --limit-wait-max "
                                f"({h.settings.limit_wait_max:.0f}s). Run seqharness again after the reset.")
    sr.state.data["paused_until"] = resume
    sr.state.save()
    h.say_once(f"pause:{resume}", f"seqharness: {outcome.reason}; waiting until "
          f"{_dt.datetime.fromtimestamp(resume).astimezone().isoformat(timespec='seconds')}")
    return None


def wait_out_pause(h: Harness, sr: SpecRun) -> bool:
    """Sleep until a recorded ``paused_until`` (also one left by an earlier run).

    Returns True if there was a pause to wait for (the ``--delay`` is then
    not added on top).
    """
    until = sr.state.data.get("paused_until")
    if not isinstance(until, (int, float)):
        return False
    left = until - time.time()
    if left > 0:
        when = _dt.datetime.fromtimestamp(until).astimezone().isoformat(timespec="seconds")
        h.say_once(f"pause:{until}", f"seqharness: usage limit: waiting until {when}")
        h.pause(left, getattr(h.view, "delay_tick", None))
    sr.state.data["paused_until"] = None
    sr.state.save()
    return True


def _attempt(h: Harness, sr: SpecRun, unit: Unit, number: int, previous: str | None,
             backend: Backend) -> AttemptRecord:
    settings = h.settings
    try:
        transcript = _next_transcript(sr, unit, number)
    except OSError as exc:
        raise RunStopped(f"cannot create the transcripts folder {sr.transcripts_dir}: "
                         f"{exc.strerror or exc}") from None
    context = PromptContext(
        spec_name=sr.name, spec_dir=sr.spec_dir, workdir=sr.workdir,
        include_optional=settings.include_optional, attempt=number, previous_failure=previous,
    )
    prompt = None
    if h.hook is not None:
        prompt = h.hook.pytest_seqharness_build_prompt(unit=unit, context=context)
    if prompt is None:
        prompt = build_prompt(unit, context)
    prompt_file = transcript.with_suffix(".prompt.md")
    try:  # before step 1: if these cannot be written, nothing has changed yet
        prompt_file.write_text(prompt, encoding="utf-8")
        transcript.touch()
    except OSError as exc:
        raise RunStopped(f"cannot write the transcript {exc.filename or transcript}: "
                         f"{exc.strerror or exc}") from None
    backend_ctx = BackendContext(
        prompt=prompt, prompt_file=str(prompt_file), task_id=unit.name,
        workdir=str(sr.workdir), spec_dir=str(sr.spec_dir),
    )
    invocation = backend.invocation(backend_ctx)
    reader = backend.reader(backend_ctx)

    # 0: the agent's token is already in the state (see the module doc).
    head = unit.head
    original_cell = head.cell
    token = _agent_token(sr)
    running = {"unit": unit.name, "cell": head.cell, "pid": os.getpid(), "since": now_iso(),
               "token": token, "pgid": None}
    env = dict(os.environ if invocation.env is None else invocation.env)
    env[TOKEN_ENV] = token

    def spawned(pid: int) -> None:
        # 1-2 once the agent runs: the renames overlap its start-up.  A Ctrl-C
        # held here is raised right after, as if it came while the agent ran.
        running["pgid"] = pid  # the agent is a session leader: pid == pgid
        fault("agent-started")
        with interrupts.critical():
            sr.state.data["running"] = running
            _save_state(sr, durable=False)
            fault("running-recorded")
            _set_cell(h, sr, head, "-", durable=False)
            fault("marked")
        if h.tmux is not None:
            # The window's viewer replays the transcript from its first byte,
            # so opening it now loses nothing, and its tmux round trips too
            # overlap the agent's start-up.
            _open_window(h, unit, transcript)

    view = h.view
    started_at = now_iso()
    try:
        if view is not None:
            view.attempt_started(sr, unit, number, transcript)
        result = run_attempt(
            invocation.argv, cwd=str(sr.workdir), env=env, prompt=prompt,
            transcript_path=str(transcript), timeout=settings.timeout,
            idle_timeout=settings.idle_timeout, stdin_text=invocation.stdin_text,
            on_output=reader.feed if reader is not None else None,
            stop_reason=(lambda: reader.stop_requested) if reader is not None else None,
            question_idle=settings.question_idle, on_spawn=spawned,
        )
    except KeyboardInterrupt:
        try:
            _finish(h, sr, unit, number, original_cell, Outcome(INTERRUPTED, "interrupted by the user"),
                    None, transcript, started_at, backend)
        except RunStopped as exc:
            h.say(f"seqharness: {exc}")
        raise
    except (OSError, RunStopped) as exc:
        # The agent's group is already ended (run_attempt guarantees it).
        message = str(exc) if isinstance(exc, RunStopped) else (
            f"cannot write the transcript {transcript}: {exc.strerror or exc}")
        try:
            _finish(h, sr, unit, number, original_cell, Outcome(INTERRUPTED, f"stopped: {message}"),
                    None, transcript, started_at, backend)
        except RunStopped:
            pass
        raise RunStopped(message) from None
    if reader is not None:
        reader.close()
    outcome = backend.interpret(result, reader, trust_exit_code=settings.trust_exit_code)
    _finish(h, sr, unit, number, original_cell, outcome, result, transcript, started_at, backend)
    if view is not None:
        view.attempt_finished(sr, unit, number, outcome)
    if outcome.kind == INTERRUPTED:
        raise KeyboardInterrupt
    return AttemptRecord(number, outcome, result, transcript)


def _agent_token(sr: SpecRun) -> str:
    """The token the next agent carries: recorded before it is spawned.

    ``reconcile`` and every outcome save (step 5) put a fresh one in the
    state, so this normally costs nothing; a state without one (the run was
    prepared by other means) gets it written here first.
    """
    token = sr.state.data.get("next_token")
    if isinstance(token, str) and token:
        return token
    token = sr.state.data["next_token"] = new_token()
    with interrupts.critical():
        _save_state(sr, durable=False)
    return token


def _open_window(h: Harness, unit: Unit, transcript: Path) -> str | None:
    from seqharness.tmux import TmuxError

    try:
        return h.tmux.open_window(f"task-{unit.name}", str(transcript))  # type: ignore[union-attr]
    except TmuxError as exc:
        h.say(f"seqharness: tmux failed ({exc}); carrying on without tmux")
        h.tmux = None
        return None


def _finish(h: Harness, sr: SpecRun, unit: Unit, number: int, original_cell: str, outcome: Outcome,
            result: AttemptResult | None, transcript: Path, started_at: str, backend: Backend) -> None:
    label = outcome.kind.upper()
    exit_code = result.exit_status if result is not None else None
    duration = result.duration if result is not None else 0.0
    footer = f"\n\n--- seqharness: task {unit.name} attempt {number}: {label} ({outcome.reason}) ---\n"
    with interrupts.critical():  # steps 4-6 are never split by a Ctrl-C / SIGTERM
        try:
            with open(transcript, "ab") as fh:
                fh.write(footer.encode("utf-8", "replace"))
        except OSError:
            pass  # a courtesy line for the tmux window; the state is the record
        # 4: the human log.
        try:
            sr.progress.append(ProgressEntry(
                spec=sr.name, iteration=h.attempts_run, task=unit.name, title=unit.title, outcome=label,
                started_at=started_at, duration=duration, exit_code=exit_code, message=outcome.reason,
                transcript=sr.rel(transcript), attempt=number, backend=backend.describe(),
            ))
        except OSError as exc:
            h.say_once(f"progress:{sr.progress.path}",
                       f"seqharness: cannot write the progress log {sr.progress.path}: "
                       f"{exc.strerror or exc} (the state file still records every attempt)")
        fault("progress-appended")
        # 5: the state.
        state = sr.state
        record = state.task_record(unit.name)
        attempts = record.get("attempts")
        record.update({
            "status": outcome.kind, "attempts": (attempts if isinstance(attempts, int) else 0) + 1,
            "last_exit": exit_code, "last_reason": outcome.reason, "transcript": sr.rel(transcript),
            "updated_at": now_iso(), "title": unit.title[:200], "title_sha": _title_key(unit.title),
        })
        iterations = state.data.get("iterations")
        state.data["iterations"] = (iterations if isinstance(iterations, int) else 0) + 1
        state.data["running"] = None
        state.data["next_token"] = new_token()  # for the next attempt (step 0)
        if outcome.kind == PASSED:
            state.add_completed(unit.task_keys)
            record["keys"] = unit.task_keys
        elif outcome.kind == HALTED:
            state.data.update({"halted": True, "halted_task": unit.name, "halted_at": now_iso(),
                               "halt_question": outcome.question})
        _save_state(sr)  # RunStopped here: step 6 is not written (no [x] without the pass)
        fault("outcome-recorded")
        # 6: tasks.md.
        if outcome.kind == PASSED:
            for task in unit.required_tasks(h.settings.include_optional):
                if task.cell != "x" and task.cell != "X":
                    _set_cell(h, sr, task, "x")
                task.status = "done"
        elif outcome.kind == FAILED and h.settings.leave_failed:
            pass
        else:
            _set_cell(h, sr, unit.head,
                      original_cell if len(original_cell) == 1 and original_cell != "-" else " ")
        fault("ticked")


def refresh_after_lock(sr: SpecRun) -> None:
    """Bring the parsed tasks.md up to date once this run holds the spec's lock.

    Collection read tasks.md (and the state) before the lock was taken; a run
    that held the lock meanwhile (``--wait-lock``, or one that finished just
    then) may have ticked boxes since.  When only checkbox cells differ, the
    tasks are updated in place.  When task lines were added, removed or
    rewritten, the units built at collection no longer match the file:
    :class:`TaskFileError` asks for a new run.
    """
    old = sr.taskfile
    try:
        data = sr.tasks_path.read_bytes()
    except OSError as exc:
        raise TaskFileError(sr.tasks_path, 0, f"cannot read: {exc.strerror or exc}") from None
    if data == old.data:
        return
    new = parse(data, old.path)
    pairs = list(zip(old.tasks, new.tasks, strict=False))  # lengths compared below
    same = len(old.tasks) == len(new.tasks) and all(
        a.line_start == b.line_start and a.cell_start == b.cell_start and a.cell_end == b.cell_end
        and a.line_bytes[: a.cell_start - a.line_start] == b.line_bytes[: b.cell_start - b.line_start]
        and a.line_bytes[a.cell_end - a.line_start:] == b.line_bytes[b.cell_end - b.line_start:]
        for a, b in pairs)
    if not same:
        raise TaskFileError(sr.tasks_path, 0, "tasks.md changed while this run waited for the spec's lock "
                            "(task lines added, removed or edited); run seqharness again")
    for a, b in pairs:
        a.cell, a.status, a.line_bytes = b.cell, b.status, b.line_bytes
    old.data = data
