"""A read-only tmux view of a run: one detached tmux session, one window per task attempt,
each window replaying that attempt's transcript file, so a human can attach and watch
the agents work (or see their last screens after a crash) without ever touching them.
This module holds :class:`TmuxView`, the only place that talks to tmux; the pure name
and argv helpers are in :mod:`seqharness.tmux_names` and the ``tmux -C`` connection in
:mod:`seqharness.tmux_control`.  Design, safety rules and measured cost: ``docs/tmux.md``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Sequence

from seqharness import tmux_names as names
from seqharness.tmux_control import ControlClient, ControlLost, ControlTimeout, command_line
from seqharness.tmux_names import sanitize_session_name, sanitize_window_name

__all__ = [
    "TmuxError",
    "TmuxView",
    "sanitize_session_name",
    "sanitize_window_name",
]

#: Environment variable naming the tmux socket (``tmux -L NAME``) when none is given.
SOCKET_ENV = "SEQHARNESS_TMUX_SOCKET"

PLACEHOLDER_WINDOW_NAME = "seqharness"

# Window options every window of ours gets.  Fixed strings only: they are parsed
# by tmux's command parser (inside the hook), so nothing untrusted may go here.
_WINDOW_OPTIONS: tuple[tuple[str, str], ...] = (
    ("remain-on-exit", "on"),
    ("automatic-rename", "off"),
    ("allow-rename", "off"),
)
_FIXED_SIZE_OPTION = ("window-size", "manual")

#: Control connections one :meth:`TmuxView.start` may open (the first, then a
#: replacement for each that dies); after that every command uses a client process.
_MAX_CONNECTS = 3


class TmuxError(Exception):
    """A tmux command failed, timed out, or the tmux binary could not be run."""

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str] | None = None,
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.argv: list[str] = list(argv or [])
        self.returncode = returncode
        self.stderr = stderr

    @property
    def gone(self) -> bool:
        """True when tmux reported the target (or the whole server) as not existing."""
        return names.reports_gone(f"{self.stderr}\n{self}")


class TmuxView:
    """One detached tmux session showing a run's per-attempt transcripts.

    ``session`` is sanitised (see :attr:`session`).  ``socket_name`` selects a
    tmux server with ``tmux -L NAME``; ``None`` uses ``$SEQHARNESS_TMUX_SOCKET``
    if set, else the default server.  ``width``/``height`` set the window size;
    with ``fixed_size`` (default) windows keep that size even when a human
    attaches with a different terminal (``window-size manual``), so the replayed
    byte stream renders exactly as the agent drew it -- spawn the agent's PTY
    with ``dimensions=(height, width)``.  At most ``keep_windows`` task windows
    are kept (``None``: unlimited); the oldest are killed first.
    ``config_file`` is passed as ``tmux -f`` (only matters when this call
    starts the server; tests use ``/dev/null``).  ``timeout`` bounds every tmux
    call, in seconds.
    """

    def __init__(
        self,
        session: str,
        *,
        socket_name: str | None = None,
        width: int = 200,
        height: int = 50,
        keep_windows: int | None = 20,
        tmux_bin: str = "tmux",
        config_file: str | None = None,
        fixed_size: bool = True,
        timeout: float = 5.0,
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"window size must be positive, got {width}x{height}")
        if keep_windows is not None and keep_windows < 1:
            raise ValueError(f"keep_windows must be >= 1 or None, got {keep_windows}")
        self.session: str = sanitize_session_name(session)
        if socket_name is None:
            socket_name = os.environ.get(SOCKET_ENV) or None
        self.socket_name: str | None = socket_name
        self.width = int(width)
        self.height = int(height)
        self.keep_windows = keep_windows
        self.tmux_bin = tmux_bin
        self.config_file = config_file
        self.fixed_size = fixed_size
        self.timeout = timeout
        # Task windows we know about, oldest first (ids grow monotonically per server).
        self._windows: list[str] = []
        # tmux must not pick the server or the "current" session from $TMUX when the
        # harness itself runs inside tmux: we always name the server and the target.
        self._env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        #: tmux client processes this view has started: per-call clients and control connections.
        self.processes_spawned = 0
        self._control: ControlClient | None = None
        self._connects_left = 0  # set by start(): no connection before our session exists
        # A command may have run without its answer (connection lost mid-command):
        # re-read the task windows before trusting self._windows again.
        self._resync = False
        # Serialises commands: one control connection carries one exchange at a time.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def available(tmux_bin: str = "tmux") -> bool:
        """True if ``tmux_bin`` can be found (on ``PATH``, or as a path)."""
        return shutil.which(tmux_bin) is not None

    def _base_argv(self) -> list[str]:
        argv = [self.tmux_bin]
        if self.socket_name is not None:
            argv += ["-L", self.socket_name]
        if self.config_file is not None:
            argv += ["-f", self.config_file]
        return argv

    @property
    def control_pid(self) -> int | None:
        """Pid of the live ``tmux -C`` control client, or ``None`` (none open yet, or closed)."""
        control = self._control
        return control.pid if control is not None and control.alive else None

    def close(self) -> None:
        """End the control connection (the session stays).  Later commands reconnect."""
        with self._lock:
            self._close_control(gently=True)

    def _close_control(self, *, gently: bool) -> None:
        control, self._control = self._control, None
        if control is not None:
            control.close(gently=gently)

    def _run(self, *args: str, control: bool = True) -> str:
        """Run a tmux command line and return its output; the only place that talks to tmux.

        ``args`` is an argv list (never parsed by a shell); it may hold several
        tmux commands separated by a lone ``";"`` argument, which stop at the
        first failing one.  Commands go over the control connection when one
        can be had (``control`` and :meth:`start` done) and every argument
        fits on a control line; otherwise, or when the connection is lost, a
        client process runs them (all of them: the commands we chain are
        idempotent).  Raises :class:`TmuxError` on a failing command, a
        timeout, or when tmux cannot be executed.
        """
        with self._lock:
            commands = names.split_commands(args)
            # One control line per command, or none at all if any cannot be sent that way.
            lines = ([ln for cmd in commands if (ln := command_line(cmd)) is not None]
                     if control else [])
            if lines and len(lines) == len(commands) and self._connected():
                try:
                    return self._run_control(args, commands, lines)
                except ControlLost as exc:
                    self._control = None
                    self._resync = self._resync or exc.sent
                except ControlTimeout as exc:
                    self._control = None
                    raise TmuxError(
                        f"tmux {args[0] if args else ''} timed out after {self.timeout}s",
                        argv=self._base_argv() + list(args),
                    ) from exc
            return self._run_process(args)

    def _connected(self) -> bool:
        """True with a live control connection, opening one if allowed."""
        if self._control is not None and self._control.alive:
            return True
        self._close_control(gently=False)
        if self._connects_left <= 0:
            return False
        self._connects_left -= 1
        self.processes_spawned += 1
        try:
            self._control = ControlClient(self._base_argv(), self._session_target(),
                                          env=self._env, timeout=self.timeout)
        except (ControlLost, ControlTimeout, OSError):
            return False
        return True

    def _run_control(self, args: Sequence[str], commands: list[list[str]], lines: list[str]) -> str:
        assert self._control is not None
        out = []
        for cmd, line in zip(commands, lines, strict=True):
            ok, text = self._control.command(line, self.timeout)
            if not ok:
                err = text.strip()
                raise TmuxError(
                    f"tmux {cmd[0]} failed: {err}",
                    argv=self._base_argv() + list(args),
                    returncode=1,  # what the per-call client exits with
                    stderr=text,
                )
            out.append(text)
        return "".join(out)

    def _run_process(self, args: Sequence[str]) -> str:
        """Run ``args`` in a short-lived ``tmux`` client process (argv, no shell)."""
        argv = self._base_argv() + [names.escape_trailing_semicolon(a) for a in args]
        self.processes_spawned += 1
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=self.timeout,
                env=self._env,
                check=False,
            )
        except FileNotFoundError as exc:
            raise TmuxError(f"tmux not found: {self.tmux_bin!r}", argv=argv) from exc
        except PermissionError as exc:
            raise TmuxError(f"tmux not executable: {self.tmux_bin!r}", argv=argv) from exc
        except subprocess.TimeoutExpired as exc:
            raise TmuxError(
                f"tmux {args[0] if args else ''} timed out after {self.timeout}s", argv=argv
            ) from exc
        except OSError as exc:
            raise TmuxError(f"cannot run tmux: {exc}", argv=argv) from exc
        if proc.returncode != 0:
            err = proc.stderr.strip()
            raise TmuxError(
                f"tmux {args[0] if args else ''} failed (exit {proc.returncode}): {err}",
                argv=argv,
                returncode=proc.returncode,
                stderr=proc.stderr,
            )
        return proc.stdout

    def _session_target(self) -> str:
        return f"={self.session}"

    def _window_target(self, window_id: str) -> str:
        if not isinstance(window_id, str) or not names.WINDOW_ID.fullmatch(window_id):
            raise ValueError(f"not a tmux window id: {window_id!r}")
        return f"={self.session}:{window_id}"

    def _window_option_commands(self) -> list[tuple[str, str]]:
        options = list(_WINDOW_OPTIONS)
        if self.fixed_size:
            options.append(_FIXED_SIZE_OPTION)
        return options

    def _hook_args(self) -> list[str]:
        # Runs inside the server right after each new-window in our session, with
        # the new window as the current target.
        hook = " ; ".join(f"set-option -w {k} {v}" for k, v in self._window_option_commands())
        return ["set-hook", "-t", f"={self.session}:", "after-new-window", hook]

    # ------------------------------------------------------------------ session

    def start(self) -> None:
        """Create the session (detached) unless it exists; make it ready for windows.

        Creating is a single tmux call: ``new-session`` with the placeholder
        window, its window options, the session options and the
        ``after-new-window`` hook.  If the session already exists (a resumed
        run), the hook is re-installed and its task windows are adopted, so
        ``keep_windows`` counts them too.  Raises :class:`TmuxError` on failure.
        """
        s_target = f"={self.session}:"
        notice = (
            f"seqharness run {self.session!s}: one window per task attempt "
            "(task-<id>); next window: prefix n, list: prefix w."
        )
        args: list[str] = [
            "new-session", "-d", "-P", "-F", "#{session_id}",
            "-s", self.session, "-x", str(self.width), "-y", str(self.height),
            "-n", PLACEHOLDER_WINDOW_NAME,
            "--", "echo", notice,
        ]  # fmt: skip
        for key, value in self._window_option_commands():
            args += [";", "set-option", "-w", "-t", s_target, key, value]
        args += [";", "set-option", "-w", "-t", s_target, names.ROLE_OPTION, names.PLACEHOLDER_ROLE]
        args += [";", "set-option", "-t", s_target, "destroy-unattached", "off"]
        args += [";", *self._hook_args()]
        try:
            out = self._run(*args)
        except TmuxError as exc:
            if "duplicate session" not in exc.stderr:
                raise
            self._adopt_existing()
            self._connects_left = _MAX_CONNECTS
            return
        # tmux 3.3 can exit 0 after failing to create its server socket (it only
        # prints "error creating ..."), so insist on seeing the new session's id.
        if not names.SESSION_ID.fullmatch(out.strip().splitlines()[0] if out.strip() else ""):
            raise TmuxError(
                f"tmux did not create session {self.session!r} "
                f"(socket {self.socket_name or 'default'!r}); output: {out.strip()!r}",
                argv=self._base_argv() + args,
            )
        self._windows = []
        self._connects_left = _MAX_CONNECTS  # the control client attaches at the next command

    def _adopt_existing(self) -> None:
        out = self._run(
            *self._hook_args(),
            ";", "list-windows", "-t", f"={self.session}:",
            "-F", names.LIST_WINDOWS_FORMAT,
        )  # fmt: skip
        self._windows = names.task_windows(out)

    def kill_session(self) -> None:
        """Kill the session; nothing happens if it (or its server) is already gone.

        The control connection is closed first and the kill runs in a client
        process: tmux detaches every client of a killed session, so the kill
        would otherwise race its own connection.  No reconnecting until
        :meth:`start`.
        """
        self._windows = []
        with self._lock:
            self._connects_left = 0
            self._close_control(gently=True)
        try:
            self._run("kill-session", "-t", self._session_target())
        except TmuxError as exc:
            if not exc.gone:
                raise

    def attach_command(self) -> str:
        """The shell command a human runs to watch the run, e.g. ``tmux -L sock attach -t NAME``."""
        parts = [self.tmux_bin]
        if self.socket_name is not None:
            parts += ["-L", self.socket_name]
        parts += ["attach", "-t", self.session]
        return shlex.join(parts)

    # ------------------------------------------------------------------ windows

    def open_window(
        self, name: str, transcript_path: str | os.PathLike[str], *, harness_pid: int | None = None
    ) -> str:
        """Open a window named ``sanitize_window_name(name)`` following ``transcript_path``.

        The caller passes the full name (e.g. ``"task-1.1"``).  The transcript is
        created empty if missing (tail would otherwise exit at once).  The viewer
        exits soon after process ``harness_pid`` (default: this process) dies; the
        pane stays.  Returns the window id (``"@7"``).  When more than
        ``keep_windows`` task windows exist, the oldest are killed.  One tmux call,
        plus one ``kill-window`` per recycled window.
        """
        pid = os.getpid() if harness_pid is None else int(harness_pid)
        path = os.path.abspath(os.fspath(transcript_path))  # the pane's cwd is not ours
        with open(path, "ab"):
            pass
        out = self._run(
            # -a after {end}: append, so window order (index) follows creation
            # order even after old windows were recycled and left index gaps.
            "new-window", "-d", "-a", "-P", "-F", "#{window_id}",
            "-t", f"={self.session}:{{end}}",
            "-n", sanitize_window_name(name),
            "--", "tail", "-c", "+1", "-f", "--pid", str(pid), "--", path,
        )  # fmt: skip
        window_id = out.strip()
        if not names.WINDOW_ID.fullmatch(window_id):
            raise TmuxError(f"tmux new-window returned no window id: {out!r}")
        self._windows.append(window_id)
        self._recycle()
        return window_id

    def _recycle(self) -> None:
        if self._resync:
            # A command may have run unanswered (e.g. a second copy of this window).
            try:
                self._windows = self.window_ids()
            except TmuxError:
                pass
            else:
                self._resync = False
        if self.keep_windows is None:
            return
        while len(self._windows) > self.keep_windows:
            self._kill_window(self._windows.pop(0))

    def _kill_window(self, window_id: str) -> None:
        try:
            self._run("kill-window", "-t", self._window_target(window_id))
        except TmuxError as exc:
            if not exc.gone:  # a human may have closed it already
                raise

    def close_window(self, window_id: str) -> None:
        """Kill one window by id; nothing happens if it is already gone."""
        target = self._window_target(window_id)  # validates before we forget it
        if window_id in self._windows:
            self._windows.remove(window_id)
        try:
            self._run("kill-window", "-t", target)
        except TmuxError as exc:
            if not exc.gone:
                raise

    def window_ids(self) -> list[str]:
        """Ids of the task windows currently in the session (not the placeholder), oldest first.

        Asks tmux (one call), so windows closed by a human are not listed.
        """
        out = self._run(
            "list-windows", "-t", f"={self.session}:",
            "-F", names.LIST_WINDOWS_FORMAT,
        )  # fmt: skip
        return names.task_windows(out)

    def capture(self, window_id: str, *, escapes: bool = False, history: bool = False) -> str:
        """The window's rendered screen as text (``capture-pane -p -J``).

        ``escapes`` keeps colour/attribute escape sequences (``-e``); ``history``
        includes the scrollback (``-S -``).
        """
        args = ["capture-pane", "-p", "-J"]
        if escapes:
            args.append("-e")
        if history:
            args += ["-S", "-"]
        args += ["-t", self._window_target(window_id)]
        # Pane contents are untrusted and tmux does not escape command output in
        # control mode: a line like "%end ..." must never reach the reply parser.
        return self._run(*args, control=False)
