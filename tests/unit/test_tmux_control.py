"""TmuxView over one persistent ``tmux -C`` control connection, against real tmux.

Every test uses a private server (``-L``, ``-f /dev/null``) from the ``server``
fixture of ``test_tmux.py``, killed at teardown.  No TTY is needed: run
``setsid python -m pytest tests/unit/test_tmux_control.py -q </dev/null``.

What is pinned here: the commands of a view share one control client (no
client process per command), arguments reach tmux literally whatever they
contain, hook output never passes for a reply, a dead or hung control client
costs one command at most (per-call fallback), no control client outlives its
view or its harness, and a busy pane's output never travels over the
connection.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import test_tmux
from test_tmux import HAVE_TMUX, Server, wait_for

from seqharness.tmux import TmuxError, TmuxView
from seqharness.tmux_control import command_line

server = test_tmux.server  # the private-server fixture, shared

pytestmark = [pytest.mark.tmux, pytest.mark.skipif(not HAVE_TMUX, reason="tmux is not installed")]

#: Argument texts that the tmux command parser would otherwise act on.
HOSTILE_ARGS = [
    "it's",
    "'",
    "'\\''",
    "a;",
    ";b",
    "\\;",
    "x\\",
    "$(touch X)",
    "`touch X`",
    "$HOME",
    "~",
    "~root/x",
    "#{session_name}",
    "# comment",
    "{",
    "}",
    "{end}",
    "%if 1",
    "FOO=bar",
    '"double"',
    "\\e\\n\\001\\u00e9",
    "tab\there",
    "cr\rhere",
    "esc\x1b[31m",
    "ünïcödé",
    "\u2028\ufeff\U0001f600",
    "",
    " ",
    "-t",
    "--",
]

#: A file name that is not UTF-8, as Python decodes it (``surrogateescape``).
NOT_UTF8 = os.fsdecode(b"bad-utf8-\xff\x80")


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def control_clients(server: Server) -> list[str]:
    out = server.tmux("list-clients", "-F", "#{client_pid} #{client_flags}", check=False).stdout
    return [line for line in out.splitlines() if "control-mode" in line]


def pane_argv(server: Server, view: TmuxView, wid: str) -> list[str]:
    """The argv of the process tmux started in window ``wid`` (from /proc), once
    it has exec'd (until then /proc shows the forked tmux server's argv)."""
    pid = server.tmux("display-message", "-p", "-t", f"={view.session}:{wid}", "#{pane_pid}")
    argv: list[str] = []

    def execd() -> bool:
        raw = Path(f"/proc/{int(pid.stdout)}/cmdline").read_bytes()
        argv[:] = [os.fsdecode(part) for part in raw.split(b"\0")[:-1]]
        return bool(argv) and argv[0] != "tmux"

    assert wait_for(execd, interval=0.01), argv
    return argv


def started_view(server: Server, **kwargs: object) -> TmuxView:
    view = server.view(**kwargs)
    view.start()
    return view


# --------------------------------------------------------------------------- quoting (no tmux)


def test_command_line_quotes_every_special_argument() -> None:
    line = command_line(["new-window", "-t", "=run:{end}", "--", "a b", "it's", ""])
    assert line == "new-window -t '=run:{end}' -- 'a b' 'it'\\''s' ''"
    for arg in HOSTILE_ARGS:
        text = command_line(["display-message", arg])
        assert text is not None and not text.endswith("\\"), arg
    # Not expressible on one control line: the caller falls back to a client process.
    assert command_line(["display-message", "a\nb"]) is None
    assert command_line(["display-message", NOT_UTF8]) is None  # tmux's parser rejects it
    assert command_line([]) is None


# --------------------------------------------------------------------------- one connection


def test_commands_share_one_control_client(server: Server, tmp_path: Path) -> None:
    view = started_view(server, keep_windows=5)
    view.open_window("task-0", tmp_path / "0.log")
    pid = view.control_pid
    assert pid is not None and alive(pid)
    spawned = view.processes_spawned
    for i in range(1, 51):
        wid = view.open_window(f"task-{i}", tmp_path / f"{i}.log")
        if i % 2:
            view.close_window(wid)
    assert view.window_ids() == view._windows  # tracked == real
    assert len(view.window_ids()) == 5
    assert view.processes_spawned == spawned  # no client process per command
    assert view.control_pid == pid
    # tmux sees exactly one control client: ours, without pane output, not sizing windows.
    clients = control_clients(server)
    assert len(clients) == 1, clients
    assert clients[0].split()[0] == str(pid)
    assert "no-output" in clients[0] and "ignore-size" in clients[0]


def test_windows_keep_their_size_with_the_control_client(server: Server, tmp_path: Path) -> None:
    view = started_view(server, fixed_size=False, width=120, height=40)
    wid = view.open_window("task-1", tmp_path / "1.log")
    assert view.control_pid is not None
    size = server.tmux("display-message", "-p", "-t", f"=run:{wid}", "#{window_width}x#{window_height}")
    assert size.stdout.strip() == "120x40"


def test_threads_share_the_connection_safely(server: Server, tmp_path: Path) -> None:
    view = started_view(server, keep_windows=None)
    errors: list[BaseException] = []
    ids: list[str] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                ids.append(view.open_window(f"t{n}-{i}", tmp_path / f"{n}-{i}.log"))
                view.window_ids()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(set(ids)) == 45
    assert sorted(view.window_ids(), key=lambda w: int(w[1:])) == sorted(ids, key=lambda w: int(w[1:]))


# --------------------------------------------------------------------------- quoting (real tmux)


def test_hostile_viewer_paths_reach_tail_literally(server: Server, tmp_path: Path) -> None:
    view = started_view(server, keep_windows=None)
    view.open_window("warm-up", tmp_path / "w.log")
    spawned = view.processes_spawned
    folder = tmp_path / "it's; $(touch X) `touch X` #{session_name} ~ {x} %if \\"
    folder.mkdir()
    names = [a for a in HOSTILE_ARGS if a and "/" not in a]
    for i, name in enumerate(names):
        path = folder / f"{i}-{name};"  # a trailing ';' is a command separator to tmux
        wid = view.open_window(f"task-{i}", path)
        argv = pane_argv(server, view, wid)
        assert argv[0] == "tail", argv  # exec'd directly, no sh -c
        assert argv[-1] == str(path), (name, argv)
    assert view.processes_spawned == spawned  # all went over the control connection
    odd = folder / NOT_UTF8
    wid = view.open_window("task-odd", odd)
    assert view.processes_spawned == spawned + 1  # a client process took that one
    assert pane_argv(server, view, wid)[-1] == str(odd)
    view.window_ids()
    assert view.processes_spawned == spawned + 1
    time.sleep(0.2)
    assert not list(tmp_path.rglob("X"))


def test_hostile_arguments_round_trip(server: Server, tmp_path: Path) -> None:
    view = started_view(server)
    out = tmp_path / "argv.json"
    script = "import json,sys; open(sys.argv[1],'w').write(json.dumps(sys.argv[2:]))"
    view._run(  # the raw command path
        "new-window", "-d", "-t", "=run:", "--", sys.executable, "-c", script, str(out), *HOSTILE_ARGS
    )
    assert view.control_pid is not None
    assert wait_for(lambda: out.exists() and out.stat().st_size > 0)
    assert json.loads(out.read_text()) == HOSTILE_ARGS


def test_newline_in_an_argument_falls_back_to_a_client_process(server: Server, tmp_path: Path) -> None:
    view = started_view(server)
    view.open_window("warm-up", tmp_path / "w.log")
    spawned = view.processes_spawned
    path = tmp_path / "two\nlines;"
    wid = view.open_window("task-nl", path)
    assert view.processes_spawned == spawned + 1
    assert pane_argv(server, view, wid)[-1] == str(path)
    view.window_ids()  # the connection is still in step
    assert view.processes_spawned == spawned + 1


def test_per_call_client_keeps_trailing_semicolons(server: Server, tmp_path: Path) -> None:
    view = started_view(server)
    out = tmp_path / "argv.json"
    script = "import json,sys; open(sys.argv[1],'w').write(json.dumps(sys.argv[2:]))"
    args = ["a;", "b\\;", "\\;", "line\nbreak;", NOT_UTF8 + ";"]  # newline: per-call client
    view._run("new-window", "-d", "-t", "=run:", "--", sys.executable, "-c", script, str(out), *args)
    assert wait_for(lambda: out.exists() and out.stat().st_size > 0)
    assert json.loads(out.read_text()) == args


# --------------------------------------------------------------------------- protocol


def test_hook_blocks_do_not_pass_for_replies(server: Server, tmp_path: Path) -> None:
    view = started_view(server, keep_windows=3)
    # Extra hooks whose output looks like a reply (a window id) and a failing one.
    server.tmux("set-hook", "-a", "-t", "=run:", "after-new-window", "display-message -p @999")
    server.tmux("set-hook", "-a", "-t", "=run:", "after-new-window", "kill-window -t @998")
    server.tmux("set-hook", "-t", "=run:", "window-unlinked", "display-message -p @997")
    ids = []
    for i in range(8):
        ids.append(view.open_window(f"task-{i}", tmp_path / f"{i}.log"))
        assert ids[-1] not in ("@999", "@998", "@997")
        assert view.window_ids() == ids[-3:]
    with pytest.raises(TmuxError) as err:
        view._run("kill-window", "-t", "=run:@12345")
    assert err.value.gone
    assert view.window_ids() == ids[-3:]
    assert len(set(ids)) == 8


def test_failing_command_in_a_sequence_stops_it(server: Server) -> None:
    view = started_view(server)
    view.window_ids()
    assert view.control_pid is not None
    with pytest.raises(TmuxError) as err:
        view._run(
            "kill-window", "-t", "=run:@4242", ";", "set-option", "-t", "=run:", "@after", "ran"
        )
    assert err.value.gone and err.value.returncode == 1 and "@4242" in err.value.stderr
    shown = server.tmux("show-options", "-t", "=run:", "@after", check=False).stdout
    assert "ran" not in shown
    out = view._run("display-message", "-p", "-t", "=run:", "one", ";", "display-message", "-p", "two")
    assert out == "one\ntwo\n"


def test_busy_pane_output_is_not_streamed(server: Server, tmp_path: Path) -> None:
    view = started_view(server)
    view.window_ids()
    pid = view.control_pid
    assert pid is not None

    def written() -> int:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
        raise AssertionError("no wchar")

    before = written()
    busy = server.tmux("new-window", "-P", "-F", "#{window_id}", "-t", "=run:", "--", "yes").stdout.strip()
    server.tmux("select-window", "-t", f"=run:{busy}")
    time.sleep(1.0)
    for i in range(5):
        started = time.monotonic()
        wid = view.open_window(f"task-{i}", tmp_path / f"{i}.log")
        assert time.monotonic() - started < 0.5
        assert wid in view.window_ids()
    assert written() - before < 64 * 1024  # notifications only, no %output
    assert view.control_pid == pid


# --------------------------------------------------------------------------- failure and fallback


def test_killed_control_client_falls_back(server: Server, tmp_path: Path) -> None:
    view = started_view(server, keep_windows=3)
    first = view.open_window("task-0", tmp_path / "0.log")
    pid = view.control_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not alive(pid))
    second = view.open_window("task-1", tmp_path / "1.log")
    assert view.window_ids() == [first, second]
    assert view.control_pid != pid
    assert not alive(pid)  # reaped, not a zombie child of ours
    # Later commands use a connection again, and it is in step.
    ids = [view.open_window(f"task-{i}", tmp_path / f"{i}.log") for i in range(2, 6)]
    assert view.window_ids() == ids[-3:]
    assert view.control_pid is not None


def server_pid(server: Server) -> int:
    return int(server.tmux("display-message", "-p", "#{pid}").stdout)


def test_control_client_lost_mid_command_leaves_no_untracked_window(server: Server, tmp_path: Path) -> None:
    # tmux's server reads and writes a control client's stdin/stdout itself (the
    # client hands its fds over), so only a stopped *server* leaves a command
    # written but unanswered.  The client dies meanwhile; when the server goes
    # on it may or may not run that command before dropping the client.
    view = started_view(server, keep_windows=2)
    ids = [view.open_window(f"task-{i}", tmp_path / f"{i}.log") for i in range(2)]
    pid, spid = view.control_pid, server_pid(server)
    assert pid is not None

    def later() -> None:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        os.kill(spid, signal.SIGCONT)

    os.kill(spid, signal.SIGSTOP)
    timer = threading.Timer(0.3, later)
    timer.start()
    try:
        ids.append(view.open_window("task-2", tmp_path / "2.log"))
    finally:
        timer.join()
        os.kill(spid, signal.SIGCONT)
    real = view.window_ids()
    assert real == view._windows  # nothing untracked, even a second copy
    assert len(real) == 2 and real[-1] == ids[-1]
    ids.append(view.open_window("task-3", tmp_path / "3.log"))
    assert view.window_ids() == [real[-1], ids[-1]]


def test_hung_server_times_out_and_connection_is_replaced(server: Server, tmp_path: Path) -> None:
    view = started_view(server, timeout=0.5)
    view.open_window("task-0", tmp_path / "0.log")
    pid, spid = view.control_pid, server_pid(server)
    assert pid is not None
    os.kill(spid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(TmuxError, match="timed out"):
            view.window_ids()
        assert time.monotonic() - started < 2.0
        assert view.control_pid is None and not alive(pid)  # killed and reaped, not left behind
    finally:
        os.kill(spid, signal.SIGCONT)
    assert len(view.window_ids()) == 1
    assert view.control_pid not in (None, pid)  # a new connection


def test_session_killed_by_someone_else(server: Server, tmp_path: Path) -> None:
    view = started_view(server)
    view.open_window("task-0", tmp_path / "0.log")
    pid = view.control_pid
    assert pid is not None
    server.tmux("new-session", "-d", "-s", "other", "--", "sleep", "600")
    server.tmux("kill-session", "-t", "=run")
    with pytest.raises(TmuxError) as err:
        view.open_window("task-1", tmp_path / "1.log")
    assert err.value.gone
    assert wait_for(lambda: not alive(pid))
    assert control_clients(server) == []


# --------------------------------------------------------------------------- no leftovers


def test_kill_session_and_close_end_the_control_client(server: Server, tmp_path: Path) -> None:
    view = started_view(server)
    view.open_window("task-0", tmp_path / "0.log")
    pid = view.control_pid
    assert pid is not None
    view.close()
    assert view.control_pid is None and not alive(pid)
    assert control_clients(server) == []
    view.open_window("task-1", tmp_path / "1.log")  # reconnects lazily
    pid = view.control_pid
    assert pid is not None
    view.kill_session()
    assert view.control_pid is None and not alive(pid)
    view.close()  # idempotent


CHILD = textwrap.dedent(
    """
    import gc, os, signal, sys, time
    from seqharness.tmux import TmuxView
    socket, how, log = sys.argv[1:]
    # A harness takes Ctrl-C even when started with SIGINT ignored (as a shell's
    # background job is).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    view = TmuxView("run", socket_name=socket, config_file="/dev/null")
    view.start()
    view.open_window("task-1", log)
    print(view.control_pid, flush=True)
    sys.stdin.readline()  # the test has seen the client alive
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "interrupt":
        time.sleep(30)
    elif how == "drop":
        del view
        gc.collect()
        print("dropped", flush=True)
        time.sleep(30)
    """
)


@pytest.mark.parametrize("how", ["exit", "kill", "interrupt", "drop"])
def test_no_control_client_outlives_the_harness(server: Server, tmp_path: Path, how: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, server.socket_name, how, str(tmp_path / "t.log")],
        stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        pid = int(proc.stdout.readline())
        assert alive(pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        if how == "interrupt":
            time.sleep(0.2)  # into its sleep
            os.killpg(proc.pid, signal.SIGINT)  # a Ctrl-C reaches the whole foreground group
        if how == "drop":  # a view that is garbage-collected closes its connection
            assert proc.stdout.readline().strip() == "dropped"
            assert wait_for(lambda: not alive(pid), timeout=5)
            assert proc.poll() is None
            proc.kill()
        proc.wait(10)
        assert wait_for(lambda: not alive(pid), timeout=5)
        assert wait_for(lambda: control_clients(server) == [], timeout=5)
        # The session and its windows stay for the human.
        assert server.tmux("has-session", "-t", "=run", check=False).returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_run_leaves_no_control_client(tmux_project) -> None:  # conftest fixture
    tmux_project.spec("demo", "- [ ] 1. One\n- [ ] 2. Two\n- [ ] 3. Three\n")
    res = tmux_project.run(".kiro/specs/demo")
    assert res.ret == 0, res.output
    names = tmux_project.tmux("list-windows", "-t", "=sequential-demo", "-F", "#{window_name}").split()
    assert {"task-1", "task-2", "task-3"} <= set(names)
    assert "control-mode" not in tmux_project.tmux("list-clients", "-F", "#{client_flags}")
    needle = f"-L\0{tmux_project.tmux_socket}\0".encode()
    leftovers = []
    for entry in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmd and b"\0-C\0" in cmd and alive(int(entry)):
            leftovers.append(cmd)
    assert leftovers == []


def test_control_client_is_not_in_the_harness_process_group(server: Server, tmp_path: Path) -> None:
    view = started_view(server)
    view.open_window("task-0", tmp_path / "0.log")
    pid = view.control_pid
    assert pid is not None
    assert os.getpgid(pid) != os.getpgrp()  # a Ctrl-C for the run is not one for the view
