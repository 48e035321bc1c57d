"""Collection: a ``tasks.md`` becomes a :class:`SpecFile` of :class:`TaskItem` s, and each item runs its unit.

Following pytest's "non-python tests" pattern, one item per dispatch unit,
named by :func:`seqharness.units.build_units` (``tasks.md::2.1``).  The item's
keywords include its title, so ``-k login`` selects by title as ``-k 2.1``
selects by id.

Problems in the file are not collection errors (which pytest reports as a
traceback and "Interrupted"): they are recorded and turned into one
``UsageError`` line naming the file and line, exit 4 (see
:mod:`seqharness.plugin`).
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest

from seqharness.attempt import UnitResult
from seqharness.errors import EXIT_HALTED, SpecError
from seqharness.faults import fault
from seqharness.harness import HARNESS, Harness, RunPlugin, SpecRun, find_workdir
from seqharness.lock import RunLock
from seqharness.outcome import HALTED, PASSED
from seqharness.reporting import TaskFailed, TaskHalted, TaskRepr, clean_text
from seqharness.state import StateError, StateStore
from seqharness.taskfile import TaskFileError
from seqharness.taskscan import load
from seqharness.units import Unit, build_units
from seqharness.writes import RunStopped

SPEC_ERRORS = pytest.StashKey[list[str]]()
_MARKERS = pytest.StashKey[set[str]]()


def record_error(config: pytest.Config, message: str) -> None:
    config.stash.setdefault(SPEC_ERRORS, []).append(message)


class SpecFile(pytest.File):
    """A spec's ``tasks.md``."""

    def collect(self) -> Iterator[pytest.Item]:
        config = self.config
        harness = config.stash[HARNESS]
        # Thousands of small linked objects and no garbage: the cycle collector
        # would only walk them again and again (10k tasks: --co 0.52 -> 0.34 s).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            try:
                spec_run = self._spec_run(harness)
            except (SpecError, TaskFileError, StateError, pytest.UsageError) as exc:
                record_error(config, str(exc))
                return
            items = [TaskItem.from_parent(self, name=unit.name, unit=unit, spec_run=spec_run)
                     for unit in spec_run.units]
        finally:
            if gc_was_enabled:
                gc.enable()
        yield from items

    def _spec_run(self, harness: Harness) -> SpecRun:
        path = Path(self.path)
        if path.resolve() in harness.specs:
            return harness.specs[path.resolve()]
        taskfile = load(path)
        fault("collect")
        rel = self.nodeid or path.name
        taskfile.path = rel
        if not taskfile.tasks:
            raise SpecError(rel, 1, "no tasks found (expected checkbox lines such as '- [ ] 1. Title')")
        units = build_units(taskfile, harness.settings.granularity)
        spec_dir = path.parent
        rootdir = Path(self.config.rootpath)
        workdir = Path(harness.settings.workdir).resolve() if harness.settings.workdir else find_workdir(
            spec_dir.resolve(), rootdir)
        run = SpecRun(
            spec_dir=spec_dir, tasks_path=path, taskfile=taskfile, units=units, workdir=workdir,
            settings=harness.settings.for_spec(spec_dir),
            store=StateStore(spec_dir.parent, spec_dir.name),
            lock=RunLock(spec_dir / ".seqharness" / "run.lock"), run_dir=spec_dir / ".seqharness",
        )
        harness.specs[path.resolve()] = run
        return run


class TaskItem(pytest.Item):
    """One dispatch unit, run by the agent backend."""

    def __init__(self, *, unit: Unit, spec_run: SpecRun, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unit = unit
        self.spec_run = spec_run
        self.result: UnitResult | None = None
        # -k matches substrings of these, case-insensitively.
        self.extra_keyword_matches.add(unit.title)
        for task in unit.tasks[1:]:
            if task.id:
                self.extra_keyword_matches.add(task.id)
        if unit.optional:
            self.add_marker("optional")
        declared = self.config.stash.setdefault(_MARKERS, set())
        for name in unit_markers(unit, spec_run.state.assignments.get(unit.name)):
            if name not in declared:  # so pytest does not warn about an unknown marker
                declared.add(name)
                self.config.addinivalue_line("markers", f"{name}: a task type or _Tags:_ value")
            self.add_marker(name)

    @property
    def harness(self) -> Harness:
        return self.config.stash[HARNESS]

    def reportinfo(self) -> tuple[Path, int, str]:
        # pytest prints this as a failure's heading: task text is untrusted, so no escapes.
        title = " ".join(clean_text(self.unit.title).split())
        return self.path, self.unit.head.line - 1, f"task {self.unit.name}: {title[:200]}"

    def setup(self) -> None:
        reason = self.config.hook.pytest_seqharness_unit_skip(spec=self.spec_run, unit=self.unit)
        if reason is not None:
            complete = reason.startswith("already complete")
            self.spec_run.status[self.unit.name] = "complete" if complete else "skipped"
            pytest.skip(reason)

    def runtest(self) -> None:
        from seqharness.runner import run_unit

        h = self.harness
        spec, unit = self.spec_run, self.unit
        # The agent talks to its own PTY; the harness's terminal is free for
        # the live view, so pytest's fd capture is suspended while it runs.
        capman = self.config.pluginmanager.getplugin("capturemanager")
        suspended: AbstractContextManager[None] = (
            capman.global_and_fixture_disabled() if capman is not None else nullcontext())
        try:
            with suspended:
                result = run_unit(h, spec, unit)
        except (RunStopped, OSError) as exc:
            # A file the run must write cannot be written: stop cleanly, one
            # line, exit 2 (what was recorded before stays; see seqharness.record).
            why = str(exc) if isinstance(exc, RunStopped) else (
                f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
            pytest.exit(f"seqharness: {why}; the run stopped (everything recorded before is kept; "
                        "run seqharness again once this is fixed)", returncode=EXIT_HALTED)
        self.result = result
        spec.status[unit.name] = result.outcome.kind
        if result.outcome.kind == PASSED:
            return
        last = result.last
        tail = clean_text(last.result.tail) if last is not None and last.result is not None else ""
        body = f"attempts: {len(result.attempts)}"
        if last is not None:
            body += f"\ntranscript: {spec.rel(last.transcript)}"
        details = clean_text(result.outcome.details or "")
        if details.strip():
            body += "\n--- last lines of the check's output ---\n" + details.rstrip()
        if tail.strip():
            body += "\n--- last lines of the agent's output ---\n" + tail.rstrip()
        if result.outcome.kind == HALTED:
            question = clean_text(result.outcome.question or "")
            first = " ".join(question.split())[:300]
            h.halted = (spec, unit, question)
            self.config.hook.pytest_seqharness_halt(spec=spec, unit=unit, question=question)
            raise TaskHalted(f"HALT: task {unit.name} needs human input: {first}",
                             f"question from the agent:\n{question}\n\n{body}")
        h.failures += 1
        raise TaskFailed(f"task {unit.name} failed: {result.outcome.reason}", body)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        exc = excinfo.value
        if isinstance(exc, TaskFailed):
            return TaskRepr(exc.headline, exc.body, str(self.path), self.unit.head.line)
        return super().repr_failure(excinfo)


_MARKER_UNSAFE = re.compile(r"\W+")


def unit_markers(unit: Unit, assignment: dict[str, Any] | None) -> list[str]:
    """Markers for ``-m``: the task's type (``_Type: ui_``, or the type an
    ``--assign-backend`` call gave it) and its ``_Tags: a, b_``, as identifiers."""
    words: list[str] = []
    for ann in unit.head.annotations:
        if ann.norm in ("type", "task type", "tags", "tag"):
            words.extend(re.split(r"[,\s]+", ann.value))
    if isinstance(assignment, dict) and isinstance(assignment.get("type"), str):
        words.append(assignment["type"])
    names: list[str] = []
    for word in words:
        name = _MARKER_UNSAFE.sub("_", word.strip().strip("`*").lower()).strip("_")
        if name and not name[0].isdigit() and name not in names:
            names.append(name)
    return names


class BuiltinSkips(RunPlugin):
    """Plugin ``seqharness.skips``: the ``trylast`` reasons not to run a unit."""

    @pytest.hookimpl(trylast=True)
    def pytest_seqharness_unit_skip(self, spec: SpecRun, unit: Unit) -> str | None:
        return skip_reason(self.h, spec, unit)


def skip_reason(h: Harness, spec: SpecRun, unit: Unit) -> str | None:
    """Why *unit* is not run now, or None to run it."""
    settings = spec.settings
    if spec.state.is_completed(unit.name):
        return "already complete (recorded in state)"
    if unit.done_in_file(settings.include_optional):
        return "already complete ([x] in tasks.md)"
    if unit.optional and not settings.include_optional:
        return "optional task (use --include-optional to run it)"
    if h.halted is not None:
        return f"run halted at task {h.halted[1].name}"
    if h.budget.exhausted:
        if h.budget_spent_at is None:
            h.budget_spent_at = unit.name
        return f"iteration budget spent (--max-iterations {h.settings.max_iterations})"
    for dep in unit.depends_on:
        if spec.state.is_completed(dep.name) or dep.done_in_file(settings.include_optional):
            continue
        status = spec.status.get(dep.name)
        if status in ("passed", "complete"):
            continue
        why = {"failed": "failed", "halted": "halted", "skipped": "was skipped",
               None: "was not run"}.get(status, status)
        return f"dependency {dep.name} not complete ({why})"
    return None


def check_spec_path(arg: str) -> str | None:
    """One-line problem with a spec path argument, or None if it looks usable."""
    path = Path(arg.split("::")[0])
    if not path.exists():
        return f"{path}: no such spec folder or tasks.md"
    if not os.access(path, os.R_OK):
        return f"{path}: permission denied"
    if path.is_dir():
        if (path / "tasks.md").exists() and not (path / "tasks.md").is_file():
            return f"{path / 'tasks.md'}: not a regular file"
        if (path / "tasks.md").is_file():
            if not os.access(path / "tasks.md", os.R_OK):
                return f"{path / 'tasks.md'}: permission denied"
            return None
        if path.name == "specs" or any(path.glob("*/tasks.md")) or any(path.glob(".kiro/specs/*/tasks.md")):
            return None
        return f"{path}: no tasks.md in this folder (expected a spec folder such as .kiro/specs/<feature>)"
    if path.is_file() and path.name != "tasks.md" and path.suffix == ".md":
        return f"{path}: not a tasks.md file"
    if path.name != "tasks.md":
        return f"{path}: not a spec folder or a tasks.md file"
    if not path.is_file():
        return f"{path}: not a regular file"
    return None
