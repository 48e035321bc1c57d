"""The pytest plugin: options, collection, the run's start and end, reporting.

Load it with ``-p seqharness.plugin`` (the ``seqharness`` command does).  It
is not registered as an auto-loaded ``pytest11`` entry point, so installing
seqharness never changes a plain ``pytest`` run.

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

from seqharness import faults, hookspec, interrupts
from seqharness.backends import BackendError, resolve_backend
from seqharness.errors import EXIT_FAILED, EXIT_HALTED, EXIT_USAGE
from seqharness.faults import fault
from seqharness.harness import Budget, Harness
from seqharness.items import HARNESS, SPEC_ERRORS, SpecFile, TaskItem
from seqharness.lock import LockedError
from seqharness.options import Settings, addoption
from seqharness.reporting import TaskHalted
from seqharness.state import StateError, now_iso

HALTED_KEY = "seqharness_halted"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspec)


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

    config.stash[HARNESS] = Harness(settings=settings, backend=None,
                                    budget=Budget(settings.max_iterations), say=say,
                                    hook=config.hook)
    _default_junit_logging(config)
    _default_maxfail(config)
    _configure_assignment(config)
    if config.pluginmanager.get_plugin("seqharness-report-guard") is None:
        config.pluginmanager.register(_ReportGuard(), "seqharness-report-guard")


def _configure_assignment(config: pytest.Config) -> None:
    from seqharness.assign import parse_map, parse_routes
    from seqharness.backends import registered_backends

    h = config.stash[HARNESS]
    try:
        h.routes = parse_routes(config.getini("seqharness_routes"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    h.assign_map = parse_map(h.settings.assign_map)
    h.known_backends = registered_backends()


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
        if isinstance(arg, str) and arg.replace(" ", "").startswith(f"{name}=") :
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
    from seqharness.cli import check_spec_path

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
    """Before the first task: backend check, locks, state repair, tmux."""
    config = session.config
    if config.option.collectonly or not session.items:
        return
    h = config.stash[HARNESS]
    task_items = [i for i in session.items if isinstance(i, TaskItem)]
    if not task_items:
        return
    if not h.settings.backend:
        raise pytest.UsageError("no backend: pass --backend (e.g. --backend \"cmd:my-agent {prompt_file}\") "
                                "or set seqharness_backend in the ini file")
    try:
        h.backend = resolve_backend(h.settings.backend)
        h.backend.check()
    except BackendError as exc:
        raise pytest.UsageError(str(exc)) from None
    from seqharness.runner import RunStopped, reconcile, refresh_after_lock
    from seqharness.taskfile import TaskFileError

    interrupts.install()  # SIGTERM now takes the Ctrl-C path (restored at unconfigure)

    runs = []
    for item in task_items:
        if item.spec_run not in runs:
            runs.append(item.spec_run)
    for sr in runs:
        try:
            sr.lock.acquire(wait=h.settings.wait_lock)
        except LockedError as exc:
            raise pytest.UsageError(f"{exc} (use --wait-lock SECONDS to wait for it)") from None
        except OSError as exc:
            raise pytest.UsageError(f"{sr.run_dir}: cannot create the lock: {exc.strerror}") from None
        fault("lock")
        # Collection read the state and tasks.md before the lock was ours.
        try:
            sr.state.reload()
            refresh_after_lock(sr)
        except (StateError, TaskFileError) as exc:
            raise pytest.UsageError(str(exc)) from None
        for note in sr.state.notes:
            h.say(f"seqharness: {note}")
        if h.settings.reset:
            sr.state.reset()
        data = sr.state.data
        if data.get("halted"):
            h.say(f"seqharness: resuming spec {sr.name} at halted task {data.get('halted_task')} "
                  f"(halted at {data.get('halted_at')})")
            data.update({"halted": False})
        if not data.get("started_at"):
            data["started_at"] = now_iso()
        data["completed_at"] = None
        try:
            sr.state.save()
        except OSError as exc:
            raise pytest.UsageError(f"{sr.state.path}: cannot write the state file: {exc.strerror}") from None
        try:
            reconcile(h, sr)
        except RunStopped as exc:
            raise pytest.UsageError(str(exc)) from None
        sr.prepared = True
    _start_tmux(h, runs)
    _start_live_view(h, config)


def _start_live_view(h: Harness, config: pytest.Config) -> None:
    from seqharness import live

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    tw = reporter._tw  # private: the writer pytest's own lines go through
    if live.wanted(h.settings.live, getattr(tw, "_file", None)):
        h.view = live.LiveView(h, tw)


def _start_tmux(h: Harness, runs: list[Any]) -> None:
    if not h.settings.tmux:
        return
    from seqharness.tmux import TmuxError, TmuxView, sanitize_session_name

    if not TmuxView.available():
        h.say("seqharness: tmux not found; running without tmux")
        return
    name = h.settings.tmux_session or f"sequential-{runs[0].name}"
    view = TmuxView(sanitize_session_name(name), socket_name=h.settings.tmux_socket,
                    keep_windows=h.settings.tmux_keep)
    try:
        view.start()
    except TmuxError as exc:
        h.say(f"seqharness: tmux unavailable ({exc}); running without tmux")
        return
    h.tmux = view
    h.say(f"seqharness: watch the agents live: {view.attach_command()}")


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


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    h = config.stash.get(HARNESS, None)
    if h is None:
        return
    if h.halted is not None:
        sr, unit, question = h.halted
        terminalreporter.section("HALTED: human input required", sep="=", yellow=True, bold=True)
        terminalreporter.write_line(f"task {unit.name} ({sr.tasks_path}) asked:")
        for line in (question or "").strip().splitlines()[-20:]:
            terminalreporter.write_line(f"    {line}")
        terminalreporter.write_line(f"Answer it, then run seqharness again: it resumes at task {unit.name}.")
    if h.budget_spent_at is not None:
        terminalreporter.write_line(
            f"seqharness: iteration budget spent at task {h.budget_spent_at} "
            f"(--max-iterations {h.settings.max_iterations}); remaining tasks were skipped", yellow=True)
    if h.tmux is not None:
        terminalreporter.write_line(f"seqharness: tmux session: {h.tmux.attach_command()}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    h = config.stash.get(HARNESS, None)
    if h is None:
        return
    for sr in h.specs.values():
        if not sr.prepared:
            continue
        try:
            if all(sr.state.is_completed(u.name) or u.done_in_file(h.settings.include_optional)
                   or (u.optional and not h.settings.include_optional) for u in sr.units):
                sr.state.data["completed_at"] = now_iso()
            # Every agent of this run has ended (run_attempt guarantees it), so
            # no process carries the token left for a next attempt: the next
            # run need not search /proc for it (reconcile writes a fresh one).
            sr.state.data["next_token"] = None
            sr.state.save()
        except OSError:
            pass
        sr.lock.release()
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


class _ReportGuard:
    """Wraps the end of the session: the last fault-injection point, and a
    JUnit file that cannot be written (a full disk) reported in one line
    instead of pytest's traceback."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, Any, Any]:
        fault("sessionfinish")
        _name_interrupted_testcases(session)
        if faults.active("junit-writing"):
            _fault_inside_junit_writer(session)
        try:
            return (yield)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            session.config.stash[HARNESS].say(f"seqharness: cannot write the report: {where}{exc.strerror or exc}")
            if session.exitstatus == 0:
                session.exitstatus = EXIT_HALTED
            return None


def _name_interrupted_testcases(session: pytest.Session) -> None:
    """Keep the JUnit file valid when the run stopped inside a task.

    pytest's JUnit writer opens a ``<testcase>`` when a test's setup is
    reported and names it only when its call or teardown is; a task that was
    running when the run was interrupted (Ctrl-C, SIGTERM, a stop on a disk
    fault) would be written as ``<testcase time="..."/>`` without the
    ``name`` the schema requires, and CI would reject the whole report.
    Such a testcase gets its name here, and an ``<error>`` saying it was
    interrupted.  (pytest internals: skipped if they are not as expected.)
    """
    try:
        import xml.etree.ElementTree as ET

        from _pytest.junitxml import mangle_test_address, xml_key
    except ImportError:
        return
    xml = session.config.stash.get(xml_key, None)
    for reporter in list(getattr(xml, "node_reporters_ordered", None) or []):
        attrs = getattr(reporter, "attrs", None)
        nodeid = getattr(reporter, "id", None)  # a str, or pytest 9.2's NodeId whose str() is one
        if not isinstance(attrs, dict) or "name" in attrs or nodeid is None:
            continue
        names = mangle_test_address(str(nodeid))
        prefix = [xml.prefix] if getattr(xml, "prefix", None) else []
        attrs.update({"classname": ".".join(prefix + names[:-1]), "name": names[-1]})
        reporter.append(ET.Element("error", message="interrupted: the run stopped while this task ran "
                                                     "(it runs again next time)"))  # also counted


def _fault_inside_junit_writer(session: pytest.Session) -> None:
    """Tests only (``SEQHARNESS_FAULT=junit-writing...``): reach that point
    while pytest's JUnit writer has the report open.  It asks for the
    suite's properties after truncating the file and before writing the XML."""
    try:
        from _pytest.junitxml import xml_key
    except ImportError:
        return
    xml = session.config.stash.get(xml_key, None)
    inner = getattr(xml, "_get_global_properties_node", None)
    if inner is None:
        return

    def reached() -> Any:
        fault("junit-writing")
        return inner()

    xml._get_global_properties_node = reached  # private: a test-only fault point

