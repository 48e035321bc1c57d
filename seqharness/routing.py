"""Routing rules: which backend runs a task, decided from the ini file, no LLM needed.

``seqharness_routes`` in the ini file, one rule per line: ``type:ui = gemini``
(the type comes from a ``_Type: ui_`` annotation of the task) or
``title:/login|auth/ = claude``.  The rules are the ``tryfirst`` answer of
``pytest_seqharness_choose_backend``, so they come before a conftest.py's
own routing (unless it is ``tryfirst`` too) and before LLM assignment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from seqharness.units import Unit

if TYPE_CHECKING:
    from seqharness.harness import SpecRun


@dataclass
class Route:
    kind: str          # "type" | "title"
    pattern: str
    backend: str

    def matches(self, unit: Unit) -> bool:
        if self.kind == "type":
            return unit_type(unit) == self.pattern.lower()
        return re.search(self.pattern, unit.title, re.IGNORECASE) is not None


_ROUTE = re.compile(r"^(type|title):(.+?)\s+=\s+(\S.*)$")


def parse_routes(lines: list[str]) -> list[Route]:
    """``type:ui = gemini`` / ``title:/login|auth/ = claude``; ValueError names the bad line.

    The first `` = `` (with spaces) separates the rule from the backend, so a
    backend value may itself contain ``=`` (``cmd:agent --prompt-file={prompt_file}``).
    """
    routes = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ROUTE.match(line)
        if match is None:
            raise ValueError(f"seqharness_routes: cannot read {line!r} "
                             "(expected 'type:ui = gemini' or 'title:/regex/ = claude')")
        kind, pattern, backend = match.group(1), match.group(2).strip(), match.group(3).strip()
        if kind == "title":
            pattern = pattern.strip("/")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"seqharness_routes: bad regex in {line!r}: {exc}") from None
        routes.append(Route(kind, pattern, backend))
    return routes


def unit_type(unit: Unit) -> str | None:
    """The ``_Type: ui_`` annotation of the unit's head task, if any."""
    for ann in unit.head.annotations:
        if ann.norm in ("type", "task type"):
            return ann.value.strip().lower()
    return None



class Routes:
    """Plugin ``seqharness.routes``: the ini rules, first match wins."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def pytest_configure(self, config: pytest.Config) -> None:
        try:
            self.routes = parse_routes(config.getini("seqharness_routes"))
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None

    @pytest.hookimpl(tryfirst=True)
    def pytest_seqharness_choose_backend(self, spec: SpecRun, unit: Unit) -> str | None:
        for route in self.routes:
            if route.matches(unit):
                return route.backend
        return None
