"""The fake agent itself: every behaviour, run as a real process (pipes, no PTY)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

FAKE_AGENT = Path(__file__).resolve().parents[2] / "fixtures" / "fake_agent.py"
DONE_TAG = "<promise>TASK_DONE</promise>"
HALT_TAG = "<promise>HALT</promise>"


def agent_env(tmp_path: Path, behaviour: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_AGENT_")}
    env["FAKE_AGENT_LOG"] = str(tmp_path / "calls.jsonl")
    env["FAKE_AGENT_STATE_DIR"] = str(tmp_path / "state")
    if behaviour is not None:
        env["FAKE_AGENT_BEHAVIOUR"] = behaviour
    env.update(extra)
    return env


def run(tmp_path: Path, *args: str, behaviour: str | None = None, input: str = "",
        timeout: float = 20, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FAKE_AGENT), *args], cwd=tmp_path,
        env=agent_env(tmp_path, behaviour, **extra),
        input=input, capture_output=True, text=True, timeout=timeout,
    )


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_is_executable_with_a_python_shebang() -> None:
    assert os.access(FAKE_AGENT, os.X_OK)
    assert FAKE_AGENT.read_text().startswith("#!/usr/bin/env python3\n")


def test_done_is_the_default(tmp_path: Path) -> None:
    proc = run(tmp_path, "Task id: 2.1\nDo the thing")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert len(lines) >= 15
    assert lines[-1] == DONE_TAG
    assert "\x1b[32m✓\x1b[0m" in proc.stdout
    (call,) = calls(tmp_path)
    assert call["task"] == "2.1" and call["behaviour"] == "done"
    assert call["cwd"] == str(tmp_path) and call["pid"] > 0
    assert call["argv"][0].endswith("fake_agent.py")
    assert isinstance(call["time"], float)


def test_behaviour_from_the_prompt_and_prompt_file(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("Task id: 3\n- [ ] 3. Title\n  - FAKE-AGENT: halt\n  - fake-agent: fail\n")
    proc = run(tmp_path, "--prompt-file", str(prompt))
    assert proc.returncode == 0
    assert "I need a decision: which database should I use, PostgreSQL or SQLite?" in proc.stdout
    assert proc.stdout.splitlines()[-1] == HALT_TAG
    assert calls(tmp_path)[0]["task"] == "3"


def test_env_behaviour_beats_the_prompt(tmp_path: Path) -> None:
    proc = run(tmp_path, "Task id: 1 fake-agent: halt", behaviour="complete")
    assert proc.stdout.splitlines()[-1] == "<promise>COMPLETE</promise>"


def test_task_key_defaults_to_unknown(tmp_path: Path) -> None:
    run(tmp_path, "no id here", behaviour="silent")
    assert calls(tmp_path)[0]["task"] == "unknown"


def test_fail_silent_echo(tmp_path: Path) -> None:
    proc = run(tmp_path, "Task id: 1", behaviour="fail")
    assert proc.returncode == 1 and "error: tests failed" in proc.stdout
    assert "<promise>" not in proc.stdout
    proc = run(tmp_path, "Task id: 1", behaviour="silent")
    assert proc.returncode == 0 and proc.stdout.strip() and "<promise>" not in proc.stdout
    prompt = f"Task id: 1\nPrint {DONE_TAG} at the end\n  indented  \n"
    proc = run(tmp_path, "--prompt-stdin", behaviour="echo", input=prompt)
    assert proc.returncode == 0 and proc.stdout == prompt


def test_joined_args_are_the_prompt(tmp_path: Path) -> None:
    proc = run(tmp_path, "Task id: 7", "fake-agent: echo", behaviour=None)
    assert proc.stdout == "Task id: 7 fake-agent: echo\n"


def test_never_reads_stdin_unless_asked(tmp_path: Path) -> None:
    # stdin left open and silent: the agent must not wait for it.
    proc = subprocess.Popen([sys.executable, str(FAKE_AGENT), "Task id: 1"], cwd=tmp_path,
                            env=agent_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.wait(timeout=10) == 0  # its output fits in the pipe buffer
        out = proc.stdout.read()
        assert out.decode().splitlines()[-1] == DONE_TAG
    finally:
        proc.stdin.close()
        proc.stdout.close()


@pytest.mark.parametrize("answer, code", [("y\n", 0), ("n\n", 1), ("", 1)])
def test_ask(tmp_path: Path, answer: str, code: int) -> None:
    proc = run(tmp_path, "Task id: 1", behaviour="ask", input=answer)
    assert proc.stdout.startswith("Apply the migration? [y/n] ")
    assert proc.returncode == code
    assert (DONE_TAG in proc.stdout) == (code == 0)
    if code:
        assert "aborted" in proc.stdout


def test_flaky_counts_per_task(tmp_path: Path) -> None:
    codes = [run(tmp_path, "Task id: 4.1", behaviour="flaky=2").returncode for _ in range(4)]
    assert codes == [1, 1, 0, 0]
    assert (tmp_path / "state" / "4.1.count").read_text().strip() == "4"
    assert run(tmp_path, "Task id: other/../x", behaviour="flaky=1").returncode == 1
    assert (tmp_path / "state" / "other_.._x.count").exists()


def test_flaky_default_state_dir_is_under_cwd(tmp_path: Path) -> None:
    env = agent_env(tmp_path, "flaky=1")
    del env["FAKE_AGENT_STATE_DIR"]
    proc = subprocess.run([sys.executable, str(FAKE_AGENT), "Task id: 9"], cwd=tmp_path, env=env,
                          capture_output=True, timeout=20)
    assert proc.returncode == 1
    assert (tmp_path / ".fake-agent-state" / "9.count").exists()


def test_write(tmp_path: Path) -> None:
    proc = run(tmp_path, "Task id: 1", behaviour="write=pkg/sub/file.txt")
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == DONE_TAG
    assert (tmp_path / "pkg" / "sub" / "file.txt").read_text() == "written by fake agent\n"
    for bad in ("/etc/x", "../x", "a/../../x"):
        proc = run(tmp_path, "Task id: 1", behaviour=f"write={bad}")
        assert proc.returncode == 2 and "refusing" in proc.stdout
    assert not (tmp_path.parent / "x").exists()


def test_write_from_the_prompt_keeps_path_case(tmp_path: Path) -> None:
    proc = run(tmp_path, "Task id: 1\n- fake-agent: write=Greeting/Init.py\n")
    assert proc.returncode == 0
    assert (tmp_path / "Greeting" / "Init.py").exists()


@pytest.mark.parametrize(
    "size, expected", [("512K", 512 * 1024), ("1M", 1024 * 1024), ("1000", 1000)]
)
def test_flood_size(tmp_path: Path, size: str, expected: int) -> None:
    proc = subprocess.run([sys.executable, str(FAKE_AGENT), "Task id: 1"], cwd=tmp_path,
                          env=agent_env(tmp_path, f"flood={size}"), capture_output=True, timeout=20)
    assert proc.returncode == 0
    body, _, last = proc.stdout.rstrip(b"\n").rpartition(b"\n")
    assert last == DONE_TAG.encode()
    assert expected <= len(body) + 1 <= expected + 1


def test_slow_and_sleep_done(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = run(tmp_path, "Task id: 1", behaviour="slow=0.5")
    assert proc.returncode == 0
    assert 0.45 <= time.monotonic() - started < 5
    assert sum("still working" in line for line in proc.stdout.splitlines()) >= 4
    started = time.monotonic()
    proc = run(tmp_path, "Task id: 1", behaviour="sleep-done=0.3")
    assert proc.returncode == 0 and 0.3 <= time.monotonic() - started < 5


def test_unknown_behaviour(tmp_path: Path) -> None:
    proc = run(tmp_path, "Task id: 1", behaviour="dance")
    assert proc.returncode == 2 and "unknown behaviour" in proc.stderr


def _start(tmp_path: Path, behaviour: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(FAKE_AGENT), "Task id: 1"], cwd=tmp_path,
                            env=agent_env(tmp_path, behaviour), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, start_new_session=True)


def test_hang_prints_one_line_then_dies_on_sigterm(tmp_path: Path) -> None:
    proc = _start(tmp_path, "hang")
    assert proc.stdout is not None
    try:
        assert b"hang" in proc.stdout.readline()
        time.sleep(0.2)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()


def test_hang_ignore_term_survives_sigterm(tmp_path: Path) -> None:
    proc = _start(tmp_path, "hang-ignore-term")
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline()
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()


def test_grandchild_exits_at_once_leaving_a_helper_in_its_group(tmp_path: Path) -> None:
    proc = _start(tmp_path, "grandchild")
    assert proc.stdout is not None
    try:
        started = time.monotonic()
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 3
        # The helper still holds stdout open (so no EOF) and is in the agent's group.
        first = proc.stdout.readline().decode()
        assert "background helper (pid " in first
        helper = int(first.split("(pid ")[1].split(")")[0])
        assert os.getpgid(helper) == proc.pid
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.stdout.close()


def test_log_line_is_written_before_work(tmp_path: Path) -> None:
    proc = _start(tmp_path, "hang")
    assert proc.stdout is not None
    try:
        proc.stdout.readline()
        (call,) = calls(tmp_path)
        assert call["behaviour"] == "hang" and call["pid"] == proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        proc.stdout.close()
