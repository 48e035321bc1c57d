"""JUnit facts: what a CI reader sees of each task in the JUnit XML file.

Plugin ``seqharness.junit``.  pytest's own ``junitxml`` writes the file; this
plugin adds every answer of ``pytest_seqharness_report_facts`` to the task's
``<system-out>`` (valid against junit-10.xsd in pytest's default xunit2) and,
under ``junit_family=xunit1`` (Jenkins), as testcase ``<properties>``.  It
also keeps the file valid when the run stops inside a task, and turns a
report that cannot be written (a full disk) into one line instead of a
traceback.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from seqharness import faults
from seqharness.errors import EXIT_HALTED
from seqharness.faults import fault
from seqharness.harness import RunPlugin


class JunitFacts(RunPlugin):
    def setup(self) -> None:
        self.xunit1 = self.config.getini("junit_family") == "xunit1"

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        from seqharness.collect import TaskItem

        if call.when != "call" or not isinstance(item, TaskItem) or item.result is None:
            return report
        answers = item.config.hook.pytest_seqharness_report_facts(
            spec=item.spec_run, unit=item.unit, result=item.result)
        facts = [fact for answer in answers if answer for fact in answer]
        if facts:
            # On the item: pytest's JUnit writer reads them from the teardown report.
            item.add_report_section("call", "stdout", "".join(f"{name}: {value}\n" for name, value in facts))
            if self.xunit1:
                item.user_properties.extend((name.replace(" ", "_"), value) for name, value in facts)
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        fault("sessionfinish")
        _name_interrupted_testcases(session)
        if faults.active("junit-writing"):
            _fault_inside_junit_writer(session)
        try:
            return (yield)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            self.h.say(f"seqharness: cannot write the report: {where}{exc.strerror or exc}")
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
    if xml is None:
        return
    prefix = [xml.prefix] if xml.prefix else []
    for reporter in list(getattr(xml, "node_reporters_ordered", None) or []):
        attrs = getattr(reporter, "attrs", None)
        nodeid = getattr(reporter, "id", None)  # a str, or pytest 9.2's NodeId whose str() is one
        if not isinstance(attrs, dict) or "name" in attrs or nodeid is None:
            continue
        names = [str(n) for n in mangle_test_address(str(nodeid))]
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

    setattr(xml, "_get_global_properties_node", reached)  # noqa: B010 - private: a test-only fault point

