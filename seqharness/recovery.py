"""Recovery: what a run does first, to repair what an earlier run left.

A run can be killed at any moment (see the write order in
:mod:`seqharness.record`).  Before the first unit of a spec, :func:`reconcile`
ends the killed run's leftover agent, restores a ``[-]`` box, ticks the boxes
of recorded passes, says how ``tasks.md`` changed since the last run (keeping
the passes that still apply), and drops a usage-limit pause that cannot be
ours.  :func:`refresh_after_lock` catches up with a run that held the lock
while this one waited for it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from seqharness.faults import fault
from seqharness.processes import end_leftovers
from seqharness.reporting import clean_text
from seqharness.state import Plan, Running
from seqharness.taskfile import TaskFileError
from seqharness.taskscan import parse
from seqharness.writes import save_state, set_cell, title_key

if TYPE_CHECKING:
    from seqharness.harness import Harness, SpecRun
    from seqharness.state import TaskRecord
    from seqharness.units import Unit


def reconcile(h: Harness, spec: SpecRun) -> None:
    """Repair what a crashed or killed earlier run left half-done.

    The earlier attempt's leftover agent processes are ended before its
    ``running`` entry is cleared, so a crash in here leaves the entry for the
    next run to act on again.  Then tasks.md is compared with the plan the
    last run saw (:func:`check_plan`), and boxes of recorded passes ticked.
    """
    state = spec.state
    _sweep_temp_files(spec)
    running = state.running
    pending = state.next_token
    if pending and not (running is not None and running.get("token") == pending):
        # Killed after spawning an agent but before recording it as running.
        _end_leftover_agent(h, {"token": pending, "unit": None})
    if running is not None:
        name = running.get("unit")
        _end_leftover_agent(h, running)
        unit = next((u for u in spec.units if u.name == name), None)
        if unit is not None and not state.is_completed(unit.name):
            cell = running.get("cell", " ")
            if unit.head.cell == "-" and cell != "-":
                set_cell(h, spec, unit.head, cell if isinstance(cell, str) and len(cell) == 1 else " ")
            h.say(f"seqharness: task {unit.name} was interrupted by an earlier run that stopped; it runs again")
        state.clear_running()
    check_plan(h, spec)
    check_pause(h, spec)
    # Always saved: the first agent's token must be on disk before it starts.
    state.new_token()
    save_state(spec)
    fault("reconcile")
    for unit in spec.units:
        if state.is_completed(unit.name):
            for task in unit.required_tasks(spec.settings.include_optional):
                if not task.done and task.cell != "x":
                    set_cell(h, spec, task, "x")
                    task.status = "done"


def _sweep_temp_files(spec: SpecRun) -> None:
    """Remove temp files of tasks.md writes that a killed run left behind.

    tasks.md is only written by the holder of the spec's lock, which is us,
    so any ``.tasks.md.*.tmp`` next to it is from a writer that died.
    """
    for leftover in spec.tasks_path.parent.glob(f".{spec.tasks_path.name}.*.tmp"):
        try:
            leftover.unlink()
        except OSError:
            pass


def _end_leftover_agent(h: Harness, running: Running) -> None:
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


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(clean_text(n) for n in names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def check_plan(h: Harness, spec: SpecRun) -> bool:
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
    state = spec.state
    gran = h.settings.granularity
    current = {u.name: title_key(u.title) for u in spec.units}
    new_plan: Plan = {"granularity": gran, "units": current}
    old_plan = state.plan
    if old_plan is not None and old_plan.get("granularity") not in (None, gran):
        state.plan = new_plan
        return True
    old_units = old_plan.get("units") if old_plan is not None else None
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
    for unit in spec.units:
        by_key.setdefault(current[unit.name], []).append(unit)
    records = state.tasks
    drop: set[str] = set()
    moves: list[tuple[str, Unit, TaskRecord]] = []
    for name, rec in list(records.items()):
        sha = rec.get("title_sha")
        if not isinstance(sha, str) or not state.is_completed(name) or current.get(name) == sha:
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
        state.drop_completed(drop)
    for old_name, unit, rec in moves:
        if not state.is_completed(unit.name):
            state.add_completed(unit.task_keys)
            moved: TaskRecord = {**rec, "keys": unit.task_keys}
            records[unit.name] = moved
            parts.append(f"task {clean_text(old_name)} is now task {unit.name}; its pass is kept")
    if parts:
        h.say(f"seqharness: {spec.tasks_path} changed since the last run: " + "; ".join(parts))
    if state.plan != new_plan:
        state.plan = new_plan
        return True
    return bool(parts)


def check_pause(h: Harness, spec: SpecRun) -> bool:
    """Drop a recorded usage-limit pause further away than --limit-wait-max.

    The run that recorded it would have halted instead, so such a value is
    not ours (a hand-edited or damaged state); waiting on it could mean
    waiting forever.
    """
    until = spec.state.paused_until
    if until is not None and until - time.time() > spec.settings.limit_wait_max:
        h.say("seqharness: ignoring a recorded usage-limit pause that ends further away than "
              "--limit-wait-max")
        spec.state.set_pause(None)
        return True
    return False


def refresh_after_lock(spec: SpecRun) -> None:
    """Bring the parsed tasks.md up to date once this run holds the spec's lock.

    Collection read tasks.md (and the state) before the lock was taken; a run
    that held the lock meanwhile (``--wait-lock``, or one that finished just
    then) may have ticked boxes since.  When only checkbox cells differ, the
    tasks are updated in place.  When task lines were added, removed or
    rewritten, the units built at collection no longer match the file:
    :class:`TaskFileError` asks for a new run.
    """
    old = spec.taskfile
    try:
        data = spec.tasks_path.read_bytes()
    except OSError as exc:
        raise TaskFileError(spec.tasks_path, 0, f"cannot read: {exc.strerror or exc}") from None
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
        raise TaskFileError(spec.tasks_path, 0, "tasks.md changed while this run waited for the spec's lock "
                            "(task lines added, removed or edited); run seqharness again")
    for a, b in pairs:
        a.cell, a.status, a.line_bytes = b.cell, b.status, b.line_bytes
    old.data = data
