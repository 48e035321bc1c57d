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

Units are ordered by dependencies (``_Depends: 1.2_``, ``depends on: 1``, the
wave graph), otherwise by file order; a cycle or a dependency on an unknown id
is a :class:`SpecError` naming the line.
"""

from __future__ import annotations

import heapq
import re
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
    depends_on: list["Unit"] = field(default_factory=list)

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
    for unit in units:
        deps: list[Unit] = []
        for task in unit.tasks:
            for dep_id in task.depends:
                targets = by_id.get(dep_id)
                if not targets:
                    raise SpecError(tf.path, task.line,
                                    f"task {task.id or unit.name} depends on unknown task {dep_id!r}")
                for target in targets:
                    dep_unit = owner.get(id(target))
                    if dep_unit is None:
                        # Depending on a summary checklist item or on a parent in
                        # leaf mode: depend on every unit below that task.
                        for sub in target.descendants():
                            sub_unit = owner.get(id(sub))
                            if sub_unit is not None and sub_unit is not unit and sub_unit not in deps:
                                deps.append(sub_unit)
                        continue
                    if dep_unit is not unit and dep_unit not in deps:
                        deps.append(dep_unit)
        unit.depends_on = deps


def _order(tf: TaskFile, units: list[Unit]) -> list[Unit]:
    """Stable topological order: file order, except a unit waits for its deps."""
    position = {id(u): i for i, u in enumerate(units)}
    indegree = {id(u): len(u.depends_on) for u in units}
    dependents: dict[int, list[Unit]] = {id(u): [] for u in units}
    for unit in units:
        for dep in unit.depends_on:
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
    if len(ordered) != len(units):
        stuck = [u for u in units if indegree[id(u)] > 0]
        first = min(stuck, key=lambda u: u.head.line)
        stuck_ids = {id(u) for u in stuck}
        cycle = " -> ".join(u.name for u in _find_cycle(first, stuck_ids))
        raise SpecError(tf.path, first.head.line, f"dependency cycle: {cycle}")
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
