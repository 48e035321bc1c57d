"""Red-green (``--tdd``): a task that needs tests must add one, and all must pass.

With ``--tdd`` (ini ``seqharness_tdd``, ``tdd = true`` in ``[tool.seqharness]``) seqharness counts the tests the
project's own test runner collects (``--tdd-collect``, default ``python -m
pytest --collect-only -q``, run in the workdir) before a task that needs
tests and again once its agent says done.  The task passes only if the count
grew and the whole suite passes (``--tdd-run``, default ``python -m pytest
-q``); otherwise it fails with "no new test: N tests collected before and
after the task" or "the tests do not pass", and a retry's prompt carries the
reason.  The JUnit facts show ``tests collected: 12 -> 14``.

A task needs tests when its unit's head task says so (``_Tests: yes_``; ``_Tests:
no_`` says it does not), when another task of the unit says ``_Tests: yes_``,
or when a task's title matches ``--tdd-titles`` (default: it starts with
"Write", "Add test" or "Test", any case).  Other tasks are not checked.

The count is taken before the unit's *first* attempt and kept for its retries
and for later runs (``<spec>/.seqharness/tdd.json``, dropped when the unit
passes, ignored with ``--reset``): a test written red in one attempt and made
green in the next counts as new.

Hook order: the ``pytest_seqharness_decide_outcome`` wrapper is ``trylast``,
so it runs inside every other wrapper, the ``--verify`` gate's included: the
cheap count comes first, and a task that added no test never runs the suite.
With ``--verify`` the verify command is the judge of "all pass" and
``--tdd-run`` is not run (the suite never runs twice).  The commands are split
like a shell would split them but never run by one; task text never reaches
them.  Plugin ``seqharness.tdd``; ``conftest_templates/tdd_red_green.py`` is a
simplified copy to change.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from seqharness.atomic import atomic_write
from seqharness.harness import RunPlugin
from seqharness.options import option_group
from seqharness.outcome import FAILED, PASSED, Outcome
from seqharness.processes import TOKEN_ENV
from seqharness.verify import Check, run_check

if TYPE_CHECKING:
    from seqharness.attempt import Attempt, UnitResult
    from seqharness.backends import Invocation
    from seqharness.harness import SpecRun
    from seqharness.outcome import AttemptResult
    from seqharness.prompt import PromptContext
    from seqharness.taskfile import Task
    from seqharness.units import Unit

DEFAULT_TITLES = r"(?i)^(?:write|add test|test)"
DEFAULT_COLLECT = "python -m pytest --collect-only -q"
DEFAULT_RUN = "python -m pytest -q"
DEFAULT_TIMEOUT = 900.0
NO_TESTS_COLLECTED = 5          # pytest's exit code when it collected nothing
BASELINE_FILE = "tdd.json"      # in <spec>/.seqharness

#: ``_Tests: VALUE_`` values that say a task needs no test; any other value says it does.
NEGATIVE = frozenset({"no", "n", "false", "none", "0", "off", "skip", "n/a", "na", "-"})
_ANNOTATION_KEYS = frozenset({"tests", "test"})

_SUMMARY = re.compile(r"\b(?:(?P<no>no)|(?P<n>\d+)(?:/\d+)?) tests? collected\b")
_ITEMS = re.compile(r"\bcollected (?P<n>\d+) items?\b(?:.*/ (?P<sel>\d+) selected)?")
_NUMBER = re.compile(r"^\s*(\d+)\s*$")
_NOT_AN_ID = (" ", "\t", "E ", "ERROR", "FAILED", "_", "=", "!", "---")
_TITLE_DECORATION = "*_` \t"


def count_tests(lines: Iterable[str]) -> int | None:
    """The number of tests a collect command's output reports, or None.

    In order: its last ``N tests collected`` line (pytest ``-q``; ``N/M tests
    collected (K deselected)`` counts N) or ``collected N items`` line (pytest
    without ``-q``); else the number of test ids it printed (lines holding
    ``::``); else its last line that is just a number (``... | wc -l``).
    """
    summary: int | None = None
    ids = 0
    number: int | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line.startswith("--- seqharness:"):
            continue
        found = _SUMMARY.search(line)
        if found:
            summary = 0 if found["no"] else int(found["n"])
            continue
        items = _ITEMS.search(line)
        if items:
            summary = int(items["sel"] or items["n"])
            continue
        if "::" in line and not line.startswith(_NOT_AN_ID):
            ids += 1
            continue
        bare = _NUMBER.match(line)
        if bare:
            number = int(bare.group(1))
    if summary is not None:
        return summary
    if ids:
        return ids
    return number


def needs_tests(unit: Unit, titles: re.Pattern[str] | None, *, include_optional: bool = False) -> bool:
    """Whether *unit* must add a test (see the module docstring)."""
    head_says = _says(unit.head)
    if head_says is not None:
        return head_says
    tasks = unit.required_tasks(include_optional)
    if any(_says(task) for task in tasks[1:]):
        return True
    if titles is None:
        return False
    return any(_says(task) is not False and titles.search(task.title.strip(_TITLE_DECORATION))
               for task in tasks)


def _says(task: Task) -> bool | None:
    """A task's own ``_Tests: ..._`` answer, None without one."""
    for annotation in task.annotations:
        if annotation.norm in _ANNOTATION_KEYS:
            return annotation.value.strip().strip(_TITLE_DECORATION).lower() not in NEGATIVE
    return None


def plural(n: int) -> str:
    return f"{n} test" if n == 1 else f"{n} tests"


@dataclass
class Count:
    """One run of the collect command and what it counted."""

    tests: int | None       # None: not known
    check: Check

    @property
    def clean(self) -> bool:
        """It ran to the end without collection errors and its count is known."""
        return (self.tests is not None and self.check.error is None
                and self.check.exit_code in (0, NO_TESTS_COLLECTED))

    def problem(self) -> str:
        if self.check.error is not None or self.check.exit_code not in (0, NO_TESTS_COLLECTED):
            return f"{self.check.command}: {self.check.summary()}"
        return (f"{self.check.command}: {self.check.summary()}, but its output has no "
                f"'N tests collected' line, no test ids (lines with '::') and no number")


@dataclass
class Tally:
    """What one unit's report shows: the count before its first attempt and after its last."""

    before: int | None
    after: int | None = None

    def fact(self) -> str:
        def show(n: int | None) -> str:
            return "?" if n is None else str(n)
        return f"{show(self.before)} -> {show(self.after)}"


def _split(option: str, command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise pytest.UsageError(f"{option} {command!r}: cannot split the command line: {exc}") from None
    if not argv:
        raise pytest.UsageError(f"{option} needs a command, e.g. {option} 'python -m pytest -q'")
    return argv


class RedGreen(RunPlugin):
    """Plugin ``seqharness.tdd``."""

    def pytest_addoption(self, parser: pytest.Parser) -> None:
        group = option_group(parser)    # so [tool.seqharness] tdd = true works too
        group.addoption("--tdd", dest="sh_tdd", action="store_true", default=False,
                        help="red-green: a task that needs tests (_Tests: yes_, or a title matching --tdd-titles) "
                             "passes only if the number of collected tests grew and all pass. ini: seqharness_tdd")
        group.addoption("--tdd-titles", dest="sh_tdd_titles", default=None, metavar="REGEX",
                        help=f"tasks whose title this regex is found in need tests (default {DEFAULT_TITLES!r}; "
                             "'' : only _Tests: yes_). ini: seqharness_tdd_titles")
        group.addoption("--tdd-collect", dest="sh_tdd_collect", default=None, metavar="CMD",
                        help=f"counts the tests, in the workdir (default {DEFAULT_COLLECT!r}); it prints "
                             "'N tests collected', one 'file::test' id per test, or a number. "
                             "ini: seqharness_tdd_collect")
        group.addoption("--tdd-run", dest="sh_tdd_run", default=None, metavar="CMD",
                        help=f"runs all tests after such a task (default {DEFAULT_RUN!r}); not run with "
                             "--verify, which then judges. ini: seqharness_tdd_run")
        group.addoption("--tdd-timeout", dest="sh_tdd_timeout", type=float, default=None, metavar="SECONDS",
                        help=f"longest run of each --tdd command (default {DEFAULT_TIMEOUT:g})")
        parser.addini("seqharness_tdd", "default --tdd", type="bool", default=False)
        parser.addini("seqharness_tdd_titles", "default --tdd-titles", default=None)
        parser.addini("seqharness_tdd_collect", "default --tdd-collect", default=None)
        parser.addini("seqharness_tdd_run", "default --tdd-run", default=None)

    def setup(self) -> None:
        opt = self.config.option
        self.baselines: dict[str, dict[str, int]] = {}     # spec name -> unit name -> tests before
        self.unknown: dict[tuple[str, str], Count] = {}     # a before-count that failed
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.on = bool(opt.sh_tdd or self.config.getini("seqharness_tdd"))
        self.titles: re.Pattern[str] | None = None
        self.collect: list[str] = []
        self.run: list[str] = []
        self.timeout = opt.sh_tdd_timeout if opt.sh_tdd_timeout is not None else DEFAULT_TIMEOUT
        if not self.on:
            return
        if self.timeout <= 0:
            raise pytest.UsageError(f"--tdd-timeout must be positive, got {self.timeout:g}")
        titles = opt.sh_tdd_titles if opt.sh_tdd_titles is not None else self._ini("seqharness_tdd_titles")
        titles = DEFAULT_TITLES if titles is None else titles
        if titles:
            try:
                self.titles = re.compile(titles)
            except re.error as exc:
                raise pytest.UsageError(f"--tdd-titles {titles!r}: not a regular expression: {exc}") from None
        self.collect = _split("--tdd-collect", opt.sh_tdd_collect or self._ini("seqharness_tdd_collect")
                              or DEFAULT_COLLECT)
        self.run = _split("--tdd-run", opt.sh_tdd_run or self._ini("seqharness_tdd_run") or DEFAULT_RUN)

    def _ini(self, name: str) -> str | None:
        value = self.config.getini(name)
        return value if isinstance(value, str) else None

    def _run_for(self, spec: SpecRun) -> list[str] | None:
        """``--tdd-run``, or None when the spec has a ``--verify`` gate: it runs next and judges."""
        if spec.settings.verify and self.config.pluginmanager.get_plugin("seqharness.verify") is not None:
            return None
        return self.run

    # -- the spec ------------------------------------------------------------------------------

    def pytest_seqharness_spec_start(self, spec: SpecRun) -> None:
        if not self.on:
            return
        for option, argv in (("--tdd-collect", self.collect), ("--tdd-run", self._run_for(spec))):
            if not argv:
                continue
            program = argv[0]
            found = (os.access(spec.workdir / program, os.X_OK) if os.sep in program
                     else shutil.which(program) is not None)
            if not found:
                raise pytest.UsageError(f"{option}: program {program!r} not found")
        path = spec.run_dir / BASELINE_FILE
        saved: dict[str, int] = {}
        if self.h.settings.reset:
            path.unlink(missing_ok=True)
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                saved = {str(k): int(v) for k, v in data.get("before", {}).items()}
            except (OSError, ValueError, TypeError, AttributeError):
                saved = {}      # none yet, or unreadable: count again
        self.baselines[spec.name] = saved

    def _save(self, spec: SpecRun) -> None:
        data = json.dumps({"before": self.baselines.get(spec.name, {})}, indent=1, sort_keys=True)
        try:
            spec.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(spec.run_dir / BASELINE_FILE, data.encode() + b"\n", durable=False)
        except OSError as exc:  # the count still holds for this run
            self.h.say_once(f"tdd-save:{spec.name}", f"seqharness: --tdd: cannot save "
                            f"{spec.run_dir / BASELINE_FILE}: {exc.strerror or exc}")

    def _applies(self, spec: SpecRun, unit: Unit) -> bool:
        return self.on and needs_tests(unit, self.titles, include_optional=spec.settings.include_optional)

    # -- one attempt ---------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_seqharness_build_prompt(self, spec: SpecRun, unit: Unit,
                                       context: PromptContext) -> Generator[None, str | None, str | None]:
        prompt = yield
        if prompt is None or not self._applies(spec, unit):
            return prompt
        return (prompt.rstrip("\n") + "\n- Red-green: this task must add at least one new test that "
                f"`{shlex.join(self.collect)}` collects, and every test must pass when you say done. "
                "Write the failing test first, then make it pass.\n")

    def pytest_seqharness_invocation(self, attempt: Attempt, invocation: Invocation) -> None:
        """Count before the agent is spawned (``attempt_start`` would be too late)."""
        spec, unit = attempt.spec, attempt.unit
        if not self._applies(spec, unit):
            return
        key = (spec.name, unit.name)
        saved = self.baselines.setdefault(spec.name, {})
        if unit.name in saved:
            _note(attempt.transcript, f"red-green: {plural(saved[unit.name])} collected before this task "
                                      f"(counted before its first attempt)")
        else:
            count = self._count(attempt)
            if count.tests is None:
                self.unknown[key] = count
            else:
                self.unknown.pop(key, None)
                saved[unit.name] = count.tests
                self._save(spec)
        self.tallies[key] = Tally(saved.get(unit.name))

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_seqharness_decide_outcome(self, attempt: Attempt,
                                         result: AttemptResult) -> Generator[None, Outcome | None, Outcome | None]:
        outcome = yield
        if outcome is None or outcome.kind != PASSED or not self._applies(attempt.spec, attempt.unit):
            return outcome
        key = (attempt.spec.name, attempt.unit.name)
        tally = self.tallies.setdefault(key, Tally(self.baselines.get(key[0], {}).get(key[1])))
        before = tally.before
        if before is None:
            failed = self.unknown.get(key)
            why = failed.problem() if failed is not None else "it was not counted"
            details = (failed.check.tail or None) if failed is not None else None
            return Outcome(FAILED, f"cannot count the tests before the task: {why}", details=details)
        count = self._count(attempt)
        tally.after = count.tests
        if not count.clean or count.tests is None:
            return Outcome(FAILED, f"cannot count the tests after the task: {count.problem()}",
                           details=count.check.tail or None)
        after = count.tests
        if after <= before:
            said = (f"{plural(before)} collected before and after the task" if after == before
                    else f"{plural(before)} collected before the task, {after} after")
            return Outcome(FAILED, f"no new test: {said}", details=(
                "The task is marked as needing tests (--tdd): add at least one new test that "
                f"`{shlex.join(self.collect)}` collects, make it pass, then say done."))
        grew = f"{before} -> {after} collected"
        run = self._run_for(attempt.spec)
        if run is None:         # --verify runs the tests next
            return Outcome(PASSED, f"{outcome.reason}; red-green: {grew}")
        check = run_check(run, cwd=attempt.spec.workdir, transcript=attempt.transcript,
                          timeout=self.timeout, env=_env(attempt))
        if not check.ok:
            return Outcome(FAILED, f"the tests do not pass ({grew}): {check.command}: {check.summary()}",
                           details=check.tail or None)
        return Outcome(PASSED, f"{outcome.reason}; red-green: {grew}, all pass ({check.summary()})")

    def pytest_seqharness_attempt_finish(self, attempt: Attempt, outcome: Outcome) -> None:
        if outcome.kind != PASSED:
            return
        saved = self.baselines.get(attempt.spec.name, {})
        if saved.pop(attempt.unit.name, None) is not None:
            self._save(attempt.spec)

    def pytest_seqharness_report_facts(self, spec: SpecRun, unit: Unit,
                                       result: UnitResult) -> list[tuple[str, str]] | None:
        tally = self.tallies.get((spec.name, unit.name))
        if tally is None:
            return None
        return [("tests collected", tally.fact())]

    def _count(self, attempt: Attempt) -> Count:
        transcript = attempt.transcript
        try:
            start = transcript.stat().st_size
        except OSError:
            start = 0
        check = run_check(self.collect, cwd=attempt.spec.workdir, transcript=transcript,
                          timeout=self.timeout, env=_env(attempt))
        tests: int | None = None
        if check.error is None:
            if check.exit_code == NO_TESTS_COLLECTED:
                tests = 0
            else:
                with open(transcript, "rb") as out:
                    out.seek(start)
                    tests = count_tests(line.decode("utf-8", "replace") for line in out)
        _note(transcript, f"red-green: {'?' if tests is None else plural(tests)} collected")
        return Count(tests, check)


def _env(attempt: Attempt) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)    # the outer run's item, not the project's
    env[TOKEN_ENV] = attempt.token          # a run killed now leaves nothing the next one cannot end
    return env


def _note(transcript: Path, text: str) -> None:
    try:
        with open(transcript, "ab") as out:
            out.write(f"--- seqharness: {text} ---\n".encode("utf-8", "replace"))
    except OSError:
        pass    # a courtesy line for the tmux window


__all__ = ["DEFAULT_COLLECT", "DEFAULT_RUN", "DEFAULT_TITLES", "Count", "RedGreen", "Tally",
           "count_tests", "needs_tests"]
