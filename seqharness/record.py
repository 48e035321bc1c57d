"""The state recorder: the crash-safe order in which one attempt is written down.

A run can be killed between any two writes; this order lets the next run
(:mod:`seqharness.recovery`) repair what was half done, never lose a pass and
never run one twice.  It is a plugin (``seqharness.state``) on the attempt
hooks, so the order is visible where the hooks are fired:

0. (already on disk) state: ``next_token``, the token the agent is spawned
   with (``SEQHARNESS_AGENT_TOKEN``), written by the previous step 5 or by
   :func:`seqharness.recovery.reconcile`
1. the agent is spawned, then state: ``running`` = this unit, its old
   checkbox, the token, the agent's process group   (atomic, not durable)
2. tasks.md: the head's checkbox becomes ``[-]``    (atomic, not durable)
   -- ``pytest_seqharness_attempt_start``: 1-2 in this plugin's wrapper, then
   the other implementations (the tmux window)
3. the agent runs; its output streams into the transcript
4. ``pytest_seqharness_attempt_logreport``: every other implementation (the
   progress log appends its entry)
5. state: the outcome, ``completed`` on a pass, ``running`` cleared, a fresh
   ``next_token``                                     (atomic, durable)
6. tasks.md: ``[x]`` on a pass, the old checkbox otherwise (atomic, durable)
   -- then ``pytest_seqharness_attempt_finish``

Steps 1-2 and 4-6 run with Ctrl-C and SIGTERM held off.  A file that cannot
be written stops the run with :class:`~seqharness.writes.RunStopped` at the step that failed.
Why each step is (not) durable, and what each crash window leaves: docs/crash-safety.md.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from seqharness import interrupts
from seqharness.faults import fault
from seqharness.harness import RunPlugin
from seqharness.outcome import FAILED, HALTED, PASSED, Outcome
from seqharness.recovery import reconcile
from seqharness.state import Running, TaskRecord, now_iso
from seqharness.writes import save_state, set_cell, title_key

if TYPE_CHECKING:
    from seqharness.attempt import Attempt
    from seqharness.harness import SpecRun


class Recorder(RunPlugin):
    """Plugin ``seqharness.state``: the state file and the checkboxes of tasks.md."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_seqharness_spec_start(self, spec: SpecRun) -> None:
        h = self.h
        for note in spec.store.notes:
            h.say(f"seqharness: {note}")
        if h.settings.reset:
            spec.store.reset()
        state = spec.state
        if state.halted:
            h.say(f"seqharness: resuming spec {spec.name} at halted task {state.halted_task} "
                  f"(halted at {state.halted_at})")
        state.begin_run()
        save_state(spec)
        reconcile(h, spec)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_seqharness_attempt_start(self, attempt: Attempt) -> Generator[None, None, None]:
        # 1-2 once the agent runs: the renames overlap its start-up.  A Ctrl-C
        # held here is raised right after, as if it came while the agent ran.
        spec = attempt.spec
        head = attempt.unit.head
        fault("agent-started")
        running: Running = {"unit": attempt.unit.name, "cell": head.cell, "pid": os.getpid(),
                            "since": attempt.started_at, "token": attempt.token, "pgid": attempt.pid}
        with interrupts.critical():
            spec.state.record_running(running)
            save_state(spec, durable=False)
            fault("running-recorded")
            set_cell(self.h, spec, head, "-", durable=False)
            fault("marked")
        yield

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_seqharness_attempt_logreport(self, attempt: Attempt,
                                            outcome: Outcome) -> Generator[None, None, None]:
        try:
            yield  # 4: the progress log and every other reporter
        finally:
            fault("progress-appended")
            self._record(attempt, outcome)

    def _record(self, attempt: Attempt, outcome: Outcome) -> None:
        spec, unit, h = attempt.spec, attempt.unit, self.h
        result = attempt.result
        # 5: the state.
        record: TaskRecord = {
            "status": outcome.kind, "last_exit": result.exit_status if result is not None else None,
            "last_reason": outcome.reason, "transcript": spec.rel(attempt.transcript),
            "updated_at": now_iso(), "title": unit.title[:200], "title_sha": title_key(unit.title),
        }
        spec.state.record_outcome(unit.name, record,
                                  passed_keys=unit.task_keys if outcome.kind == PASSED else None,
                                  halted=outcome.kind == HALTED, halt_question=outcome.question)
        save_state(spec)  # RunStopped here: step 6 is not written (no [x] without the pass)
        fault("outcome-recorded")
        # 6: tasks.md.
        if outcome.kind == PASSED:
            for task in unit.required_tasks(spec.settings.include_optional):
                if task.cell != "x" and task.cell != "X":
                    set_cell(h, spec, task, "x")
                task.status = "done"
        elif not (outcome.kind == FAILED and spec.settings.leave_failed):
            cell = attempt.original_cell
            set_cell(h, spec, unit.head, cell if len(cell) == 1 and cell != "-" else " ")
        fault("ticked")

    def pytest_seqharness_spec_finish(self, spec: SpecRun, exitstatus: int) -> None:
        optional = spec.settings.include_optional
        complete = all(spec.state.is_completed(u.name) or u.done_in_file(optional)
                       or (u.optional and not optional) for u in spec.units)
        # Every agent of this run has ended (run_attempt guarantees it), so no
        # process carries the token left for a next attempt: the next run need
        # not search /proc for it (reconcile writes a fresh one).
        spec.state.end_run(complete=complete)
        try:
            spec.store.save()
        except OSError:
            pass
