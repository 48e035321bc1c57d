"""Hook specifications seqharness adds to pytest (``pytest_seqharness_*``).

The set is small on purpose and grows with the features that need it; names
start with ``pytest_`` so pytest's plugin manager accepts them.
"""

from __future__ import annotations

import pytest


@pytest.hookspec(firstresult=True)
def pytest_seqharness_build_prompt(unit, context):  # type: ignore[no-untyped-def]
    """Return the prompt text for *unit* instead of the built-in one, or None."""


@pytest.hookspec(firstresult=True)
def pytest_seqharness_assign_backend(unit, spec_name):  # type: ignore[no-untyped-def]
    """Return a ``--backend`` value for *unit* (e.g. ``"cmd:my-ui-agent {prompt_file}"``),
    or None to leave the choice to routing rules, ``--assign-backend`` or ``--backend``."""
