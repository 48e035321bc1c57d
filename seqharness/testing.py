"""A pytest plugin for testing seqharness set-ups: ``pytest_plugins = ["seqharness.testing"]``.

A ``conftest.py`` that changes seqharness (a prompt hook, a backend, routing)
is code, and the only faithful test of it is a real run: the real
``seqharness`` command, on a real spec, in a throwaway folder, with an agent
that does what the test says.  This module gives that in a few lines, as
tox's ``tox_project`` fixture does for tox plugins::

    pytest_plugins = ["seqharness.testing"]

    def test_team_rules_reach_the_agent(seqharness_project):
        seqharness_project.conftest(Path(__file__).parents[1] / "conftest.py")
        seqharness_project.spec("feature", "- [ ] 1. Add a login page\\n")
        seqharness_project.run(".kiro/specs/feature").assert_passed()
        assert "Team rules:" in seqharness_project.prompt("feature", "1")

Fixtures: ``seqharness_project`` (no tmux) and ``seqharness_tmux_project``
(a private ``tmux -L`` server, killed at teardown), both a :class:`SpecProject`.
The default backend is :mod:`seqharness.testagent`, scripted with
:func:`fake_backend` arguments.  Loading this plugin also declares
seqharness's hooks, so a plain ``pytest`` run accepts a ``conftest.py``
that implements them.  Nothing is mocked.

PYTEST_DONT_REWRITE: the kit raises its own AssertionErrors, so pytest need
not rewrite it, and a conftest.py may import it before ``pytest_plugins``.
"""

from __future__ import annotations

import enum
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from seqharness.testagent import LOG_ENV, SCRIPT_ENV

__all__ = ["RunResult", "RunTimeout", "SpecProject", "clean_env", "fake_backend",
           "kill_tmux_server", "new_project", "seqharness_command", "seqharness_project",
           "seqharness_tmux_project"]

EXIT_MEANINGS = {0: "all complete", 1: "failed", 2: "halted or interrupted",
                 3: "internal error", 4: "usage error", 5: "nothing selected"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SUMMARY = re.compile(r"^=*\s*(?P<counts>.*?)\s+in \d+\.\d\ds\b")
_COUNT = re.compile(r"(\d+) (\w+)")
_PLURAL = {"error": "errors", "warning": "warnings"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")  # as seqharness names transcript files
_TRANSCRIPT = re.compile(r"^task-(?P<task>.+)-(?P<stamp>\d{8}T\d{6})-a(?P<attempt>\d+)\.log$")
_TAIL_LINES = 60


def seqharness_command() -> list[str]:
    """argv of the installed ``seqharness`` command of this interpreter."""
    script = Path(sys.executable).parent / "seqharness"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "seqharness"]


def _cmd_word(word: str) -> str:
    """*word* as one literal word of a ``cmd:`` backend (braces are placeholders there)."""
    return shlex.quote(word.replace("{", "{{").replace("}", "}}"))


def fake_backend(*extra: str) -> str:
    """``--backend`` value running :mod:`seqharness.testagent` with *extra* arguments,
    e.g. ``fake_backend("--outcome", "2=halt:Which database?", "--sleep", "0.2")``."""
    words = [sys.executable, "-m", "seqharness.testagent", *extra]
    return "cmd:" + " ".join(map(_cmd_word, words)) + " --prompt-file {prompt_file}"


def clean_env() -> dict[str, str]:
    """This process's environment without what would steer a nested run: pytest's
    ``PYTEST_*``, an enclosing tmux (``TMUX*``), ``CODEX_TIMEOUT``, tmux choices and
    the test agent's script."""
    drop = {"CODEX_TIMEOUT", "CODEAGENT_NO_TMUX", "SEQHARNESS_TMUX_SOCKET", SCRIPT_ENV, LOG_ENV}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "TMUX")) and k not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(repr=False)
class RunResult:
    """One finished ``seqharness`` run."""

    ret: int
    stdout: str
    stderr: str
    argv: list[str]
    duration: float = 0.0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:
        meaning = EXIT_MEANINGS.get(self.ret, "killed by a signal" if self.ret < 0 else "?")
        lines = [f"<RunResult ret={self.ret} ({meaning}) after {self.duration:.1f} s>",
                 f"$ {shlex.join(self.argv)}"]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            shown = text.rstrip("\n").splitlines()
            if not shown:
                continue
            cut = f", last {_TAIL_LINES} of {len(shown)} lines" if len(shown) > _TAIL_LINES else ""
            lines.append(f"--- {name}{cut} ---")
            lines += [line[:300] for line in shown[-_TAIL_LINES:]]
        return "\n".join(lines)

    def _fail(self, what: str) -> NoReturn:
        __tracebackhide__ = True
        raise AssertionError(f"{what}\n{self!r}")

    def outcomes(self) -> dict[str, int]:
        """Counts from pytest's summary line (``1 passed, 1 halted in 0.93s``)."""
        __tracebackhide__ = True
        for line in reversed(_ANSI.sub("", self.stdout).splitlines()):
            match = _SUMMARY.match(line.strip())
            if match:
                return {_PLURAL.get(word, word): int(n)
                        for n, word in _COUNT.findall(match.group("counts"))}
        self._fail("no pytest summary line in the output")

    def assert_passed(self) -> None:
        """Exit 0: every selected task is complete."""
        __tracebackhide__ = True
        if self.ret != 0:
            self._fail(f"expected exit 0 (all complete), got {self.ret}")

    def assert_failed(self, code: int = 1) -> None:
        """Exit *code* (default 1: a task failed)."""
        __tracebackhide__ = True
        if self.ret != code:
            self._fail(f"expected exit {code} ({EXIT_MEANINGS.get(code, '?')}), got {self.ret}")

    def assert_halted(self, question: str | None = None) -> None:
        """Exit 2, and the agent's *question* (if given) in the output."""
        __tracebackhide__ = True
        if self.ret != 2:
            self._fail(f"expected exit 2 (halted), got {self.ret}")
        if question is not None and question not in self.output:
            self._fail(f"halted, but the question {question!r} is not in the output")

    def assert_outcomes(self, passed: int = 0, failed: int = 0, skipped: int = 0,
                        halted: int = 0, errors: int = 0, deselected: int | None = None) -> None:
        """pytest's summary counts are exactly these (``deselected`` only when given)."""
        __tracebackhide__ = True
        got = self.outcomes()
        want = {"passed": passed, "failed": failed, "skipped": skipped, "halted": halted,
                "errors": errors}
        if deselected is not None:
            want["deselected"] = deselected
        seen = {key: got.get(key, 0) for key in want}
        if seen != want:
            self._fail(f"outcomes {seen} != expected {want}")


class RunTimeout(subprocess.TimeoutExpired):
    """A run that did not finish in time (it was stopped with SIGTERM, then SIGKILL)."""

    def __init__(self, result: RunResult, timeout: float) -> None:
        super().__init__(result.argv, timeout, result.stdout, result.stderr)
        self.result = result

    def __str__(self) -> str:
        return f"seqharness did not finish within {self.timeout:g} s\n{self.result!r}"


class _Default(enum.Enum):
    BACKEND = "the project's default backend"


@dataclass
class SpecProject:
    """A throwaway repository holding ``.kiro/specs/<name>`` specs, and its runs."""

    root: Path
    env: dict[str, str]
    agent_log: Path
    default_backend: str | None = field(default_factory=fake_backend)
    tmux_socket: str | None = None

    @property
    def specs_dir(self) -> Path:
        return self.root / ".kiro" / "specs"

    @property
    def state_path(self) -> Path:
        return self.specs_dir / "SEQUENTIAL_STATE.json"

    # ------------------------------------------------------------------ setup
    def spec(self, name: str, tasks: str, *, requirements: str = "# Requirements\n",
             design: str = "# Design\n") -> Path:
        """Write ``.kiro/specs/<name>/`` (``tasks`` is dedented); return the folder."""
        folder = self.specs_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "requirements.md").write_text(requirements, encoding="utf-8")
        (folder / "design.md").write_text(design, encoding="utf-8")
        (folder / "tasks.md").write_text(textwrap.dedent(tasks).lstrip("\n"), encoding="utf-8")
        return folder

    def conftest(self, text: str | os.PathLike[str]) -> Path:
        """Write the project's ``conftest.py``: *text* (dedented), or a copy of a file."""
        source = Path(text).read_text(encoding="utf-8") if isinstance(text, os.PathLike) \
            else textwrap.dedent(text).lstrip("\n")
        path = self.root / "conftest.py"
        path.write_text(source, encoding="utf-8")
        return path

    # ------------------------------------------------------------------ running
    def argv(self, *args: str, backend: str | None | _Default = _Default.BACKEND) -> list[str]:
        chosen = self.default_backend if isinstance(backend, _Default) else backend
        return [*seqharness_command(), *args, *(["--backend", chosen] if chosen else [])]

    def run(self, *args: str, backend: str | None | _Default = _Default.BACKEND,
            timeout: float = 120, env: Mapping[str, str | None] | None = None) -> RunResult:
        """Run the real ``seqharness`` in :attr:`root`; *env* adds (None: removes)
        variables; ``backend=None`` passes no ``--backend``."""
        argv = self.argv(*args, backend=backend)
        full = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=self.root, env=full, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace")
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # seqharness then ends its agents
            try:
                out, err = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            result = RunResult(proc.returncode, out, err, argv, time.monotonic() - start)
            raise RunTimeout(result, timeout) from None
        return RunResult(proc.returncode, out, err, argv, time.monotonic() - start)

    # ------------------------------------------------------------------ reading
    def state(self) -> dict[str, Any]:
        """The whole ``SEQUENTIAL_STATE.json``."""
        data: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        return data

    def spec_state(self, name: str) -> dict[str, Any]:
        """The state entry of spec *name* (``completed``, ``halted``, ``tasks``, ...)."""
        entry: dict[str, Any] = self.state()["specs"][name]
        return entry

    def tasks_md(self, name: str) -> str:
        return (self.specs_dir / name / "tasks.md").read_text(encoding="utf-8")

    def transcript_path(self, name: str, task: str, attempt: int | None = None) -> Path:
        """The newest transcript of *task* (of that *attempt*, if given)."""
        folder = self.specs_dir / name / ".seqharness" / "transcripts"
        safe = _SAFE.sub("_", task).strip("._")[:60] or "task"
        found = []
        for path in folder.glob("task-*.log") if folder.is_dir() else ():
            m = _TRANSCRIPT.match(path.name)
            if m and m["task"] == safe and attempt in (None, int(m["attempt"])):
                found.append((path.stat().st_mtime_ns, m["stamp"], int(m["attempt"]), path))
        if not found:
            which = f" attempt {attempt}" if attempt is not None else ""
            raise FileNotFoundError(f"no transcript of task {task!r}{which} in {folder}")
        return max(found)[-1]

    def transcript(self, name: str, task: str, attempt: int | None = None) -> str:
        """Text of the newest transcript of *task* (what the agent printed)."""
        return self.transcript_path(name, task, attempt).read_text(encoding="utf-8",
                                                                   errors="replace")

    def prompt(self, name: str, task: str, attempt: int | None = None) -> str:
        """The prompt that attempt was given (the transcript's ``.prompt.md``)."""
        path = self.transcript_path(name, task, attempt).with_suffix(".prompt.md")
        return path.read_text(encoding="utf-8", errors="replace")

    def agent_calls(self) -> list[dict[str, Any]]:
        """One record per agent call, in order (a line cut short by a kill is left out)."""
        if not self.agent_log.exists():
            return []
        calls = []
        for line in self.agent_log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                calls.append(json.loads(line))
            except ValueError:
                continue
        return calls

    def tmux(self, *args: str) -> str:
        """stdout of ``tmux -L <this project's socket> ARGS``."""
        if self.tmux_socket is None:
            raise ValueError("not a tmux project: use the seqharness_tmux_project fixture")
        return subprocess.run(["tmux", "-L", self.tmux_socket, *args], env=self.env,
                              capture_output=True, text=True, errors="replace", timeout=10,
                              check=False).stdout


def new_project(tmp_path: Path, *, tmux: bool = False) -> SpecProject:
    """A :class:`SpecProject` in ``tmp_path/"repo"``: without tmux, or (``tmux=True``)
    with a private tmux socket the caller must end with :func:`kill_tmux_server`."""
    root = tmp_path / "repo"
    root.mkdir(parents=True, exist_ok=True)
    env = clean_env()
    log = tmp_path / "testagent-calls.jsonl"
    env[LOG_ENV] = str(log)
    socket = None
    if tmux:
        socket = f"seqharness-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        env["SEQHARNESS_TMUX_SOCKET"] = socket
    else:
        env["CODEAGENT_NO_TMUX"] = "1"
    return SpecProject(root=root, env=env, agent_log=log, tmux_socket=socket)


def kill_tmux_server(socket: str, env: Mapping[str, str] | None = None) -> None:
    """Kill the tmux server on *socket* and remove its socket file (tmux 3.3 leaves it)."""
    env = dict(os.environ if env is None else env)
    if shutil.which("tmux", path=env.get("PATH")):
        subprocess.run(["tmux", "-L", socket, "kill-server"], env=env, capture_output=True,
                       timeout=10, check=False)
    folder = Path(env.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
    (folder / socket).unlink(missing_ok=True)


# ---------------------------------------------------------------------- pytest hooks
def pytest_configure(config: pytest.Config) -> None:
    """Declare seqharness's hooks unless its plugin did (``-p seqharness.plugin``),
    so this session accepts a ``conftest.py`` that implements them."""
    from seqharness import hookspec

    names = [n for n in dir(hookspec) if n.startswith("pytest_seqharness_")]
    caller = getattr(config.pluginmanager.hook, names[0], None) if names else None
    if names and (caller is None or not caller.has_spec()):
        config.pluginmanager.add_hookspecs(hookspec)


@pytest.fixture
def seqharness_project(tmp_path: Path) -> SpecProject:
    """A throwaway project whose runs use no tmux (``CODEAGENT_NO_TMUX=1``)."""
    return new_project(tmp_path)


@pytest.fixture
def seqharness_tmux_project(tmp_path: Path) -> Iterator[SpecProject]:
    """A throwaway project whose runs use a private tmux server (killed afterwards);
    skipped without tmux."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    project = new_project(tmp_path, tmux=True)
    try:
        yield project
    finally:
        assert project.tmux_socket is not None
        kill_tmux_server(project.tmux_socket, project.env)
