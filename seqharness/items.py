"""Collection: a ``tasks.md`` becomes a :class:`SpecFile` of :class:`TaskItem` s.

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
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from seqharness.errors import EXIT_HALTED, SpecError
from seqharness.faults import fault
from seqharness.harness import Harness, SpecRun, find_workdir
from seqharness.lock import RunLock
from seqharness.progress import ProgressLog
from seqharness.reporting import TaskFailed, TaskHalted, TaskRepr, clean_text
from seqharness.state import StateError, StateStore
from seqharness.taskfile import TaskFileError, load
from seqharness.units import Unit, build_units

SPEC_ERRORS = pytest.StashKey[list[str]]()
HARNESS = pytest.StashKey[Harness]()


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
            except (SpecError, TaskFileError, StateError) as exc:
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
        specs_dir = spec_dir.parent
        run = SpecRun(
            spec_dir=spec_dir, tasks_path=path, taskfile=taskfile, units=units, workdir=workdir,
            state=StateStore(specs_dir, spec_dir.name), progress=ProgressLog(specs_dir),
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
        # -k matches substrings of these, case-insensitively.
        self.extra_keyword_matches.add(unit.title)
        for task in unit.tasks[1:]:
            if task.id:
                self.extra_keyword_matches.add(task.id)
        if unit.optional:
            self.add_marker("optional")

    @property
    def harness(self) -> Harness:
        return self.config.stash[HARNESS]

    def reportinfo(self) -> tuple[Path, int, str]:
        # pytest prints this as a failure's heading: task text is untrusted, so no escapes.
        title = " ".join(clean_text(self.unit.title).split())
        return self.path, self.unit.head.line - 1, f"task {self.unit.name}: {title[:200]}"

    def setup(self) -> None:
        reason = skip_reason(self.harness, self.spec_run, self.unit)
        if reason is not None:
            if reason.startswith("already complete"):
                self.spec_run.status[self.unit.name] = "complete"
            else:
                self.spec_run.status[self.unit.name] = "skipped"
            pytest.skip(reason)

    def runtest(self) -> None:
        from seqharness.outcome import HALTED, PASSED
        from seqharness.runner import run_unit

        h = self.harness
        # The agent talks to its own PTY; the harness's terminal is free for
        # the live view, so pytest's fd capture is suspended while it runs.
        capman = self.config.pluginmanager.getplugin("capturemanager")
        suspended = capman.global_and_fixture_disabled() if capman is not None else nullcontext()
        from seqharness.runner import RunStopped

        try:
            with suspended:
                result = run_unit(h, self.spec_run, self.unit)
        except (RunStopped, OSError) as exc:
            # A file the run must write cannot be written: stop cleanly, one
            # line, exit 2 (what was recorded before stays; see runner).
            why = str(exc) if isinstance(exc, RunStopped) else (
                f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
            pytest.exit(f"seqharness: {why}; the run stopped (everything recorded before is kept; "
                        "run seqharness again once this is fixed)", returncode=EXIT_HALTED)
        self.spec_run.status[self.unit.name] = result.outcome.kind
        last = result.last
        facts = [
            f"task: {self.unit.name}: {clean_text(self.unit.title)}",
            f"outcome: {result.outcome.kind}: {result.outcome.reason}",
            f"backend: {result.backend.describe() if result.backend else '-'}",
            f"attempts: {len(result.attempts)}",
        ]
        if last is not None:
            facts.append(f"exit code: {last.result.exit_status}")
            facts.append(f"duration: {last.result.duration:.2f}s")
            facts.append(f"transcript: {self.spec_run.rel(last.transcript)}")
        self.add_report_section("call", "stdout", "\n".join(facts) + "\n")
        if self.config.getini("junit_family") == "xunit1":
            self.user_properties.extend([
                ("backend", result.backend.describe() if result.backend else "-"),
                ("attempts", str(len(result.attempts))),
                ("exit_code", str(last.result.exit_status if last else "")),
                ("transcript", self.spec_run.rel(last.transcript) if last else ""),
            ])
        if result.outcome.kind == PASSED:
            return
        tail = clean_text(last.result.tail) if last is not None else ""
        body = f"attempts: {len(result.attempts)}"
        if last is not None:
            body += f"\ntranscript: {self.spec_run.rel(last.transcript)}"
        if tail.strip():
            body += "\n--- last lines of the agent's output ---\n" + tail.rstrip()
        if result.outcome.kind == HALTED:
            question = clean_text(result.outcome.question or "")
            first = " ".join(question.split())[:300]
            h.halted = (self.spec_run, self.unit, question)
            raise TaskHalted(f"HALT: task {self.unit.name} needs human input: {first}",
                             f"question from the agent:\n{question}\n\n{body}")
        h.failures += 1
        raise TaskFailed(f"task {self.unit.name} failed: {result.outcome.reason}", body)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        exc = excinfo.value
        if isinstance(exc, TaskFailed):
            return TaskRepr(exc.headline, exc.body, str(self.path), self.unit.head.line)
        return super().repr_failure(excinfo)


def skip_reason(h: Harness, sr: SpecRun, unit: Unit) -> str | None:
    """Why *unit* is not run now, or None to run it."""
    settings = h.settings
    if sr.state.is_completed(unit.name):
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
        return f"iteration budget spent (--max-iterations {settings.max_iterations})"
    for dep in unit.depends_on:
        if sr.state.is_completed(dep.name) or dep.done_in_file(settings.include_optional):
            continue
        status = sr.status.get(dep.name)
        if status in ("passed", "complete"):
            continue
        why = {"failed": "failed", "halted": "halted", "skipped": "was skipped",
               None: "was not run"}.get(status, status)
        return f"dependency {dep.name} not complete ({why})"
    return None
