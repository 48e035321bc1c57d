"""The run's own writes to the state file and tasks.md, and how they fail.

A full disk or a read-only folder must stop the run cleanly at the step that
failed (:class:`RunStopped`, exit 2), never with a traceback, and a
checkbox that cannot be written is only reported: the state is the record.
Used by the state recorder (:mod:`seqharness.record`), by recovery and by
the runner's usage-limit pauses.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from seqharness import interrupts
from seqharness.taskfile import Task, TaskFileError, set_status

if TYPE_CHECKING:
    from seqharness.harness import Harness, SpecRun


class RunStopped(Exception):
    """A file the run must write cannot be written: the run stops cleanly.

    Raised at the step that failed; the item turns it into one line and
    pytest's "interrupted" exit, 2.
    """


def save_state(spec: SpecRun, *, durable: bool = True) -> None:
    try:
        spec.store.save(durable=durable)
    except OSError as exc:
        raise RunStopped(f"cannot write the state file {spec.store.path}: {exc.strerror or exc}") from None


def title_key(title: str) -> str:
    """A short hash of a task's title: tells a renumbered task from a different one."""
    return hashlib.sha1(" ".join(title.split()).encode("utf-8", "replace")).hexdigest()[:12]


def set_cell(h: Harness, spec: SpecRun, task: Task, cell: str, *, durable: bool = True) -> None:
    """Write one checkbox; a concurrent edit of tasks.md is reported, not fatal.

    The state file is the source of truth, so losing a checkbox update costs
    only cosmetics; the next run's reconcile writes it again.
    """
    if not h.settings.update_tasks:
        return
    if len(task.cell.encode("utf-8")) != 1:
        return  # multi-byte cells (e.g. an emoji) are never rewritten
    try:
        set_status(spec.tasks_path, task, cell, durable=durable)
    except TaskFileError as exc:
        h.say_once(f"stale:{spec.tasks_path}", f"seqharness: not updating checkboxes: {exc}")
        return
    except OSError as exc:  # a read-only spec folder, a full disk: the state still records it
        h.say_once(f"stale:{spec.tasks_path}",
                   f"seqharness: not updating checkboxes: cannot write {spec.tasks_path}: {exc.strerror or exc}")
        return
    # Keep the in-memory fingerprint in step with the file we just wrote.
    old = task.line_bytes
    rel = task.cell_start - task.line_start
    task.line_bytes = old[:rel] + cell.encode() + old[rel + 1:]
    task.cell = cell


def agent_token(spec: SpecRun) -> str:
    """The token the next agent carries: on disk before it is spawned (step 0).

    ``reconcile`` and every outcome save put a fresh one in the state, so
    this normally costs nothing; a state without one gets it written here.
    """
    token = spec.state.next_token
    if token:
        return token
    token = spec.state.new_token()
    with interrupts.critical():
        save_state(spec, durable=False)
    return token
