"""Shared fixtures: real specs on disk, the real ``seqharness`` command, real tmux.

They are the test kit users get (:mod:`seqharness.testing`), with our richer
fake agent (``fixtures/fake_agent.py``) as the default backend; helpers that
test modules import live in ``tests/repokit.py`` and ``seqharness.testing``.

Nothing here mocks pexpect or tmux.  Each test that uses tmux gets a private
server (``tmux -L <unique name>``) that is killed at teardown, so tests never
touch a user's tmux and never leak servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from repokit import use_fake_agent

from seqharness.testing import SpecProject

pytest_plugins = ["seqharness.testing"]


@pytest.fixture
def project(seqharness_project: SpecProject, tmp_path: Path) -> SpecProject:
    """A project without tmux (CODEAGENT_NO_TMUX=1): the fast default for e2e tests."""
    return use_fake_agent(seqharness_project, tmp_path)


@pytest.fixture
def tmux_project(seqharness_tmux_project: SpecProject, tmp_path: Path) -> SpecProject:
    """A project whose runs use a private tmux server, killed afterwards."""
    return use_fake_agent(seqharness_tmux_project, tmp_path)
