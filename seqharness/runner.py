"""Running one dispatch unit: attempts, retries, checkboxes, state and logs.

Order of writes for one attempt (chosen so that a crash between any two of
them leaves a state from which the next run does the right thing):

1. state: ``running`` = this unit and the checkbox it had      (atomic)
2. tasks.md: the head's checkbox becomes ``[-]``                 (atomic)
3. the agent runs; its output streams into the transcript
4. progress log: the attempt's entry                             (append+fsync)
5. state: outcome recorded, ``completed`` extended on a pass,
   ``running`` cleared                                           (atomic)
6. tasks.md: ``[x]`` on a pass, the old checkbox restored otherwise (atomic)

* crash before 2: ``running`` names a unit whose box is unchanged; the next
  run clears it and runs the unit again (it never passed).
* crash between 2 and 5: the box shows ``[-]``; the next run sees ``running``,
  restores the box and runs the unit again.
* crash between 5 and 6: the state says completed; the next run skips the
  unit and ticks its box (``reconcile``).
A pass is therefore never lost and never run twice once step 5 is on disk.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from seqharness.assign import backend_for
from seqharness.backends import Backend, BackendContext
from seqharness.harness import Harness, SpecRun, safe_filename, stamp
from seqharness.outcome import FAILED, HALTED, INTERRUPTED, LIMITED, PASSED, Outcome
from seqharness.progress import ProgressEntry
from seqharness.prompt import PromptContext, build_prompt
from seqharness.session import AttemptResult, run_attempt
from seqharness.state import now_iso
from seqharness.taskfile import Task, TaskFileError, load, set_status
from seqharness.units import Unit


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


def _set_cell(h: Harness, sr: SpecRun, task: Task, cell: str) -> None:
    """Write one checkbox; a concurrent edit of tasks.md is reported, not fatal.

    The state file is the source of truth, so losing a checkbox update costs
    only cosmetics; the next run's reconcile writes it again.
    """
    if not h.settings.update_tasks:
        return
    if len(task.cell.encode("utf-8")) != 1:
        return  # multi-byte cells (e.g. an emoji) are never rewritten
    try:
        set_status(sr.tasks_path, task, cell)
    except TaskFileError as exc:
        h.say_once(f"stale:{sr.tasks_path}", f"seqharness: not updating checkboxes: {exc}")
        return
    # Keep the in-memory fingerprint in step with the file we just wrote.
    old = task.line_bytes
    rel = task.cell_start - task.line_start
    task.line_bytes = old[:rel] + cell.encode() + old[rel + 1:]
    task.cell = cell


def reconcile(h: Harness, sr: SpecRun) -> None:
    """Repair what a crashed or killed earlier run left half-done (see module doc)."""
    running = sr.state.data.get("running")
    if isinstance(running, dict):
        name = running.get("unit")
        unit = next((u for u in sr.units if u.name == name), None)
        if unit is not None and not sr.state.is_completed(unit.name):
            cell = running.get("cell", " ")
            if unit.head.cell == "-" and cell != "-":
                _set_cell(h, sr, unit.head, cell if len(cell) == 1 else " ")
            h.say(f"seqharness: task {name} was interrupted by an earlier run that stopped; it runs again")
        sr.state.data["running"] = None
        sr.state.save()
    for unit in sr.units:
        if sr.state.is_completed(unit.name):
            for task in unit.required_tasks(h.settings.include_optional):
                if not task.done and task.cell != "x":
                    _set_cell(h, sr, task, "x")
                    task.status = "done"


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
            h.budget.used -= 1          # a limit costs no iteration ...
            halt = schedule_pause(h, sr, record.outcome)
            if halt is not None:
                return UnitResult(halt, records, backend)
            continue                    # ... and no retry: same attempt number
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
    h.say(f"seqharness: {outcome.reason}; waiting until "
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
        h.pause(left, getattr(h.view, "delay_tick", None))
    sr.state.data["paused_until"] = None
    sr.state.save()
    return True


def _attempt(h: Harness, sr: SpecRun, unit: Unit, number: int, previous: str | None,
             backend: Backend) -> AttemptRecord:
    settings = h.settings
    transcript = _next_transcript(sr, unit, number)
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
    prompt_file.write_text(prompt, encoding="utf-8")
    backend_ctx = BackendContext(
        prompt=prompt, prompt_file=str(prompt_file), task_id=unit.name,
        workdir=str(sr.workdir), spec_dir=str(sr.spec_dir),
    )
    invocation = backend.invocation(backend_ctx)
    reader = backend.reader(backend_ctx)

    # 1-2: record that the unit runs, then mark it in tasks.md.
    head = unit.head
    sr.state.data["running"] = {"unit": unit.name, "cell": head.cell, "pid": os.getpid(), "since": now_iso()}
    sr.state.save()
    original_cell = head.cell
    _set_cell(h, sr, head, "-")

    transcript.touch()
    window = None
    if h.tmux is not None:
        window = _open_window(h, unit, transcript)
    view = h.view
    if view is not None:
        view.attempt_started(sr, unit, number, transcript)
    started_at = now_iso()
    try:
        result = run_attempt(
            invocation.argv, cwd=str(sr.workdir), env=invocation.env, prompt=prompt,
            transcript_path=str(transcript), timeout=settings.timeout,
            idle_timeout=settings.idle_timeout, stdin_text=invocation.stdin_text,
            on_output=reader.feed if reader is not None else None,
        )
    except KeyboardInterrupt:
        _finish(h, sr, unit, number, original_cell, Outcome(INTERRUPTED, "interrupted by the user"),
                None, transcript, started_at, backend)
        raise
    if reader is not None:
        reader.close()
    outcome = backend.interpret(result, reader, trust_exit_code=settings.trust_exit_code)
    _finish(h, sr, unit, number, original_cell, outcome, result, transcript, started_at, backend)
    if view is not None:
        view.attempt_finished(sr, unit, number, outcome)
    if outcome.kind == INTERRUPTED:
        raise KeyboardInterrupt
    return AttemptRecord(number, outcome, result, transcript)


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
    with open(transcript, "ab") as fh:
        fh.write(footer.encode("utf-8", "replace"))
    # 4: the human log.
    sr.progress.append(ProgressEntry(
        spec=sr.name, iteration=h.attempts_run, task=unit.name, title=unit.title, outcome=label,
        started_at=started_at, duration=duration, exit_code=exit_code, message=outcome.reason,
        transcript=sr.rel(transcript), attempt=number, backend=backend.describe(),
    ))
    # 5: the state.
    state = sr.state
    record = state.task_record(unit.name)
    record.update({
        "status": outcome.kind, "attempts": record.get("attempts", 0) + 1, "last_exit": exit_code,
        "last_reason": outcome.reason, "transcript": sr.rel(transcript), "updated_at": now_iso(),
    })
    state.data["iterations"] = int(state.data.get("iterations") or 0) + 1
    state.data["running"] = None
    if outcome.kind == PASSED:
        state.add_completed(unit.task_keys)
    elif outcome.kind == HALTED:
        state.data.update({"halted": True, "halted_task": unit.name, "halted_at": now_iso(),
                           "halt_question": outcome.question})
    state.save()
    # 6: tasks.md.
    if outcome.kind == PASSED:
        for task in unit.required_tasks(h.settings.include_optional):
            if task.cell != "x" and task.cell != "X":
                _set_cell(h, sr, task, "x")
            task.status = "done"
    elif outcome.kind == FAILED and h.settings.leave_failed:
        pass
    else:
        _set_cell(h, sr, unit.head, original_cell if len(original_cell) == 1 and original_cell != "-" else " ")


def reload_taskfile(sr: SpecRun) -> None:
    """Re-read tasks.md (used when the file changed under us)."""
    sr.taskfile = load(sr.tasks_path)
