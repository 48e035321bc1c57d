"""conftest.py template: choose the backend per task, deterministically.

Tasks whose title mentions the UI go to one agent, the rest to ``--backend``.
A task may also say ``_Type: ui_`` in its details.  The same can be written
without code as ini routing rules::

    [pytest]
    seqharness_routes =
        title:/page|screen|css|style/ = gemini
        type:ui = gemini
"""

import re

import pytest

UI_WORDS = re.compile(r"\b(page|screen|component|css|style|layout)\b", re.IGNORECASE)  # EDIT
UI_BACKEND = "gemini"                                                                    # EDIT


@pytest.hookimpl(tryfirst=True)  # EDIT: drop tryfirst to let the ini routes decide first
def pytest_seqharness_choose_backend(spec, unit):
    """Return a --backend value for this dispatch unit, or None for the default."""
    types = [a.value.strip().lower() for a in unit.head.annotations if a.norm == "type"]
    if "ui" in types or UI_WORDS.search(unit.title):
        return UI_BACKEND
    return None
