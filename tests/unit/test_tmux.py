"""Tests for seqharness.tmux against a real tmux server on a private ``-L`` socket.

Every test server is started with ``-f /dev/null`` (no user config) and killed at
teardown.  Nothing here needs a TTY: run ``setsid python -m pytest
tests/unit/test_tmux.py -q </dev/null`` to check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seqharness import tmux_names
from seqharness.tmux import (
    TmuxError,
    TmuxView,
    sanitize_session_name,
    sanitize_window_name,
)

HAVE_TMUX = shutil.which("tmux") is not None

HOSTILE = [
    "$(touch X)",
    "`touch X`",
    "a; touch X",
    "#{session_name}",
    "line1\nline2",
    "\x1b[31mred\x1b[0m",
    "x:y.z",
    "#(touch X)",
]


# --------------------------------------------------------------------------- fixtures


class Server:
    """A private tmux server (socket name) plus raw access for assertions."""

    def __init__(self, socket_name: str) -> None:
        self.socket_name = socket_name

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        return subprocess.run(
            ["tmux", "-L", self.socket_name, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            env=env,
            check=check,
        )

    def view(self, session: str = "run", **kwargs: object) -> TmuxView:
        kwargs.setdefault("config_file", "/dev/null")
        return TmuxView(session, socket_name=self.socket_name, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(f"shtest-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        yield srv
    finally:
        subprocess.run(
            ["tmux", "-L", srv.socket_name, "kill-server"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
        # tmux leaves its socket file behind; remove ours (only ours, only a socket).
        tmpdir = os.environ.get("TMUX_TMPDIR") or "/tmp"
        for base in {tmpdir, "/tmp"}:
            sock = Path(base) / f"tmux-{os.getuid()}" / srv.socket_name
            if sock.is_socket():
                sock.unlink()


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def dead_pid() -> int:
    """The pid of a process that has already exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- sanitizers (no tmux)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("run", "run"),
        ("my run.1:2", "my-run-1-2"),
        ("#{session_name}", "session_name"),
        ("$(touch X)", "touch-X"),
        ("a\nb\x1bc", "a-b-c"),
        ("", "seqharness"),
        ("...", "seqharness"),
        ("x" * 100, "x" * 64),
        ("ünïcode", "n-code"),
    ],
)
def test_sanitize_session_name(raw: str, expected: str) -> None:
    assert sanitize_session_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("task-1.1", "task-1.1"),
        ("task-1.1 build: the #{thing}", "task-1.1-build-the-thing"),
        ("`touch X`; rm", "touch-X-rm"),
        ("\x1b[31mred\x1b[0m", "31mred-0m"),
        ("tab\there", "tab-here"),
        ("", "task"),
        ("#:;", "task"),
        ("t" * 63 + " x", "t" * 63),
    ],
)
def test_sanitize_window_name(raw: str, expected: str) -> None:
    assert sanitize_window_name(raw) == expected


@pytest.mark.parametrize("raw", HOSTILE + ["a" * 200, "\x00\x07\x7f", "  \t  "])
def test_sanitized_names_are_safe(raw: str) -> None:
    for name, extra in ((sanitize_session_name(raw), ""), (sanitize_window_name(raw), ".")):
        assert name
        assert len(name) <= 64
        assert all(c.isascii() and (c.isalnum() or c in "_-" + extra) for c in name), name
        assert "." not in name or extra


def test_task_windows_parses_listing() -> None:
    listing = "@10 \n@2 placeholder\n@9 \nnot-an-id x\n@3x \n@11\n"
    assert tmux_names.task_windows(listing) == ["@9", "@10", "@11"]
    assert tmux_names.task_windows("") == []


def test_split_commands() -> None:
    assert tmux_names.split_commands(["a", "1", ";", "b", ";", ";", "c;"]) == [
        ["a", "1"], ["b"], ["c;"],
    ]
    assert tmux_names.split_commands([";"]) == []


@pytest.mark.parametrize(
    ("arg", "expected"),
    [(";", ";"), ("x;", "x\\;"), ("x\\;", "x\\\\;"), ("x", "x"), ("a;b", "a;b"), ("", "")],
)
def test_escape_trailing_semicolon(arg: str, expected: str) -> None:
    assert tmux_names.escape_trailing_semicolon(arg) == expected


def test_error_gone() -> None:
    assert TmuxError("x", stderr="can't find window: @7").gone
    assert TmuxError("tmux kill-session failed: No Server Running on /tmp/x").gone
    assert not TmuxError("tmux new-window failed", stderr="create window failed").gone


def test_attach_command() -> None:
    assert TmuxView("run 1", socket_name="sock").attach_command() == "tmux -L sock attach -t run-1"
    assert TmuxView("r", socket_name="a b").attach_command() == "tmux -L 'a b' attach -t r"


def test_attach_command_default_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQHARNESS_TMUX_SOCKET", raising=False)
    assert TmuxView("r").attach_command() == "tmux attach -t r"
    monkeypatch.setenv("SEQHARNESS_TMUX_SOCKET", "fromenv")
    view = TmuxView("r")
    assert view.socket_name == "fromenv"
    assert view.attach_command() == "tmux -L fromenv attach -t r"


def test_available() -> None:
    assert TmuxView.available("/nonexistent/tmux") is False
    assert TmuxView.available("tmux") is HAVE_TMUX


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        TmuxView("r", keep_windows=0)
    with pytest.raises(ValueError):
        TmuxView("r", width=0)
    view = TmuxView("r")
    for bad in ("1", "task-1", "@1; kill-server", "=r:@1", "@"):
        with pytest.raises(ValueError):
            view.capture(bad)
        with pytest.raises(ValueError):
            view.close_window(bad)


def test_missing_binary_raises() -> None:
    view = TmuxView("r", socket_name="unused", tmux_bin="/nonexistent/tmux")
    with pytest.raises(TmuxError, match="not found"):
        view.start()
    with pytest.raises(TmuxError):
        view.open_window("task-1", os.devnull)


# --------------------------------------------------------------------------- real tmux

@pytest.mark.tmux
@pytest.mark.skipif(not HAVE_TMUX, reason="tmux is not installed")
class TestWithTmux:
    def test_start_creates_session_and_is_idempotent(self, server: Server) -> None:
        view = server.view("run.1:x", width=120, height=40)
        assert view.session == "run-1-x"
        view.start()
        assert server.tmux("has-session", "-t", "=run-1-x").returncode == 0
        view.start()  # existing session: no error, no second session
        sessions = server.tmux("list-sessions", "-F", "#{session_name}").stdout.split()
        assert sessions == ["run-1-x"]
        size = server.tmux(
            "display-message", "-p", "-t", "=run-1-x:", "#{window_width}x#{window_height}"
        )
        assert size.stdout.strip() == "120x40"
        # The placeholder window survives its command and is not a task window.
        assert view.window_ids() == []
        dead = server.tmux("list-windows", "-t", "=run-1-x:", "-F", "#{pane_dead}").stdout
        assert dead.split() == ["1"]
        assert view.attach_command() == f"tmux -L {server.socket_name} attach -t run-1-x"

    def test_session_exact_match_not_prefix(self, server: Server) -> None:
        server.tmux("-f", "/dev/null", "new-session", "-d", "-s", "runner", "--", "sleep", "600")
        view = server.view("run")
        view.start()  # must create "run", not adopt "runner" by prefix
        names = sorted(server.tmux("list-sessions", "-F", "#{session_name}").stdout.split())
        assert names == ["run", "runner"]
        view.kill_session()
        assert server.tmux("list-sessions", "-F", "#{session_name}").stdout.split() == ["runner"]

    def test_open_window_streams_transcript(self, server: Server, tmp_path: Path) -> None:
        view = server.view()
        view.start()
        transcript = tmp_path / "task-1.1.log"
        transcript.write_bytes(b"first line\n")
        wid = view.open_window("task-1.1", str(transcript))
        assert wid.startswith("@") and wid[1:].isdigit()
        assert view.window_ids() == [wid]
        fmt = "#{window_id} #{window_name}"
        names = server.tmux("list-windows", "-t", "=run:", "-F", fmt).stdout
        assert f"{wid} task-1.1" in names.splitlines()
        assert wait_for(lambda: "first line" in view.capture(wid))
        with transcript.open("ab") as fh:
            fh.write(b"\x1b[1;31mRED\x1b[0m plain \x1b[38;2;10;200;30mTRUECOLOUR\x1b[0m\n")
            fh.write(b"second line\n")
        assert wait_for(lambda: "second line" in view.capture(wid), timeout=2.5)
        text = view.capture(wid)
        assert "RED plain TRUECOLOUR" in text
        assert "\x1b" not in text
        coloured = view.capture(wid, escapes=True)
        assert "\x1b[" in coloured and "RED" in coloured
        # window options applied by the after-new-window hook
        opts = server.tmux("show-options", "-w", "-t", f"=run:{wid}").stdout
        for line in ("remain-on-exit on", "automatic-rename off", "allow-rename off"):
            assert line in opts.splitlines()

    def test_transcript_created_if_missing_and_relative_path(
        self, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        view = server.view()
        view.start()
        wid = view.open_window("task-2", "rel.log")
        assert (tmp_path / "rel.log").exists()
        (tmp_path / "rel.log").write_text("hello relative\n")
        assert wait_for(lambda: "hello relative" in view.capture(wid))

    def test_pane_remains_after_viewer_exits(self, server: Server, tmp_path: Path) -> None:
        view = server.view()
        view.start()
        transcript = tmp_path / "t.log"
        transcript.write_text("agent output\nOUTCOME: passed\n")
        wid = view.open_window("task-3", str(transcript), harness_pid=dead_pid())

        def dead() -> bool:
            out = server.tmux("display-message", "-p", "-t", f"=run:{wid}", "#{pane_dead}").stdout
            return out.strip() == "1"

        assert wait_for(dead, timeout=5)
        assert wid in view.window_ids()
        # tmux may scroll the screen by one line to print its "Pane is dead"
        # notice (drawn some time after pane_dead is set), so read the history.
        assert wait_for(lambda: "OUTCOME: passed" in view.capture(wid, history=True), timeout=5)
        assert "agent output" in view.capture(wid, history=True)

    def test_keep_windows_recycles_oldest(self, server: Server, tmp_path: Path) -> None:
        view = server.view(keep_windows=3)
        view.start()
        ids = []
        for i in range(6):
            path = tmp_path / f"{i}.log"
            ids.append(view.open_window(f"task-{i}", str(path)))
        assert len(set(ids)) == 6
        assert view.window_ids() == ids[-3:]
        names = server.tmux("list-windows", "-t", "=run:", "-F", "#{window_name}").stdout.split()
        assert names == ["seqharness", "task-3", "task-4", "task-5"]

    def test_restart_adopts_existing_windows(self, server: Server, tmp_path: Path) -> None:
        first = server.view(keep_windows=2)
        first.start()
        old = [first.open_window(f"task-{i}", str(tmp_path / f"{i}.log")) for i in range(2)]
        second = server.view(keep_windows=2)  # e.g. a resumed run, new process
        second.start()
        new = second.open_window("task-9", str(tmp_path / "9.log"))
        assert second.window_ids() == [old[1], new]

    def test_close_window(self, server: Server, tmp_path: Path) -> None:
        view = server.view()
        view.start()
        a = view.open_window("task-a", str(tmp_path / "a.log"))
        b = view.open_window("task-b", str(tmp_path / "b.log"))
        view.close_window(a)
        assert view.window_ids() == [b]
        view.close_window(a)  # already gone: no error
        server.tmux("kill-window", "-t", f"=run:{b}")  # closed by a human
        view.close_window(b)
        assert view.window_ids() == []

    def test_window_ids_are_scoped_to_session(self, server: Server, tmp_path: Path) -> None:
        other = server.view("other")
        other.start()
        foreign = other.open_window("task-x", str(tmp_path / "x.log"))
        view = server.view("run")
        view.start()
        with pytest.raises(TmuxError):
            view.capture(foreign)
        view.close_window(foreign)  # not ours: reported as gone, left alone
        assert other.window_ids() == [foreign]

    def test_hostile_names_are_not_interpreted(
        self, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        tmp_x = Path("/tmp/X")
        existed = tmp_x.exists()
        view = server.view("$(touch X)`touch X`;#{session_name}\n\x1b")
        view.start()
        assert view.session == "touch-X-touch-X-session_name"
        # hostile transcript path as well: passed to tail as one argv element
        hostile_dir = tmp_path / "$(touch X)`touch X`;#{session_name}"
        hostile_dir.mkdir()
        ids = []
        for i, raw in enumerate(HOSTILE):
            path = hostile_dir / f"{i};$(touch X).log"
            path.write_text(f"payload {i} $(touch X) `touch X` #{{session_name}}\n")
            ids.append(view.open_window(raw, str(path)))
        for i, wid in enumerate(ids):
            assert wait_for(lambda: f"payload {i}" in view.capture(wid)), i
        out = server.tmux("list-windows", "-t", f"={view.session}:", "-F", "#{window_name}").stdout
        expected = ["seqharness"] + [sanitize_window_name(raw) for raw in HOSTILE]
        assert out == "".join(name + "\n" for name in expected)
        for name in expected:
            assert not set(name) & set("#$`;: \t\r\n\x1b\x00"), name
            assert all(0x20 < ord(c) < 0x7F for c in name), name
        sessions = server.tmux("list-sessions", "-F", "#{session_name}").stdout
        assert sessions == "touch-X-touch-X-session_name\n"
        time.sleep(0.3)
        assert not (tmp_path / "X").exists()
        assert not (hostile_dir / "X").exists()
        assert tmp_x.exists() == existed

    def test_missing_binary_raises(self, server: Server) -> None:
        view = TmuxView("run", socket_name=server.socket_name, tmux_bin="/nonexistent/tmux")
        with pytest.raises(TmuxError):
            view.start()

    @pytest.mark.parametrize("bad_socket", ["no-such-dir-{}/sock", "x" * 200])
    def test_unusable_socket_raises(self, bad_socket: str) -> None:
        name = bad_socket.format(uuid.uuid4().hex)
        view = TmuxView("run", socket_name=name, config_file="/dev/null")
        with pytest.raises(TmuxError):
            view.start()

    def test_errors_after_session_killed(self, server: Server, tmp_path: Path) -> None:
        view = server.view()
        view.start()
        view.kill_session()
        view.kill_session()  # idempotent, even with the server gone
        with pytest.raises(TmuxError):
            view.open_window("task-1", str(tmp_path / "1.log"))
        with pytest.raises(TmuxError):
            view.window_ids()
