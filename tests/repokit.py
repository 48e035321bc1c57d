"""This repository's own test helpers, on top of :mod:`seqharness.testing`.

Our tests drive the richer fake agent of ``fixtures/fake_agent.py`` (hangs,
floods, SIGTERM-proof children, ...) instead of the kit's small
:mod:`seqharness.testagent`, and validate JUnit files against the vendored
schema.  ``import repokit`` works from every test module because pytest puts
``tests/`` on ``sys.path`` when it imports ``tests/conftest.py`` (rootdir-based
``prepend`` import mode, pytest's default).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from seqharness.testing import SpecProject, clean_env

REPO = Path(__file__).resolve().parent.parent
FAKE_AGENT = REPO / "fixtures" / "fake_agent.py"
SCHEMA = Path(__file__).resolve().parent / "data" / "junit-10.xsd"


def fake_backend(*extra: str) -> str:
    """``--backend`` value that runs fixtures/fake_agent.py with the prompt file."""
    parts = [sys.executable, str(FAKE_AGENT), *extra, "--prompt-file", "{prompt_file}"]
    return "cmd:" + " ".join(shlex.quote(p) if "{" not in p else p for p in parts)


def fake_agent_env(tmp_path: Path) -> dict[str, str]:
    """:func:`seqharness.testing.clean_env` plus the fake agent's log and state folder."""
    env = clean_env()
    env["FAKE_AGENT_LOG"] = str(tmp_path / "agent-calls.jsonl")
    env["FAKE_AGENT_STATE_DIR"] = str(tmp_path / "fake-agent-state")
    env.pop("FAKE_AGENT_BEHAVIOUR", None)
    return env


def use_fake_agent(project: SpecProject, tmp_path: Path) -> SpecProject:
    """Make fixtures/fake_agent.py *project*'s default backend (and its call log)."""
    project.env["FAKE_AGENT_LOG"] = str(tmp_path / "agent-calls.jsonl")
    project.env["FAKE_AGENT_STATE_DIR"] = str(tmp_path / "fake-agent-state")
    project.env.pop("FAKE_AGENT_BEHAVIOUR", None)
    project.agent_log = Path(project.env["FAKE_AGENT_LOG"])
    project.default_backend = fake_backend()
    return project


def validate_junit(path: Path) -> None:
    """Validate a JUnit file against pytest's/Jenkins' junit-10.xsd (vendored, MIT)."""
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(SCHEMA))
    schema.validate(str(path))
