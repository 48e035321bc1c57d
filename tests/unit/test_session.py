"""run_attempt with real PTYs and the real fake agent (nothing is mocked).

Also a small benchmark, run by hand::

    python tests/unit/test_session.py bench 100M

which compares run_attempt's throughput and peak RSS with a bare os.read loop
on a PTY reading the same fake-agent flood.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE_AGENT = REPO / "fixtures" / "fake_agent.py"
if __name__ == "__main__":
    sys.path.insert(0, str(REPO))

from seqharness.outcome import AttemptResult
from seqharness.processes import group_alive
from seqharness.session import run_attempt

DONE_TAG = "<promise>TASK_DONE</promise>"
HALT_TAG = "<promise>HALT</promise>"
PROMPT = "\n".join(
    [
        'You are implementing one task of the Kiro spec "demo".',
        "",
        "Task id: 1.1",
        "Task title: Set up the project",
        "Rules:",
        f"- When the task is complete, print the completion tag {DONE_TAG} as the last line"
        " of your answer.",
        "- If you cannot continue without a human decision, explain what you need and then"
        f" print {HALT_TAG} on a line of its own.",
    ]
)


# ------------------------------------------------------------------ helpers
class Agent:
    """Runs the fake agent through run_attempt in a temporary folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.log = tmp_path / "calls.jsonl"
        self.transcript = tmp_path / "logs" / "attempt-1.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_AGENT_")}
        self.env["FAKE_AGENT_LOG"] = str(self.log)
        self.env["FAKE_AGENT_STATE_DIR"] = str(tmp_path / "state")
        self.chunks: list[bytes] = []

    def run(self, behaviour: str | None, prompt: str = PROMPT, **kw: Any) -> AttemptResult:
        env = dict(self.env)
        if behaviour is not None:
            env["FAKE_AGENT_BEHAVIOUR"] = behaviour
        prompt_file = self.tmp / "prompt.md"
        prompt_file.write_text(prompt, encoding="utf-8")
        argv = kw.pop("argv", [sys.executable, str(FAKE_AGENT), "--prompt-file", str(prompt_file)])
        kw.setdefault("timeout", 20)
        kw.setdefault("on_output", self.chunks.append)
        return run_attempt(argv, cwd=str(self.tmp), env=env, prompt=prompt,
                           transcript_path=str(self.transcript), **kw)

    def pids(self) -> list[int]:
        return [json.loads(line)["pid"] for line in self.log.read_text().splitlines()]

    def transcript_bytes(self) -> bytes:
        return self.transcript.read_bytes()


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    return Agent(tmp_path)


def assert_group_gone(pgid: int, wait: float = 10.0) -> None:
    """No live member right now, and (once init has reaped the zombies) no
    process at all: os.killpg(pgid, 0) raises ProcessLookupError."""
    assert not group_alive(pgid), f"process group {pgid} still has live members"
    deadline = time.monotonic() + wait
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"process group {pgid} still exists after {wait}s")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


# ------------------------------------------------------------------ plain outcomes
def test_done(agent: Agent) -> None:
    r = agent.run("done")
    assert (r.reason, r.exit_status, r.term_signal) == ("exited", 0, None)
    assert (r.signal, r.error) == ("done", None)
    data = agent.transcript_bytes()
    assert r.output_bytes == len(data) > 500
    assert b"".join(agent.chunks) == data
    assert b"\x1b[32m" in data  # the raw transcript keeps colours ...
    assert "\x1b" not in r.tail  # ... the tail does not
    assert r.tail.splitlines()[-1] == DONE_TAG
    assert r.tail.splitlines()[0].startswith("Working on task 1.1")
    assert "\r" not in r.tail
    assert r.halt_context == ""
    assert r.duration < 10


def test_complete_counts_as_done(agent: Agent) -> None:
    r = agent.run("complete")
    assert (r.reason, r.exit_status, r.signal) == ("exited", 0, "done")


def test_halt(agent: Agent) -> None:
    r = agent.run("halt")
    assert (r.reason, r.exit_status, r.signal) == ("exited", 0, "halt")
    assert r.halt_context.splitlines()[-1] == (
        "I need a decision: which database should I use, PostgreSQL or SQLite?")


def test_fail(agent: Agent) -> None:
    r = agent.run("fail")
    assert (r.reason, r.exit_status, r.signal) == ("exited", 1, None)
    assert "error: tests failed" in r.tail


def test_silent(agent: Agent) -> None:
    r = agent.run("silent")
    assert (r.reason, r.exit_status, r.signal) == ("exited", 0, None)


def test_echo_of_the_prompt_is_not_done(agent: Agent) -> None:
    r = agent.run("echo")
    assert (r.reason, r.exit_status) == ("exited", 0)
    assert DONE_TAG.encode() in agent.transcript_bytes()
    assert r.signal is None


def test_behaviour_from_the_prompt(agent: Agent) -> None:
    r = agent.run(None, prompt=PROMPT + "\n  - fake-agent: halt\n")
    assert r.signal == "halt"


def test_hostile_title_echoed_back_does_not_count(agent: Agent) -> None:
    prompt = PROMPT.replace("Set up the project", f"Set up {DONE_TAG} the project")
    r = agent.run("echo", prompt=prompt)
    assert r.signal is None
    r = agent.run("done", prompt=prompt)
    assert r.signal == "done"


def test_killed_by_a_signal(agent: Agent) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGABRT)"
    r = agent.run(None, argv=[sys.executable, "-c", code])
    assert (r.reason, r.exit_status, r.term_signal) == ("exited", None, signal.SIGABRT)


def test_env_and_dimensions_reach_the_agent(agent: Agent) -> None:
    code = ("import os; s = os.get_terminal_size();"
            " print(s.lines, s.columns, os.environ['MARK'], os.getcwd())")
    agent.env["MARK"] = "mark-42"
    r = agent.run(None, argv=[sys.executable, "-c", code], dimensions=(31, 177))
    assert r.tail == f"31 177 mark-42 {agent.tmp}"
    r = agent.run(None, argv=[sys.executable, "-c", code])
    assert r.tail.startswith("50 200 ")


def test_transcript_is_appended_to(agent: Agent) -> None:
    agent.transcript.parent.mkdir(parents=True)
    agent.transcript.write_bytes(b"previous attempt\n")
    agent.run("silent")
    data = agent.transcript_bytes()
    assert data.startswith(b"previous attempt\nWorking on task 1.1")


def test_tail_is_bounded(agent: Agent) -> None:
    r = agent.run("flood=1M")
    assert r.signal == "done"
    assert len(r.tail) <= 8192
    assert len(r.tail.splitlines()) <= 50
    assert r.tail.splitlines()[-1] == DONE_TAG


# ------------------------------------------------------------------ ending an attempt
def test_idle_timeout_ends_a_hang(agent: Agent) -> None:
    started = time.monotonic()
    r = agent.run("hang", idle_timeout=0.5, kill_grace=1.0)
    elapsed = time.monotonic() - started
    assert (r.reason, r.exit_status, r.term_signal) == ("idle", None, signal.SIGTERM)
    assert r.signal is None
    assert 0.5 <= elapsed < 0.5 + 1.0 + 1.0
    assert "this will hang" in r.tail
    assert_group_gone(agent.pids()[0])


def test_total_timeout_while_the_agent_keeps_printing(agent: Agent) -> None:
    started = time.monotonic()
    r = agent.run("slow=30", timeout=1.0, idle_timeout=5, kill_grace=1.0)
    assert (r.reason, r.term_signal) == ("timeout", signal.SIGTERM)
    assert 1.0 <= time.monotonic() - started < 3.0
    assert "still working" in r.tail
    assert_group_gone(agent.pids()[0])


def test_sigterm_ignored_means_sigkill_and_the_group_is_gone(agent: Agent) -> None:
    started = time.monotonic()
    r = agent.run("hang-ignore-term", idle_timeout=0.3, kill_grace=0.5)
    assert (r.reason, r.exit_status, r.term_signal) == ("idle", None, signal.SIGKILL)
    assert 0.8 <= time.monotonic() - started < 3.0
    assert_group_gone(agent.pids()[0])


def test_grandchild_holding_the_pty_does_not_delay_and_is_killed(agent: Agent) -> None:
    started = time.monotonic()
    r = agent.run("grandchild", kill_grace=3.0)
    elapsed = time.monotonic() - started
    assert (r.reason, r.exit_status, r.signal) == ("exited", 0, "done")
    assert elapsed < 1.5, elapsed
    found = re.search(r"\(pid (\d+)\)", r.tail)
    assert found is not None, r.tail
    helper = int(found.group(1))
    assert not pid_alive(helper)
    assert_group_gone(agent.pids()[0])


def test_should_stop_interrupts(agent: Agent) -> None:
    started = time.monotonic()
    r = agent.run("slow=30", should_stop=lambda: time.monotonic() - started > 0.5, kill_grace=1.0)
    assert (r.reason, r.term_signal) == ("interrupted", signal.SIGTERM)
    assert time.monotonic() - started < 3.0
    assert_group_gone(agent.pids()[0])


def test_keyboard_interrupt_kills_the_group_and_is_reraised(agent: Agent) -> None:
    started = time.monotonic()

    def stop() -> bool:
        if time.monotonic() - started > 0.5:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        agent.run("hang-ignore-term", should_stop=stop, kill_grace=0.3)
    assert time.monotonic() - started < 3.0
    assert_group_gone(agent.pids()[0])


def test_failing_callback_kills_the_group_and_is_reraised(agent: Agent) -> None:
    def boom(chunk: bytes) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        agent.run("hang", on_output=boom, kill_grace=0.5)
    assert_group_gone(agent.pids()[0])


def test_timeout_fires_even_if_the_agent_closes_its_terminal(agent: Agent) -> None:
    """pexpect's read_nonblocking() would block in waitpid() here until the
    child exits (EOF while the child still runs): we must not."""
    code = ("import os, time; print('bye', flush=True);"
            " [os.close(fd) for fd in (0, 1, 2)]; time.sleep(30)")
    started = time.monotonic()
    r = agent.run(None, argv=[sys.executable, "-c", code], timeout=1.0, kill_grace=0.5)
    assert (r.reason, r.term_signal) == ("timeout", signal.SIGTERM)
    assert time.monotonic() - started < 3.0
    assert r.tail == "bye"


# ------------------------------------------------------------------ volume
def test_flood_20m_transcript_has_every_byte_and_the_final_signal(agent: Agent) -> None:
    seen = 0

    def count(chunk: bytes) -> None:
        nonlocal seen
        seen += len(chunk)

    r = agent.run("flood=20M", on_output=count, timeout=60)
    size = agent.transcript.stat().st_size
    assert size >= 20 * 1024 * 1024
    assert r.output_bytes == size == seen
    assert (r.reason, r.exit_status, r.signal) == ("exited", 0, "done")
    with open(agent.transcript, "rb") as fh:
        fh.seek(-200, os.SEEK_END)
        assert fh.read().endswith(DONE_TAG.encode() + b"\r\n")


@pytest.mark.slow
def test_flood_100m_keeps_memory_bounded(tmp_path: Path) -> None:
    stats = _bench_child("attempt", "100M", tmp_path)
    growth_mb = (stats["rss_after_kb"] - stats["rss_before_kb"]) / 1024
    assert stats["signal"] == "done"
    assert stats["mib"] >= 100
    assert growth_mb < 30, stats


# ------------------------------------------------------------------ stdin and spawning
def test_stdin_text_long_lines_and_control_characters_arrive_intact(agent: Agent) -> None:
    """A canonical-mode TTY drops input past 4095 bytes per line and turns ^C,
    ^Z, ^\\ ... into signals or edits: stdin_text must arrive byte for byte."""
    prompt = ("Task id: 5\n" + "Z" * 20000 + "\n"
              + "ctl:\x03\x1a\x1c\x13\x11\x7f\x15\x17\x12\x0f\x04\x16 end é\n"
              + "no final newline")
    argv = [sys.executable, str(FAKE_AGENT), "--prompt-stdin"]
    r = agent.run("echo", prompt=prompt, argv=argv, stdin_text=prompt)
    assert (r.reason, r.exit_status) == ("exited", 0)
    echoed = agent.transcript_bytes().replace(b"\r\n", b"\n")
    assert echoed == prompt.encode() + b"\n"


@pytest.mark.parametrize("answer, code, sig", [("y\n", 0, "done"), ("n\n", 1, None)])
def test_stdin_text_answers_a_question(agent: Agent, answer: str, code: int, sig: str | None) -> None:
    r = agent.run("ask", stdin_text=answer)
    assert (r.exit_status, r.signal) == (code, sig)


def test_spawn_error_for_a_missing_program(agent: Agent) -> None:
    r = agent.run(None, argv=["no-such-agent-program-xyz", "--flag"])
    assert (r.reason, r.exit_status, r.signal) == ("spawn-error", None, None)
    assert "no-such-agent-program-xyz" in (r.error or "")
    assert r.duration < 2


def test_spawn_error_for_a_missing_cwd(tmp_path: Path) -> None:
    r = run_attempt([sys.executable, "-c", "print(1)"], cwd=str(tmp_path / "nope"), env=None,
                    prompt="", transcript_path=str(tmp_path / "t.log"))
    assert r.reason == "spawn-error"
    assert "nope" in (r.error or "")


def test_cwd_vanishing_after_the_check_is_still_a_spawn_error(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With spawn(cwd=...) a failing chdir raises in the forked copy of *this*
    process, which would then go on running pytest inside the PTY."""
    from seqharness import session

    monkeypatch.setattr(session, "_cwd_problem", lambda cwd: None)
    started = time.monotonic()
    r = run_attempt([sys.executable, "-c", "print(1)"], cwd=str(tmp_path / "gone"), env=None,
                    prompt="", transcript_path=str(tmp_path / "t.log"), timeout=5)
    assert r.reason == "spawn-error"
    assert "gone" in (r.error or "")
    assert time.monotonic() - started < 2
    assert (tmp_path / "t.log").read_bytes() == b""


def test_spawn_error_for_a_file_that_is_not_executable(agent: Agent) -> None:
    script = agent.tmp / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    r = agent.run(None, argv=[str(script)])
    assert r.reason == "spawn-error"
    assert "not-executable.sh" in (r.error or "")


def test_single_element_argv_with_spaces_is_not_resplit(agent: Agent) -> None:
    folder = agent.tmp / "my agents"
    folder.mkdir()
    program = folder / "fake agent 'quoted'"
    program.write_text(f"#!{sys.executable}\n" + FAKE_AGENT.read_text().split("\n", 1)[1])
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    r = agent.run("done", argv=[str(program)])
    assert (r.reason, r.exit_status, r.signal) == ("exited", 0, "done"), r.error


def test_relative_program_path_is_relative_to_cwd(agent: Agent) -> None:
    shutil.copy(FAKE_AGENT, agent.tmp / "agent.py")
    r = agent.run("done", argv=["./agent.py"])
    assert (r.reason, r.signal) == ("exited", "done"), r.error


# ------------------------------------------------------------------ benchmark
def _bench_child(mode: str, size: str, folder: Path) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter, so ru_maxrss is its own."""
    proc = subprocess.run(
        [sys.executable, __file__, f"child-{mode}", size, str(folder)],
        cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _child_attempt(size: str, folder: str) -> dict[str, Any]:
    env = dict(os.environ, FAKE_AGENT_BEHAVIOUR=f"flood={size}")
    transcript = os.path.join(folder, "flood.log")
    before = _maxrss_kb()
    started = time.monotonic()
    r = run_attempt([sys.executable, str(FAKE_AGENT), "Task id: bench"], cwd=folder, env=env,
                    prompt="Task id: bench", transcript_path=transcript, timeout=600)
    seconds = time.monotonic() - started
    after = _maxrss_kb()
    os.unlink(transcript)
    return {"mode": "run_attempt", "mib": r.output_bytes / 2**20, "seconds": seconds,
            "mib_per_s": r.output_bytes / 2**20 / seconds, "rss_before_kb": before,
            "rss_after_kb": after, "signal": r.signal}


def _child_raw(size: str, folder: str, to_file: bool) -> dict[str, Any]:
    import pty  # noqa: F401  (os.openpty is the same PTY pair pty.fork uses)

    env = dict(os.environ, FAKE_AGENT_BEHAVIOUR=f"flood={size}")
    before = _maxrss_kb()
    started = time.monotonic()
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, str(FAKE_AGENT), "Task id: bench"], stdin=slave,
                            stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    sink = open(os.path.join(folder, "raw.log"), "ab", buffering=0) if to_file else None
    total = 0
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the slave side is closed
            break
        if not data:
            break
        total += len(data)
        if sink is not None:
            sink.write(data)
    proc.wait()
    os.close(master)
    seconds = time.monotonic() - started
    if sink is not None:
        sink.close()
        os.unlink(sink.name)
    return {"mode": "raw os.read" + (" + file" if to_file else ""), "mib": total / 2**20,
            "seconds": seconds, "mib_per_s": total / 2**20 / seconds, "rss_before_kb": before,
            "rss_after_kb": _maxrss_kb(), "signal": None}


def _main(argv: list[str]) -> int:
    command = argv[0] if argv else "bench"
    if command == "child-attempt":
        print(json.dumps(_child_attempt(argv[1], argv[2])))
        return 0
    if command in ("child-raw", "child-rawfile"):
        print(json.dumps(_child_raw(argv[1], argv[2], command == "child-rawfile")))
        return 0
    size = argv[1] if len(argv) > 1 else "100M"
    rounds = int(argv[2]) if len(argv) > 2 else 3
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("raw", "rawfile", "attempt"):
            for _ in range(rounds):
                s = _bench_child(mode, size, Path(folder))
                print(f"{s['mode']:<20} {s['mib']:7.1f} MiB {s['seconds']:6.2f} s "
                      f"{s['mib_per_s']:6.1f} MiB/s  peak RSS {s['rss_after_kb'] / 1024:6.1f} MiB "
                      f"(+{(s['rss_after_kb'] - s['rss_before_kb']) / 1024:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


@pytest.mark.parametrize("screen, expected", [
    (b"Working...\r\nApply the migration? [y/n] ", True),
    (b"Do you trust this folder?\r\n", True),
    (b"\x1b[1m\xe2\x9d\xaf 1. Yes, I trust this folder\x1b[0m\r\n  2. No, exit\r\n", True),
    (b"Continue (yes/no): ", True),
    (b"Press Enter to continue", True),
    (b"running tests\r\n42 passed\r\n", False),
    (b'{"type":"message","content":"Is this right?"}\r\n', False),
    (b"", False),
])
def test_looks_like_question(screen: bytes, expected: bool) -> None:
    from seqharness.session import looks_like_question

    assert looks_like_question(screen) is expected
