"""End to end: the real ``seqharness`` command driving each real agent CLI.

Everything here runs the installed ``seqharness`` command (``python -m
seqharness``) inside the loopback-only network namespace (``netns``), with one
CLI's seeded HOME and environment (``cli_home.env``), against the scripted
fake model server (``model_server``).  Nothing is mocked: seqharness spawns
the real CLI in a PTY with its built-in profile (``--backend codex`` ...), the
CLI talks to the server, the profile reads the CLI's stream.  The scripted
reply of each task is the ``SCRIPT:`` detail line in ``tasks.md`` (see
``fixtures/fake_model_server.py``).

Per CLI (codex, claude, opencode, gemini, aider), :func:`test_pass_fail_halt_and_limit`
runs two specs at the same time in one tmp repo (the state file is shared by
design; each spec has its own entry and lock):

* ``main`` with ``--maxfail 9`` (one CLI start per task):
  1. ``tool-write out.txt ... then done``: the file exists, the task passes;
  2. ``http-401``: fails, the reason names the authentication error;
  3. echo safety: the done tag only in a tool's output (for aider, which has no
     tools, the agent parrots the prompt's rule line holding the tag) must not pass;
  4. ``halt``: the run stops with exit 2, the state records the task and question.
* ``limit`` with ``--max-iterations 1`` and one task: ``http-429 reset-in 3``.
  codex and claude exit 1 on a 429, so seqharness must recognise the limit,
  print "waiting until", wait and retry without spending the only iteration.
  opencode, gemini and aider retry a 429 by themselves (they honour
  ``retry-after``; see tests/realcli/README.md): for them the run passing within
  its one iteration is what matters, seqharness never sees the 429.

Then, once each: claude with tools silently denied (no bypass flag) fails with
"tools were denied"; a usage-limit wait survives ``SIGKILL`` of seqharness and
a restart (codex); ``--assign-backend codex`` asks once per task across runs.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from realcli_kit import (  # this folder's helpers (not a package: on sys.path)
    API_KEY,
    MODEL_CHAT,
    CliHome,
    need_cli,
)

pytestmark = pytest.mark.realcli

SEQHARNESS = [sys.executable, "-m", "seqharness"]
CLIS = ["codex", "claude", "opencode", "gemini", "aider"]
# These CLIs retry a 429 themselves until retry-after has passed (measured, README).
RETRY_429_THEMSELVES = {"opencode", "gemini", "aider"}
RUN_TIMEOUT = 150
DONE = "<promise>TASK_DONE</promise>"
# The prompt's own rule line (seqharness/prompt.py): an agent repeating it is an echo.
RULE_LINE = f"- When the task is complete, print the completion tag {DONE} as the last line of your answer."


# --------------------------------------------------------------------------- helpers

def write_spec(workdir: Path, name: str, body: str) -> Path:
    spec = workdir / ".kiro" / "specs" / name
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "tasks.md").write_text("# Implementation Plan\n\n" + textwrap.dedent(body).lstrip(),
                                   encoding="utf-8")
    return spec


def aider_args(cli_home: CliHome) -> list[str]:
    """What aider needs on top of the profile's flags to reach the fake server."""
    return ["--model", f"openai/{MODEL_CHAT}", "--openai-api-base", f"{cli_home.server.base_url}/v1",
            "--openai-api-key", API_KEY, "--edit-format", "whole", "--no-git"]


def sh_env(cli_home: CliHome, *clis: str, **extra: str) -> dict[str, str]:
    """The environment of a seqharness run whose agents are *clis*."""
    env: dict[str, str] = {}
    for cli in clis:
        env.update(cli_home.env(cli))
        env[f"SEQHARNESS_{cli.upper()}_BIN"] = str(cli_home.paths[cli])
    if "aider" in clis:
        env["SEQHARNESS_AIDER_ARGS"] = shlex.join(aider_args(cli_home))
    env["CODEAGENT_NO_TMUX"] = "1"        # no tmux server from these runs
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"         # the output of a killed run is complete
    env.update(extra)
    return env


@dataclass
class ShRun:
    argv: list[str]
    returncode: int | None
    output: str
    seconds: float
    junit: Path

    def describe(self) -> str:
        return (f"argv={self.argv!r}\nexit={self.returncode} seconds={self.seconds:.1f}\n"
                f"--- output tail ---\n{self.output[-6000:]}")

    def cases(self) -> dict[str, tuple[str, str]]:
        """Task name -> (passed | failed | skipped, message) from the JUnit report."""
        out: dict[str, tuple[str, str]] = {}
        for case in ET.parse(self.junit).getroot().iter("testcase"):
            name = case.get("name", "")
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            skipped = case.find("skipped")
            if failure is not None:
                out[name] = ("failed", failure.get("message", ""))
            elif skipped is not None:
                out[name] = ("skipped", skipped.get("message", ""))
            else:
                out[name] = ("passed", "")
        return out


class Launched:
    """A seqharness run started in the background (inside the namespace)."""

    running: ClassVar[list[Launched]] = []   # ended by the autouse fixture if a test fails early

    def __init__(self, netns, spec: Path, args: list[str], env: dict[str, str], cwd: Path,
                 label: str) -> None:
        self.junit = spec.parent.parent.parent / f"{spec.name}-{time.monotonic_ns()}.xml"
        self.argv = netns.wrap([*SEQHARNESS, str(spec), *args, "--junitxml", str(self.junit),
                                "--live", "off", "-p", "no:cacheprovider", "-v"])
        self.label = label
        self.log = self.junit.with_suffix(".out")
        self.start = time.monotonic()
        with open(self.log, "wb") as out:   # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(self.argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        Launched.running.append(self)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float = RUN_TIMEOUT) -> ShRun:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            pytest.fail(f"seqharness did not finish in {timeout}s: {self.argv!r}\n{self.output()[-6000:]}")
        seconds = time.monotonic() - self.start
        return ShRun(self.argv, self.proc.returncode, self.output(), seconds, self.junit)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture(autouse=True)
def _no_leftover_runs():
    yield
    while Launched.running:
        Launched.running.pop().kill()


def state_of(workdir: Path, spec: str) -> dict:
    path = workdir / ".kiro" / "specs" / "SEQUENTIAL_STATE.json"
    return json.loads(path.read_text())["specs"][spec]


def main_requests(model_server, api: str | None = None) -> list[dict]:
    return [r for r in model_server.requests()
            if r["kind"] == "main" and (api is None or r["api"] == api)]


# --------------------------------------------------------------------------- 1-5 per CLI

MAIN_SPEC = """\
    - [ ] 1. Write the greeting file
      - SCRIPT: tool-write out.txt hello from {cli} then done
    - [ ] 2. Call the model with a revoked key
      - SCRIPT: http-401
    - [ ] 3. Only pretend to be done
      - SCRIPT: {echo}
    - [ ] 4. Choose the database
      - SCRIPT: halt
    """
LIMIT_SPEC = """\
    - [ ] 1. Work through a rate limit
      - SCRIPT: http-429 reset-in 3 then tool-write limit.txt after the reset then done
    """
AUTH_EVIDENCE = {
    "codex": "401 Unauthorized",
    "claude": "HTTP 401",
    "opencode": "HTTP 401",
    "gemini": "HTTP 401",
    "aider": "AuthenticationError",
}


@pytest.mark.parametrize("cli", CLIS)
def test_pass_fail_halt_and_limit(cli, cli_paths, cli_home, model_server, netns):
    need_cli(cli_paths, cli)
    work = cli_home.workdir
    # aider has no tool channel, so a tag "in a tool's output" cannot happen; its
    # safety case is the echo: the model repeats the prompt's own rule line.
    echo = f"say {RULE_LINE}" if cli == "aider" else "say-done-in-tool-output-only"
    main = write_spec(work, "main", MAIN_SPEC.format(cli=cli, echo=echo))
    limit = write_spec(work, "limit", LIMIT_SPEC)
    env = sh_env(cli_home, cli)
    # Both specs at once: the limit run mostly waits.  --limit-wait-default: codex
    # and claude do not pass the server's reset time on (their 429 text has none).
    seen = len(model_server.requests())
    limit_run = Launched(netns, limit, ["--backend", cli, "--max-iterations", "1",
                                        "--limit-wait-default", "4"], env, work, f"{cli} limit")
    # Start the second run once the first CLI has reached the model: opencode
    # migrates its SQLite database on first start, and two first starts in one
    # HOME at the same moment race ("Failed query: CREATE TABLE `workspace`").
    deadline = time.monotonic() + 60
    while len(model_server.requests()) <= seen and time.monotonic() < deadline:
        time.sleep(0.1)
    main_run = Launched(netns, main, ["--backend", cli, "--maxfail", "9"], env, work, f"{cli} main")
    m = main_run.wait()
    lim = limit_run.wait()

    # ---- main: pass, fail (401), no pass on a tag that is not the agent's, halt
    cases = m.cases()
    assert m.returncode == 2, m.describe()
    assert cases["1"] == ("passed", ""), m.describe()
    assert (work / "out.txt").read_text() == f"hello from {cli}\n"
    outcome, reason = cases["2"]
    assert outcome == "failed" and AUTH_EVIDENCE[cli] in reason, m.describe()
    assert "HALT" not in reason
    outcome, reason = cases["3"]
    assert outcome == "failed" and "without <promise>TASK_DONE</promise>" in reason, m.describe()
    if cli != "aider":
        assert "only in tool output" in reason, reason
    transcript = next((main / ".seqharness" / "transcripts").glob("task-3-*-a1.log")).read_text()
    assert DONE in transcript   # the tag was there, in a tool's output (aider: in an echo)
    outcome, reason = cases["4"]
    assert outcome == "failed" and reason.startswith("HALT:") and "PostgreSQL or SQLite?" in reason, \
        m.describe()
    state = state_of(work, "main")
    assert state["halted"] is True and state["halted_task"] == "4", state
    assert "PostgreSQL or SQLite?" in state["halt_question"], state
    assert sorted(state["completed"]) == ["1"], state
    tasks_md = (main / "tasks.md").read_text()
    assert "- [x] 1." in tasks_md and "- [ ] 2." in tasks_md and "- [ ] 4." in tasks_md

    # ---- limit: waits for the reset, then passes on its one iteration
    assert lim.returncode == 0, lim.describe()
    assert lim.cases()["1"] == ("passed", ""), lim.describe()
    assert (work / "limit.txt").read_text() == "after the reset\n"
    statuses = [r["status"] for r in model_server.requests()
                if r["method"] == "POST" and "429" in (r.get("script") or "")]
    assert statuses[0] == 429 and statuses[-1] == 200, statuses
    lstate = state_of(work, "limit")
    assert lstate["completed"] == ["1"] and lstate["paused_until"] is None, lstate
    if cli in RETRY_429_THEMSELVES:
        # The CLI retries a 429 by itself (honouring retry-after) and finishes in the
        # same attempt: seqharness never sees the limit, the pass is what matters.
        assert lstate["tasks"]["1"]["attempts"] == 1, lstate
        assert "waiting until" not in lim.output
    else:
        assert "waiting until" in lim.output, lim.describe()
        assert "429" in lim.output
        # one limited attempt (free) and the passing one: the budget of 1 sufficed
        assert lstate["tasks"]["1"]["attempts"] == 2, lstate


# --------------------------------------------------------------------------- 6: claude, tools denied

def test_claude_with_tools_denied_fails_with_that_reason(cli_paths, cli_home, model_server, netns):
    """claude -p without the bypass flag denies every tool and still exits 0 claiming
    TASK_DONE.  Choosing a permission mode in the extra arguments makes the profile
    leave its bypass flag out (the flag would override the mode)."""
    need_cli(cli_paths, "claude")
    work = cli_home.workdir
    spec = write_spec(work, "denied", """\
        - [ ] 1. Write the file without permission
          - SCRIPT: tool-write denied.txt hello then done
        """)
    run = Launched(netns, spec, ["--backend", "claude:--permission-mode default"],
                   sh_env(cli_home, "claude"), work, "claude denied").wait()
    assert run.returncode == 1, run.describe()
    outcome, reason = run.cases()["1"]
    assert outcome == "failed" and "claude: tools were denied: Bash" in reason, run.describe()
    assert not (work / "denied.txt").exists()
    # the model was asked twice: the tool call, then (after the denial) its done claim
    assert [r["turn"] for r in main_requests(model_server)] == [0, 1]
    assert state_of(work, "denied")["completed"] == []


# --------------------------------------------------------------------------- 7: wait, SIGKILL, restart

def test_usage_limit_wait_survives_kill_and_restart(cli_paths, cli_home, model_server, netns):
    """codex: a 429 makes seqharness record paused_until and wait; SIGKILL it in the
    middle of the wait; the restarted run sends nothing before that same time, then
    passes the task (with --max-iterations 1: the limit cost no iteration)."""
    need_cli(cli_paths, "codex")
    work = cli_home.workdir
    spec = write_spec(work, "pause", """\
        - [ ] 1. Survive a restart during a rate limit
          - SCRIPT: http-429 reset-in 4 then tool-write resumed.txt resumed then done
        """)
    env = sh_env(cli_home, "codex")
    args = ["--backend", "codex", "--max-iterations", "1", "--limit-wait-default", "6"]
    first = Launched(netns, spec, args, env, work, "codex pause")
    deadline = time.monotonic() + 60
    paused_until = None
    while paused_until is None:
        assert first.proc.poll() is None, first.output()
        assert time.monotonic() < deadline, first.output()
        time.sleep(0.1)
        try:
            paused_until = state_of(work, "pause").get("paused_until")
        except (OSError, ValueError, KeyError):
            pass
    assert paused_until - time.time() > 3, paused_until   # well inside the wait
    first.kill()
    killed_at = time.time()
    assert "waiting until" in first.output(), first.output()
    assert state_of(work, "pause")["paused_until"] == paused_until   # the record survives the kill

    second = Launched(netns, spec, args, env, work, "codex pause restart").wait()
    assert second.returncode == 0, second.describe()
    assert second.cases()["1"] == ("passed", ""), second.describe()
    assert (work / "resumed.txt").read_text() == "resumed\n"
    posts = [r for r in model_server.requests() if r["method"] == "POST"]
    refused = [r for r in posts if r["status"] == 429]
    assert len(refused) == 1 and refused[0]["time"] < killed_at, posts   # no hammering
    served = [r for r in posts if r["status"] == 200]
    assert served and min(r["time"] for r in served) >= paused_until - 0.05, (paused_until, posts)
    state = state_of(work, "pause")
    assert state["completed"] == ["1"] and state["paused_until"] is None, state


# --------------------------------------------------------------------------- 8: --assign-backend

def test_assign_backend_is_asked_once_per_task_across_runs(cli_paths, cli_home, model_server, netns):
    """--assign-backend codex, --backend claude: the assignment (owner claude) is
    asked before each task first runs and cached in the state; task 2 fails in the
    first run (a 401 that lifts after a few seconds) and passes in the second,
    which asks nothing."""
    need_cli(cli_paths, "codex")
    need_cli(cli_paths, "claude")
    work = cli_home.workdir
    spec = write_spec(work, "assign", """\
        - [ ] 1. Implement the parser
          - ASSIGN: {"task": "1", "type": "code", "owner": "claude"}
          - SCRIPT: tool-write parser.txt parsed then done
        - [ ] 2. Implement the printer
          - ASSIGN: {"task": "2", "type": "review", "owner": "claude"}
          - SCRIPT: http-401 reset-in 3 then tool-write printer.txt printed then done
        """)
    env = sh_env(cli_home, "codex", "claude")
    args = ["--backend", "claude", "--assign-backend", "codex"]

    def assigns() -> list[dict]:
        return [r for r in model_server.requests() if r["kind"] == "assign"]

    first = Launched(netns, spec, args, env, work, "assign run 1").wait()
    assert first.returncode == 1, first.describe()
    cases = first.cases()
    assert cases["1"] == ("passed", "") and cases["2"][0] == "failed", first.describe()
    assert "HTTP 401" in cases["2"][1]
    assert len(assigns()) == 2, assigns()
    assert all(r["api"] == "responses" for r in assigns())          # asked through codex
    cached = state_of(work, "assign")["assignments"]
    assert {k: (v["type"], v["backend"]) for k, v in cached.items()} == {
        "1": ("code", "claude"), "2": ("review", "claude")}, cached
    assert {r["api"] for r in main_requests(model_server)} == {"anthropic"}   # ran on claude

    gate = min(r["time"] for r in model_server.requests() if "http-401" in (r.get("script") or ""))
    time.sleep(max(0.0, gate + 3.2 - time.time()))
    second = Launched(netns, spec, args, env, work, "assign run 2").wait()
    assert second.returncode == 0, second.describe()
    assert second.cases()["2"] == ("passed", ""), second.describe()
    assert (work / "printer.txt").read_text() == "printed\n"
    assert len(assigns()) == 2, assigns()       # once per task across both runs
    assert state_of(work, "assign")["assignments"] == cached
