"""The pytest plugin: it registers seqharness's hooks and its built-in plugins.

Load it with ``-p seqharness.plugin`` (the ``seqharness`` command does).  It
is not an auto-loaded ``pytest11`` entry point, so installing seqharness
never changes a plain ``pytest`` run.  Like pytest's own features, each part
of a run is a plugin on the hooks of :mod:`seqharness.hookspec`, registered
here under a name that ``-p no:NAME`` blocks:

==========================  =====================================================
``seqharness.state``        the state file and checkboxes (crash-safe write order)
``seqharness.boxes``        restores task lines of tasks.md an agent changed
``seqharness.progress``     the progress log
``seqharness.tmux``         a tmux window per attempt
``seqharness.live``         the rich live view on a terminal
``seqharness.junit``        task facts in the JUnit file
``seqharness.reporting``    the built-in facts
``seqharness.prompt``       the built-in prompt (``trylast``)
``seqharness.routes``       ini routing rules (``tryfirst``)
``seqharness.assign``       LLM assignment (``trylast``)
``seqharness.backends``     ``cmd:`` and the built-in CLI profiles
``seqharness.outcome``      the backend's reading of an attempt (``trylast``)
``seqharness.verify``       ``--verify CMD``: the team's check after the agent says done
``seqharness.notify``       ``--notify-url`` / ``--notify-cmd`` on halt, failure, the end
``seqharness.tdd``          ``--tdd``: a test-writing task must add a passing test
``seqharness.git``          ``--git``: one commit per passed task on its own branch
``seqharness.skips``        the built-in reasons to skip a unit (``trylast``)
==========================  =====================================================

Only ``tasks.md`` files in a spec folder (``.../specs/<name>/tasks.md``) or
named on the command line are collected.  ``.kiro`` is a dot-folder, which
pytest does not recurse into, so a spec is run only when asked for by path.
"""

from __future__ import annotations

import gc
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from _pytest.terminal import TerminalReporter

from seqharness import hookspec, interrupts
from seqharness.backends import BackendError, BackendVerdict
from seqharness.collect import SPEC_ERRORS, BuiltinSkips, SpecFile, TaskItem, check_spec_path
from seqharness.errors import EXIT_FAILED, EXIT_HALTED, EXIT_USAGE
from seqharness.faults import fault
from seqharness.harness import HARNESS, Budget, Harness, SpecRun
from seqharness.lock import LockedError
from seqharness.options import Settings, addoption
from seqharness.reporting import TaskHalted
from seqharness.state import StateError
from seqharness.taskfile import TaskFileError
from seqharness.writes import RunStopped

HALTED_KEY = "seqharness_halted"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspec)
    _register_builtins(pluginmanager)


def pytest_addoption(parser: pytest.Parser) -> None:
    addoption(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "optional: an optional Kiro task (- [ ]*)")
    settings = Settings.from_config(config)

    def say(message: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(message)
        else:
            print(message)

    h = Harness(settings=settings, budget=Budget(settings.max_iterations), say=say, hook=config.hook)
    config.stash[HARNESS] = h
    _default_junit_logging(config)
    _default_maxfail(config)


def _register_builtins(pm: pytest.PytestPluginManager) -> None:
    """Register the built-in plugins now, with ``seqharness.plugin``: before any
    conftest.py, as pytest's own are, so a conftest's ``tryfirst``
    implementation runs before a built-in ``tryfirst`` one.  ``-p no:NAME``
    unregisters one (given before or after ``-p seqharness.plugin``)."""
    from seqharness import backends, prompt, reporting
    from seqharness.assign import Assignment
    from seqharness.boxes import BoxGuard
    from seqharness.gitcheckpoint import GitCheckpoints
    from seqharness.junit import JunitFacts
    from seqharness.live import LiveView
    from seqharness.notify import Notifier
    from seqharness.progress import ProgressPlugin
    from seqharness.record import Recorder
    from seqharness.routing import Routes
    from seqharness.tdd import RedGreen
    from seqharness.tmuxview import TmuxPlugin
    from seqharness.verify import VerifyGate

    builtins: list[tuple[str, object]] = [
        ("seqharness.backends", backends),
        ("seqharness.outcome", BackendVerdict()),
        ("seqharness.tdd", RedGreen()),
        ("seqharness.verify", VerifyGate()),
        ("seqharness.notify", Notifier()),
        ("seqharness.skips", BuiltinSkips()),
        ("seqharness.prompt", prompt),
        ("seqharness.routes", Routes()),
        ("seqharness.assign", Assignment()),
        ("seqharness.reporting", reporting),
        ("seqharness.state", Recorder()),
        ("seqharness.git", GitCheckpoints()),
        ("seqharness.boxes", BoxGuard()),
        ("seqharness.progress", ProgressPlugin()),
        ("seqharness.junit", JunitFacts()),
        ("seqharness.live", LiveView()),
        ("seqharness.tmux", TmuxPlugin()),
    ]
    for name, plugin in builtins:
        if not pm.has_plugin(name) and not pm.is_blocked(name):
            pm.register(plugin, name)


def _default_junit_logging(config: pytest.Config) -> None:
    """Put per-task facts into JUnit ``<system-out>`` unless the user chose otherwise.

    pytest's default ``junit_logging=no`` would drop them; ``<properties>``
    inside a testcase is invalid in pytest's default xunit2 family.  pytest
    reads the value once through ``getini`` (cached), so seeding the cache
    before its own ``pytest_configure`` runs sets our default without
    overriding an explicit ini or ``-o`` value.
    """
    if config.getini("junit_logging") == "no" and not _explicit_ini(config, "junit_logging"):
        config._inicache["junit_logging"] = "system-out"  # private: see the docstring


def _explicit_ini(config: pytest.Config, name: str) -> bool:
    for arg in config.invocation_params.args:
        if isinstance(arg, str) and arg.replace(" ", "").startswith(f"{name}="):
            return True
    inicfg = getattr(config, "_inicfg", None)  # set in a config file or by -o
    return inicfg is not None and name in inicfg


def _default_maxfail(config: pytest.Config) -> None:
    """A sequential plan should not build on a broken step: ``--maxfail`` defaults to 1."""
    args = [a for a in config.invocation_params.args if isinstance(a, str)]
    explicit = any(a in ("-x", "--exitfirst") or a.startswith("--maxfail") for a in args)
    if not explicit and not config.option.maxfail:
        config.option.maxfail = 1


def _is_spec_tasks_file(file_path: Path, config: pytest.Config) -> bool:
    if file_path.name != "tasks.md":
        return False
    if file_path.parent.parent.name == "specs":
        return True
    for arg in config.args:
        arg_path = Path(str(arg).split("::")[0]).resolve()
        if arg_path == file_path.resolve() or arg_path == file_path.parent.resolve():
            return True
    return False


def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``--strict-spec-paths`` (the ``seqharness`` command), check the paths first."""
    config = session.config
    if not config.option.sh_strict_paths:
        return
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        raise pytest.UsageError("give a spec folder, e.g. seqharness .kiro/specs/my-feature")
    for arg in config.args:
        problem = check_spec_path(str(arg))
        if problem:
            raise pytest.UsageError(problem)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _is_spec_tasks_file(file_path, parent.config):
        return SpecFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    errors = config.stash.get(SPEC_ERRORS, [])
    if errors:
        raise pytest.UsageError(errors[0])


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    # The collected tree lives until the end: move it out of the collector's
    # way, so the per-task garbage collections do not walk it again.
    gc.freeze()
    for arg in config.args:
        path = Path(str(arg).split("::")[0])
        if path.is_dir() and not (path / "tasks.md").exists() and _looks_like_spec_dir(path):
            raise pytest.UsageError(f"{path}: no tasks.md in this spec folder")


def _looks_like_spec_dir(path: Path) -> bool:
    return any((path / name).exists() for name in ("requirements.md", "design.md", "bugfix.md"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Before the first task: the backends, then each spec's lock, state and start hooks."""
    config = session.config
    if config.option.collectonly or not session.items:
        return
    h = config.stash[HARNESS]
    task_items = [i for i in session.items if isinstance(i, TaskItem)]
    if not task_items:
        return
    config.hook.pytest_seqharness_add_backends(backends=h.backends)
    runs: list[SpecRun] = []
    for item in task_items:
        if item.spec_run not in runs:
            runs.append(item.spec_run)
    try:
        if h.settings.backend:
            h.backend = h.backends.resolve(h.settings.backend)
            h.backend.check()
        for spec in runs:
            if spec.settings.backend and spec.settings.backend != h.settings.backend:
                spec.backend = h.backends.resolve(spec.settings.backend)
                spec.backend.check()
            elif h.backend is None:
                raise pytest.UsageError(
                    "no backend: pass --backend (e.g. --backend \"cmd:my-agent {prompt_file}\"), or set "
                    "backend in [tool.seqharness] of pyproject.toml")
    except BackendError as exc:
        raise pytest.UsageError(str(exc)) from None
    interrupts.install()  # SIGTERM now takes the Ctrl-C path (restored at unconfigure)
    for spec in runs:
        _start_spec(h, spec)


def _start_spec(h: Harness, spec: SpecRun) -> None:
    from seqharness.recovery import refresh_after_lock

    try:
        spec.lock.acquire(wait=h.settings.wait_lock)
    except LockedError as exc:
        raise pytest.UsageError(f"{exc} (use --wait-lock SECONDS to wait for it)") from None
    except OSError as exc:
        raise pytest.UsageError(f"{spec.run_dir}: cannot create the lock: {exc.strerror}") from None
    fault("lock")
    # Collection read the state and tasks.md before the lock was ours.
    try:
        spec.store.reload()
        refresh_after_lock(spec)
    except (StateError, TaskFileError) as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        h.hook.pytest_seqharness_spec_start(spec=spec)
    except RunStopped as exc:
        raise pytest.UsageError(str(exc)) from None
    spec.prepared = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, TaskHalted):
        setattr(report, HALTED_KEY, True)
    if report.skipped and isinstance(report.longrepr, tuple) and isinstance(item, TaskItem):
        # Point skip reasons at the task's line, not at seqharness's source.
        report.longrepr = (str(item.path), item.unit.head.line, report.longrepr[2])
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, Any] | None:
    if getattr(report, HALTED_KEY, False):
        return "halted", "H", ("HALTED", {"yellow": True, "bold": True})
    return None


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    h = item.config.stash.get(HARNESS, None)
    if h is not None and h.halted is not None:
        item.session.shouldstop = f"HALT at task {h.halted[1].name}: human input required"


def pytest_terminal_summary(terminalreporter: TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    h = config.stash.get(HARNESS, None)
    if h is None:
        return
    if h.halted is not None:
        spec, unit, question = h.halted
        terminalreporter.section("HALTED: human input required", sep="=", yellow=True, bold=True)
        terminalreporter.write_line(f"task {unit.name} ({spec.tasks_path}) asked:")
        for line in (question or "").strip().splitlines()[-20:]:
            terminalreporter.write_line(f"    {line}")
        terminalreporter.write_line(f"Answer it, then run seqharness again: it resumes at task {unit.name}.")
    if h.budget_spent_at is not None:
        terminalreporter.write_line(
            f"seqharness: iteration budget spent at task {h.budget_spent_at} "
            f"(--max-iterations {h.settings.max_iterations}); remaining tasks were skipped", yellow=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    h = config.stash.get(HARNESS, None)
    if h is None:
        return
    for spec in h.specs.values():
        if not spec.prepared:
            continue
        try:
            h.hook.pytest_seqharness_spec_finish(spec=spec, exitstatus=int(session.exitstatus))
        finally:
            spec.lock.release()
    if exitstatus == EXIT_USAGE:
        return
    if h.halted is not None:
        session.exitstatus = EXIT_HALTED
    elif h.budget_spent_at is not None and session.exitstatus == 0:
        session.exitstatus = EXIT_FAILED


def pytest_keyboard_interrupt(excinfo: Any) -> None:
    """Ctrl-C, SIGTERM or a stop on a disk fault: the run is ending.  Further
    Ctrl-C / SIGTERM must not cut the cleanup (state, JUnit) short."""
    interrupts.stopping()


def pytest_unconfigure(config: pytest.Config) -> None:
    interrupts.restore()
