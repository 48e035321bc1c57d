"""One persistent ``tmux -C`` control-mode connection for :class:`seqharness.tmux.TmuxView`.
It exists because a per-call ``tmux`` client process costs 3-5 ms, while a control client
stays connected and answers a command line in a fraction of a millisecond.  This module
quotes one command per line (:func:`command_line`, or ``None`` when it cannot travel
that way) and reads tmux's ``%begin``/``%end`` reply blocks; the protocol as tmux 3.3a
speaks it, and the quoting rules, are in ``docs/tmux.md``.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
import weakref
from collections import deque
from collections.abc import Sequence

__all__ = ["ControlClient", "ControlLost", "ControlTimeout", "command_line"]

#: Flags of our control client: no ``%output`` of the session's panes (a busy
#: pane would otherwise stream megabytes through the pipe), and no say in the
#: size of windows (it has no terminal).
CLIENT_FLAGS = "no-output,ignore-size"

#: A longer line from tmux means the connection misbehaves (our replies are short).
MAX_LINE = 1 << 20

# Tokens the parser reads literally without quotes.  No "=" (an assignment at
# the start of a command), "%" (``%if``), "~", "$", "#", "{", "}", ";", quotes, "\\".
_PLAIN = re.compile(r"[A-Za-z0-9_@+,./:-]+", re.ASCII)


class ControlLost(Exception):
    """The control client went away or misbehaved.

    ``sent`` is true when the command was handed over and may have run.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class ControlTimeout(Exception):
    """No answer in time; the connection has been closed (its state is unknown)."""


def quote(arg: str) -> str:
    """``arg`` as one token of tmux's command parser, taken literally."""
    if _PLAIN.fullmatch(arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def command_line(argv: Sequence[str]) -> str | None:
    """One tmux command as a control-mode line (without the newline).

    ``None`` when it cannot be sent that way: no command, an argument holds a
    newline or NUL, or bytes that are not UTF-8 (a file name decoded with
    ``surrogateescape``): tmux 3.3a's parser rejects such a line ("parse
    error: ambiguous command: ,") instead of passing the bytes on.
    """
    if not argv or any("\n" in a or "\0" in a for a in argv):
        return None
    line = " ".join(quote(a) for a in argv)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return line


def _end_process(proc: subprocess.Popen[bytes], owner: int, *, gently: bool) -> None:
    """Close our end of the pipes and reap ``proc``.  Gently: end of input, then
    up to a second for it to exit; else (or after that) SIGKILL.  Does nothing in a
    forked child (``owner`` is the pid that started it): the client is not its."""
    if os.getpid() != owner:
        return
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass
    if gently:
        try:
            proc.wait(timeout=1.0)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        proc.kill()
    except OSError:
        pass
    proc.wait()


class ControlClient:
    """``tmux [-L SOCK] [-f CONF] -C attach-session -f no-output,ignore-size -t =SESSION``.

    Started with an argv list, pipes, no shell, in its own process session so
    a terminal's Ctrl-C for the run does not reach it (it ends when its input
    does).  :meth:`command` sends one line and returns ``(ok, output)``.  Any
    failure or interruption inside :meth:`command` closes the connection, so a
    late reply can never be taken for the answer to a later command.  It is
    also closed when collected and at interpreter exit.
    """

    def __init__(self, base_argv: Sequence[str], session_target: str, *,
                 env: dict[str, str], timeout: float) -> None:
        argv = [*base_argv, "-C", "attach-session", "-f", CLIENT_FLAGS, "-t", session_target]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            bufsize=0, env=env, start_new_session=True,
        )
        self._owner = os.getpid()
        self._finalizer = weakref.finalize(self, _end_process, self.proc, self._owner, gently=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self._lines: deque[bytes] = deque()
        self._partial = b""
        self.bytes_read = 0
        try:
            ok, text = self._reply(time.monotonic() + timeout, first=True)
        except BaseException:
            self.close(gently=False)
            raise
        if not ok:
            self.close(gently=False)
            raise ControlLost(f"tmux control client could not attach: {text.strip()}", sent=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self._finalizer.alive and self.proc.poll() is None

    def close(self, *, gently: bool = True) -> None:
        """End the client (end of input; SIGKILL if it lingers, or at once unless ``gently``)."""
        if self._finalizer.alive:
            self._finalizer.detach()
            _end_process(self.proc, self._owner, gently=gently)

    def command(self, line: str, timeout: float) -> tuple[bool, str]:
        """Send one command line; return ``(False if %error, output text)``.

        Raises :class:`ControlLost` (the client is gone or misbehaves) or
        :class:`ControlTimeout`; either way the connection is closed first.
        """
        if not self.alive:
            raise ControlLost("tmux control client is not running", sent=False)
        deadline = time.monotonic() + timeout
        try:
            self._send(line.encode("utf-8") + b"\n", deadline)
            return self._reply(deadline)
        except BaseException:
            self.close(gently=False)
            raise

    # ------------------------------------------------------------------ wire

    def _send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._in, view):]
            except BlockingIOError:
                pass
            except OSError as exc:  # EPIPE: it is gone, and an incomplete line never runs
                raise ControlLost(f"tmux control client went away: {exc}", sent=False) from None
            if view:
                self._wait(deadline, write=True)

    def _wait(self, deadline: float, *, write: bool = False) -> None:
        remaining = deadline - time.monotonic()
        if remaining > 0:
            if write:
                ready = any(select.select([], [self._in], [], remaining))
            else:
                ready = any(select.select([self._out], [], [], remaining))
            if ready:
                return
        raise ControlTimeout("tmux control client did not answer in time")

    def _next_line(self, deadline: float) -> bytes:
        while not self._lines:
            try:
                chunk = os.read(self._out, 65536)
            except BlockingIOError:
                self._wait(deadline)
                continue
            except OSError as exc:
                raise ControlLost(f"cannot read from tmux control client: {exc}", sent=True) from None
            if not chunk:
                raise ControlLost("tmux control client exited", sent=True)
            self.bytes_read += len(chunk)
            parts = (self._partial + chunk).split(b"\n")
            self._partial = parts.pop()
            if len(self._partial) > MAX_LINE:
                raise ControlLost("tmux control client sent an over-long line", sent=True)
            self._lines.extend(parts)
        return self._lines.popleft()

    def _reply(self, deadline: float, *, first: bool = False) -> tuple[bool, str]:
        """Read up to the end of the next block answering us (``first``: any block)."""
        fields: bytes | None = None  # b"TIME NUM FLAGS" of the block being read
        mine = False
        out: list[bytes] = []
        while True:
            line = self._next_line(deadline)
            if fields is None:
                if line.startswith(b"%begin "):
                    fields = line[len(b"%begin "):]
                    flags = fields.split()[-1:]
                    mine = first or (flags != [] and flags[0].isdigit() and int(flags[0]) & 1 == 1)
                    out = []
                continue  # a notification (or %exit: end of input follows)
            if line == b"%end " + fields or line == b"%error " + fields:
                if mine:
                    text = b"".join(part + b"\n" for part in out).decode("utf-8", "replace")
                    return line.startswith(b"%end"), text
                fields = None
            elif mine:
                out.append(line)
