"""Shared fixtures: real specs on disk, the real ``seqharness`` command, real tmux.

Nothing here mocks pexpect or tmux.  Each test that uses tmux gets a private
server (``tmux -L <unique name>``) that is killed at teardown, so tests never
touch a user's tmux and never leak servers.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FAKE_AGENT = REPO / "fixtures" / "fake_agent.py"
SCHEMA = Path(__file__).resolve().parent / "data" / "junit-10.xsd"


def fake_backend(*extra: str) -> str:
    """``--backend`` value that runs the bundled fake agent with the prompt file."""
    parts = [sys.executable, str(FAKE_AGENT), *extra, "--prompt-file", "{prompt_file}"]
    return "cmd:" + " ".join(shlex.quote(p) if "{" not in p else p for p in parts)


def seqharness_command() -> list[str]:
    script = Path(sys.executable).parent / "seqharness"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "seqharness"]


@dataclass
class Result:
    ret: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Project:
    """A repository folder holding one or more ``.kiro/specs/<name>`` specs."""

    root: Path
    env: dict[str, str]
    tmux_socket: str | None = None

    def spec(self, name: str, tasks: str, *, requirements: str = "# Requirements\n",
             design: str = "# Design\n") -> Path:
        folder = self.root / ".kiro" / "specs" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "requirements.md").write_text(requirements, encoding="utf-8")
        (folder / "design.md").write_text(design, encoding="utf-8")
        (folder / "tasks.md").write_text(textwrap.dedent(tasks).lstrip("\n"), encoding="utf-8")
        return folder

    def run(self, *args: str, backend: str | None = "fake", timeout: float = 120,
            env: dict[str, str] | None = None) -> Result:
        argv = [*seqharness_command(), *args]
        if backend == "fake":
            argv += ["--backend", fake_backend()]
        elif backend is not None:
            argv += ["--backend", backend]
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        proc = subprocess.run(argv, cwd=self.root, env=full_env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def agent_calls(self) -> list[dict]:
        log = Path(self.env["FAKE_AGENT_LOG"])
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def state(self) -> dict:
        return json.loads((self.root / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())

    def tmux(self, *args: str) -> str:
        assert self.tmux_socket
        return subprocess.run(["tmux", "-L", self.tmux_socket, *args], capture_output=True,
                              text=True, timeout=10).stdout


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TMUX"))}
    env["FAKE_AGENT_LOG"] = str(tmp_path / "agent-calls.jsonl")
    env["FAKE_AGENT_STATE_DIR"] = str(tmp_path / "fake-agent-state")
    env.pop("CODEAGENT_NO_TMUX", None)
    env.pop("FAKE_AGENT_BEHAVIOUR", None)
    env.pop("CODEX_TIMEOUT", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project without tmux (CODEAGENT_NO_TMUX=1): the fast default for e2e tests."""
    root = tmp_path / "repo"
    root.mkdir()
    env = _base_env(tmp_path)
    env["CODEAGENT_NO_TMUX"] = "1"
    return Project(root=root, env=env)


@pytest.fixture
def tmux_project(tmp_path: Path):
    """A project whose runs use a private tmux server, killed afterwards."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    env = _base_env(tmp_path)
    socket = f"shtest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env["SEQHARNESS_TMUX_SOCKET"] = socket
    yield Project(root=root, env=env, tmux_socket=socket)
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10)


def validate_junit(path: Path) -> None:
    """Validate a JUnit file against pytest's/Jenkins' junit-10.xsd (vendored, MIT)."""
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(SCHEMA))
    schema.validate(str(path))
