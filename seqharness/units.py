"""Dispatch units: what is sent to the agent in one go, in which order.

* ``granularity="parent"`` (the original's behaviour): every top-level task is
  one unit, dispatched once with all its subtasks in the prompt; a task with
  no parent and no children is a unit on its own.
* ``granularity="leaf"``: every task without children is its own unit.

Checklists under summary headings (``## Notes``, ``## Success Criteria`` ...)
are never dispatched.

A unit's *name* is its node-id part (``tasks.md::<name>``): the task id when
there is one (``2``, ``2.1``, ``T001``); for a task without an id, a slug of
its title (``update-pom-xml``); a name used twice gets ``[2]``, ``[3]`` ...
in file order.  Names depend only on the task's own id or title, so they stay
stable when unrelated lines are edited.

Units are ordered by dependencies, otherwise by file order.  Explicit ones
(``_Depends: 1.2_``, ``depends on: 1``) are the author's: a unit whose
dependency did not complete is skipped, and a cycle or an unknown id is a
:class:`SpecError` naming the line.  The Kiro IDE's ``Task Dependency Graph``
waves are generated hints: they only order units, ids they name that do not
exist are ignored, and if they contradict each other at this granularity
(wave 4 holds 4.1 and 5.1, wave 5 holds 4.2 and 5.2: units 4 and 5 each wait
for the other) they are dropped in favour of file order.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from seqharness.errors import SpecError
from seqharness.taskfile import Task, TaskFile

_SLUG_DROP = re.compile(r"[^\w]+", re.UNICODE)


def slugify(title: str, limit: int = 40) -> str:
    """Lower-case word characters joined by ``-``; ``task`` when nothing is left."""
    text = title.replace("**", "").replace("`", "")
    slug = _SLUG_DROP.sub("-", text.lower()).strip("-_")
    slug = slug[:limit].rstrip("-_")
    return slug or "task"


@dataclass(eq=False)
class Unit:
    """One dispatch unit: a head task and the tasks sent along with it."""

    name: str
    head: Task
    tasks: list[Task]                 # head first, then descendants in file order
    depends_on: list[Unit] = field(default_factory=list)   # explicit: skip if unmet
    after: list[Unit] = field(default_factory=list)        # wave graph: ordering only

    @property
    def title(self) -> str:
        return self.head.title

    @property
    def optional(self) -> bool:
        return self.head.optional

    @property
    def task_keys(self) -> list[str]:
        """Keys recorded in the state's ``completed`` list when the unit passes."""
        keys = [self.name]
        for task in self.tasks[1:]:
            if task.id:
                keys.append(task.id)
        return keys

    def required_tasks(self, include_optional: bool) -> list[Task]:
        if include_optional:
            return list(self.tasks)
        return [self.head] + [t for t in self.tasks[1:] if not _optional_in_unit(t, self.head)]

    def done_in_file(self, include_optional: bool) -> bool:
        return all(t.done for t in self.required_tasks(include_optional))


def _optional_in_unit(task: Task, head: Task) -> bool:
    """A subtask is optional if it or an ancestor below the head is starred."""
    node: Task | None = task
    while node is not None and node is not head:
        if node.optional:
            return True
        node = node.parent
    return False


def build_units(tf: TaskFile, granularity: str = "parent") -> list[Unit]:
    """Split *tf* into ordered dispatch units (see module docstring)."""
    candidates = [t for t in tf.tasks if not t.in_summary_section]
    if granularity == "leaf":
        heads = [t for t in candidates if not t.children]
        units = [Unit(name="", head=t, tasks=[t]) for t in heads]
    elif granularity == "parent":
        heads = [t for t in candidates if t.parent is None]
        units = [Unit(name="", head=t, tasks=[t, *t.descendants()]) for t in heads]
    else:  # pragma: no cover - guarded by the option's choices
        raise ValueError(f"unknown granularity {granularity!r}")
    _name_units(units)
    _link_dependencies(tf, units)
    return _order(tf, units)


def _name_units(units: list[Unit]) -> None:
    seen: dict[str, int] = {}
    for unit in units:
        base = unit.head.id or slugify(unit.head.title)
        count = seen.get(base, 0) + 1
        seen[base] = count
        unit.name = base if count == 1 else f"{base}[{count}]"


def _link_dependencies(tf: TaskFile, units: list[Unit]) -> None:
    owner: dict[int, Unit] = {}
    for unit in units:
        for task in unit.tasks:
            owner[id(task)] = unit
    by_id: dict[str, list[Task]] = {}
    for task in tf.tasks:
        if task.id:
            by_id.setdefault(task.id, []).append(task)

    def units_for(target: Task, unit: Unit) -> list[Unit]:
        dep_unit = owner.get(id(target))
        if dep_unit is not None:
            return [] if dep_unit is unit else [dep_unit]
        # A summary checklist item, or a parent in leaf mode: every unit below it.
        found = []
        for sub in target.descendants():
            sub_unit = owner.get(id(sub))
            if sub_unit is not None and sub_unit is not unit and sub_unit not in found:
                found.append(sub_unit)
        return found

    for unit in units:
        deps: list[Unit] = []
        after: list[Unit] = []
        for task in unit.tasks:
            for dep_id in task.depends:
                targets = by_id.get(dep_id)
                if not targets:
                    raise SpecError(tf.path, task.line,
                                    f"task {task.id or unit.name} depends on unknown task {dep_id!r}")
                for target in targets:
                    deps.extend(u for u in units_for(target, unit) if u not in deps)
            for dep_id in task.wave_depends:
                for target in by_id.get(dep_id, ()):
                    after.extend(u for u in units_for(target, unit) if u not in after and u not in deps)
        unit.depends_on = deps
        unit.after = after


def _order(tf: TaskFile, units: list[Unit]) -> list[Unit]:
    """Stable topological order: file order, except a unit waits for its deps.

    Wave-graph hints are honoured when they are consistent with the explicit
    dependencies; otherwise they are dropped (see the module docstring).
    """
    if any(u.after for u in units):
        ordered = _topological(units, lambda u: [*u.depends_on, *u.after])
        if ordered is not None:
            return ordered
    ordered = _topological(units, lambda u: u.depends_on)
    if ordered is not None:
        return ordered
    position = {id(u): i for i, u in enumerate(units)}
    done = {id(u) for u in _topological(units, lambda u: u.depends_on, partial=True) or []}
    stuck = [u for u in units if id(u) not in done]
    first = min(stuck, key=lambda u: position[id(u)])
    stuck_ids = {id(u) for u in stuck}
    cycle = " -> ".join(u.name for u in _find_cycle(first, stuck_ids))
    raise SpecError(tf.path, first.head.line, f"dependency cycle: {cycle}")


def _topological(units: list[Unit], edges: Callable[[Unit], list[Unit]],
                partial: bool = False) -> list[Unit] | None:
    """Kahn's algorithm with file position as priority; None on a cycle
    (or, with *partial*, the units that could be ordered)."""
    position = {id(u): i for i, u in enumerate(units)}
    indegree = {id(u): 0 for u in units}
    dependents: dict[int, list[Unit]] = {id(u): [] for u in units}
    for unit in units:
        for dep in edges(unit):
            indegree[id(unit)] += 1
            dependents[id(dep)].append(unit)
    ready = [(position[id(u)], u) for u in units if indegree[id(u)] == 0]
    heapq.heapify(ready)
    ordered: list[Unit] = []
    while ready:
        _, unit = heapq.heappop(ready)
        ordered.append(unit)
        for nxt in dependents[id(unit)]:
            indegree[id(nxt)] -= 1
            if indegree[id(nxt)] == 0:
                heapq.heappush(ready, (position[id(nxt)], nxt))
    if len(ordered) != len(units) and not partial:
        return None
    return ordered


def _find_cycle(start: Unit, stuck: set[int]) -> list[Unit]:
    """Walk stuck dependencies from *start* until a unit repeats: that is a cycle.

    Every stuck unit has at least one stuck dependency (else it would have
    been ordered), so the walk always closes.
    """
    path: list[Unit] = []
    index: dict[int, int] = {}
    node = start
    while id(node) not in index:
        index[id(node)] = len(path)
        path.append(node)
        node = next(d for d in node.depends_on if id(d) in stuck)
    return path[index[id(node)]:] + [node]
