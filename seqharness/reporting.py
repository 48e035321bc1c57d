"""How a task's result looks in pytest's reports and in JUnit XML.

* A failure's ``longrepr`` is :class:`TaskRepr`: its ``reprcrash.message`` is
  one line (JUnit's ``message`` attribute, the ``-ra`` summary), its text is the
  reason plus the transcript's tail (the JUnit element text).
* A halt stays ``failed`` for pytest and JUnit (their writers know only
  passed, failed and skipped) but is marked on the report and shown as
  ``HALTED`` / ``H``; its message starts with ``HALT:`` and carries the
  agent's question, so a person reading a CI report recognises it.
* Per-task facts (backend, attempts, exit code, transcript) are the first
  answer of ``pytest_seqharness_report_facts`` (this module is plugin
  ``seqharness.reporting``); :mod:`seqharness.junit` writes every answer to
  the JUnit file.

Agent output is stripped of ANSI escapes before it reaches a report; pytest's
JUnit writer then escapes any character XML forbids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from _pytest._io import TerminalWriter

from seqharness.signals import strip_ansi

if TYPE_CHECKING:
    from seqharness.attempt import UnitResult
    from seqharness.harness import SpecRun
    from seqharness.units import Unit

_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def clean_text(text: str) -> str:
    """ANSI escapes and XML-forbidden control characters removed."""
    return _XML_FORBIDDEN.sub("", strip_ansi(text).replace("\r\n", "\n").replace("\r", "\n"))


@dataclass
class CrashLine:
    """Duck-types pytest's ReprFileLocation: what JUnit and ``-ra`` read."""

    path: str
    lineno: int
    message: str


class TaskRepr:
    """A task failure or halt as pytest shows it."""

    def __init__(self, headline: str, body: str, path: str, lineno: int) -> None:
        self.headline = clean_text(headline).splitlines()[0] if headline.strip() else "failed"
        self.body = clean_text(body)
        self.reprcrash = CrashLine(path, lineno, self.headline)
        self.sections: list[tuple[str, str, str]] = []

    def __str__(self) -> str:
        return f"{self.headline}\n{self.body}".rstrip() + "\n"

    def toterminal(self, tw: TerminalWriter) -> None:
        tw.line(self.headline, red=True, bold=True)
        if self.body:
            for line in self.body.rstrip().splitlines():
                tw.line(line)
        for name, content, sep in self.sections:
            tw.sep(sep, name)
            tw.line(content)

    def addsection(self, name: str, content: str, sep: str = "-") -> None:
        self.sections.append((name, content, sep))


class TaskFailed(Exception):
    """Raised by a task item whose unit did not pass."""

    def __init__(self, headline: str, body: str) -> None:
        super().__init__(headline)
        self.headline = headline
        self.body = body


class TaskHalted(TaskFailed):
    """The agent asked for a human: the run stops (exit 2)."""


@pytest.hookimpl(tryfirst=True)
def pytest_seqharness_report_facts(spec: SpecRun, unit: Unit, result: UnitResult) -> list[tuple[str, str]]:
    facts = [
        ("task", f"{unit.name}: {clean_text(unit.title)}"),
        ("outcome", f"{result.outcome.kind}: {result.outcome.reason}"),
        ("backend", result.backend.describe() if result.backend else "-"),
        ("attempts", str(len(result.attempts))),
    ]
    last = result.last
    if last is not None:
        exit_status = last.result.exit_status if last.result is not None else None
        facts.append(("exit code", "" if exit_status is None else str(exit_status)))
        facts.append(("duration", f"{last.elapsed:.2f}s"))
        facts.append(("transcript", spec.rel(last.transcript)))
    return facts
