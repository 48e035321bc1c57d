"""Box hygiene: seqharness owns the checkboxes of tasks.md, not the agent.

An agent that ticks other tasks' boxes (or unticks them, or rewrites their
lines) would make the plan lie: the next run would skip work never done.
Plugin ``seqharness.boxes`` (``-p no:seqharness.boxes`` turns it off) keeps
tasks.md as it was when the agent started, line by line for every task line,
reports what the agent changed, and puts those lines back before the
attempt is recorded (the state recorder then writes the unit's own box).
Lines that are not task lines (notes, text under a task) are left alone.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

import pytest

from seqharness.atomic import atomic_write
from seqharness.harness import RunPlugin
from seqharness.taskfile import TaskFileError
from seqharness.taskscan import parse

if TYPE_CHECKING:
    from seqharness.attempt import Attempt, UnitResult
    from seqharness.harness import SpecRun
    from seqharness.outcome import Outcome
    from seqharness.units import Unit


class BoxGuard(RunPlugin):
    """Plugin ``seqharness.boxes``."""

    def setup(self) -> None:
        self.before: dict[int, bytes] = {}            # id(attempt) -> tasks.md as the agent got it
        self.restored: dict[tuple[str, str], list[int]] = {}

    def pytest_seqharness_attempt_start(self, attempt: Attempt) -> None:
        # Called after the state recorder marked the unit [-]: the file as it is now.
        try:
            self.before[id(attempt)] = attempt.spec.tasks_path.read_bytes()
        except OSError:
            pass

    @pytest.hookimpl(tryfirst=True)
    def pytest_seqharness_attempt_logreport(self, attempt: Attempt, outcome: Outcome) -> None:
        before = self.before.pop(id(attempt), None)
        spec = attempt.spec
        if before is None:
            return
        try:
            now = spec.tasks_path.read_bytes()
        except OSError:
            return
        if now == before:
            return
        try:  # only when the agent wrote the file: parsed afresh, whatever happened before
            task_lines = {task.line - 1 for task in parse(before, str(spec.tasks_path)).tasks}
        except TaskFileError:
            return
        old, new = before.splitlines(keepends=True), now.splitlines(keepends=True)
        fixed = list(new)
        restored: list[int] = []
        untouchable: list[int] = []
        matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                continue
            hit = [i for i in range(i1, i2) if i in task_lines]
            if op == "replace" and i2 - i1 == j2 - j1:
                for i in hit:
                    fixed[j1 + i - i1] = old[i]
                    restored.append(i + 1)
            else:
                untouchable.extend(i + 1 for i in hit)
        if restored:
            try:
                atomic_write(spec.tasks_path, b"".join(fixed), durable=False)
            except OSError as exc:
                self.h.say(f"seqharness: cannot restore tasks.md lines the agent changed: {exc.strerror or exc}")
                return
            self.restored[spec.name, attempt.unit.name] = restored
            self.h.say(f"seqharness: task {attempt.unit.name}: the agent changed task lines of "
                       f"{spec.tasks_path} ({_lines(restored)}); restored them (seqharness owns the boxes)")
        if untouchable:
            self.h.say(f"seqharness: task {attempt.unit.name}: the agent added or removed lines around task "
                       f"lines of {spec.tasks_path} ({_lines(untouchable)}); not restored, please check")

    def pytest_seqharness_report_facts(self, spec: SpecRun, unit: Unit,
                                       result: UnitResult) -> list[tuple[str, str]] | None:
        lines = self.restored.get((spec.name, unit.name))
        if not lines:
            return None
        return [("tasks.md", f"restored {_lines(lines)}: the agent changed them")]


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    more = f" and {len(numbers) - 10} more" if len(numbers) > 10 else ""
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{more}"
