"""Run one agent attempt in a pseudo-terminal: agents behave as they do for a
human only on a TTY, so :func:`run_attempt` spawns the agent CLI with pexpect,
streams its output to a transcript and the signal scanner with bounded memory,
and ends the attempt on exit, timeout, idleness or request.  Why it is built
this way (pexpect traps, process groups): docs/session.md.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import select
import signal
import termios
import time
from collections.abc import Callable
from typing import BinaryIO

import pexpect

from .outcome import AttemptResult
from .processes import AgentGroup, pidfd_open, signal_group
from .signals import SignalScanner, strip_ansi

__all__ = ["looks_like_question", "run_attempt"]

_POLL_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
READ_SIZE = 65536  # bytes per os.read(); a PTY hands out ~4 KiB per read anyway
BATCH_SIZE = 65536  # bytes gathered per wake-up before writing/scanning them
POLL_INTERVAL = 0.05  # longest sleep between checks of exit / timeouts / should_stop
EXIT_DRAIN = 0.2  # after the leader exits, read leftovers at most this long ...
EXIT_QUIET = 0.05  # ... and stop early after this long without output
TAIL_BYTES = 64 * 1024  # raw output kept in memory for `tail`
TAIL_LINES = 50
TAIL_CHARS = 8192
TTY_LINE_LIMIT = 4000  # canonical-mode TTYs drop input beyond 4095 bytes per line


# --------------------------------------------------------------------- TTY input
def _tty_input_bytes(fd: int, text: str) -> bytes:
    """Encode *text* so a canonical-mode TTY delivers it intact, then EOF."""
    data = text.encode("utf-8")
    cc: list[bytes | int] | None
    try:
        cc = termios.tcgetattr(fd)[6]
    except termios.error:
        cc = None

    def char(name: str, default: bytes) -> bytes:
        index = getattr(termios, name, None)
        if cc is None or index is None:
            return default
        value: bytes | int = cc[index]
        if isinstance(value, int):
            return bytes([value])
        return value

    veof = char("VEOF", b"\x04")
    lnext = char("VLNEXT", b"\x16")
    if veof in (b"", b"\x00"):
        veof = b"\x04"
    special = {b"\r"}
    for name in (
        "VEOF", "VEOL", "VEOL2", "VERASE", "VWERASE", "VKILL", "VREPRINT", "VINTR",
        "VQUIT", "VSUSP", "VDSUSP", "VLNEXT", "VDISCARD", "VSTART", "VSTOP", "VSTATUS",
    ):
        value = char(name, b"")
        if value not in (b"", b"\x00"):
            special.add(value)
    can_quote = lnext not in (b"", b"\x00")

    out = bytearray()
    in_line = 0
    for byte in data:
        ch = bytes((byte,))
        if byte == 0x0A:  # newline ends the TTY line
            out += ch
            in_line = 0
            continue
        if in_line >= TTY_LINE_LIMIT and not 0x80 <= byte <= 0xBF:
            out += veof  # deliver the piece so far (not an EOF: the piece is non-empty)
            in_line = 0
        if ch in special and can_quote:
            out += lnext
            in_line += 1
        out += ch
        in_line += 1
    if in_line:
        out += veof  # deliver the unterminated last line
    out += veof  # EOF: a VEOF at the start of a line makes read() return 0
    return bytes(out)


# --------------------------------------------------------------------- the attempt
def _escape_command(program: str) -> str:
    """pexpect re-splits a command without args; backslash-escape every char."""
    return "".join("\\" + ch for ch in program)


def _no_close_delays(child: pexpect.spawn[bytes]) -> None:
    """Make ``close()`` not sleep: the delays that count are ptyprocess's."""
    child.delayafterclose = child.delayafterterminate = 0
    ptyproc = getattr(child, "ptyproc", None)  # not in pexpect's type stubs
    if ptyproc is not None:
        ptyproc.delayafterclose = ptyproc.delayafterterminate = 0


class _Attempt:
    def __init__(
        self,
        child: pexpect.spawn[bytes],
        transcript: BinaryIO,
        scanner: SignalScanner,
        on_output: Callable[[bytes], bytes | None] | None,
        stdin_text: str | None,
    ) -> None:
        assert child.pid is not None  # spawn() has forked
        self.child = child
        self.pid: int = child.pid
        self.fd: int = child.child_fd
        self.transcript = transcript
        self.scanner = scanner
        self.on_output = on_output
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tail = bytearray()
        self.question_checked = False
        self.output_bytes = 0
        self.eof = False
        self.last_output = time.monotonic()
        os.set_blocking(self.fd, False)
        # poll(), not select(): select() fails for fds >= 1024 (long pytest runs).
        self.poller = select.poll()
        self.poll_mask = _POLL_IN
        self.poller.register(self.fd, self.poll_mask)
        # A pidfd becomes readable when the agent exits, so the loop wakes at
        # once instead of after POLL_INTERVAL (the agent usually exits right
        # after its last output; a 50 ms nap there cost ~16 ms per task).
        self.pidfd = pidfd_open(self.pid)
        self.group = AgentGroup(self.pid, self._isalive, on_exit=self._forget_pidfd)
        if self.pidfd is not None:
            self.poller.register(self.pidfd, select.POLLIN)
            self.exit_poller = select.poll()
            self.exit_poller.register(self.pidfd, select.POLLIN)
        self.pending = _tty_input_bytes(self.fd, stdin_text) if stdin_text is not None else b""
        self.pending_pos = 0

    # -- reading ---------------------------------------------------------------
    def pump(self, wait: float) -> bool:
        """Wait up to *wait* s for output (writing pending input meanwhile);
        handle what arrives.  Returns True if output was read."""
        want_write = self.pending_pos < len(self.pending)
        if self.eof and not want_write:
            if wait > 0:
                if self.pidfd is not None and not self.group.leader_gone:
                    self.exit_poller.poll(wait * 1000.0)   # returns when the agent exits
                else:
                    time.sleep(min(wait, 0.005))
            return False
        mask = (0 if self.eof else _POLL_IN) | (select.POLLOUT if want_write else 0)
        if mask != self.poll_mask:
            self.poller.modify(self.fd, mask)
            self.poll_mask = mask
        events = 0
        for fd, event in self.poller.poll(max(0.0, wait) * 1000.0):
            if fd != self.pidfd:   # the pidfd only wakes us; the caller checks the exit
                events |= event
        if events & select.POLLOUT:
            self._write_input()
        if not events & (_POLL_IN | select.POLLNVAL):
            return False
        batch = bytearray()
        while len(batch) < BATCH_SIZE:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                if not batch and events & select.POLLHUP:
                    self._set_eof()  # hung up and nothing left to read
                break
            except OSError as exc:  # Linux: EIO once every slave fd is closed
                if exc.errno in (errno.EIO, errno.EBADF):
                    self._set_eof()
                    break
                raise
            if not data:
                self._set_eof()
                break
            batch += data
        if batch:
            self._handle(bytes(batch))
            return True
        return False

    def _set_eof(self) -> None:
        """Nobody holds the terminal any more: stop polling it at all (a hung-up
        fd is always "ready", polling it would spin) and drop unsent input."""
        self.eof = True
        self.pending_pos = len(self.pending)

    def _write_input(self) -> None:
        try:
            written = os.write(self.fd, self.pending[self.pending_pos : self.pending_pos + 4096])
        except BlockingIOError:
            return
        except OSError:  # the child is gone; nobody will read it
            self.pending_pos = len(self.pending)
            return
        self.pending_pos += written

    def _handle(self, chunk: bytes) -> None:
        self.last_output = time.monotonic()
        self.output_bytes += len(chunk)
        view = memoryview(chunk)  # unbuffered file: straight to write(2), visible at once
        while view:
            written = self.transcript.write(view)
            view = view[written:]
        if self.on_output is not None:
            reply = self.on_output(chunk)
            if reply:
                # Keystrokes a backend sends back (answering a known dialog):
                # raw bytes, queued behind any input not yet written.
                self.pending = self.pending[self.pending_pos:] + reply
                self.pending_pos = 0
        self.scanner.feed(self.decoder.decode(chunk))
        self.tail += chunk
        self.question_checked = False
        if len(self.tail) > TAIL_BYTES:
            del self.tail[: len(self.tail) - TAIL_BYTES]

    def drain(self, limit: float, quiet: float) -> None:
        """Read what is left for at most *limit* s, stopping after *quiet* s of
        silence or at EOF.  Never waits for EOF itself."""
        end = time.monotonic() + limit
        while not self.eof:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            if not self.pump(min(quiet, remaining)):
                break

    # -- the child ---------------------------------------------------------------
    def _isalive(self) -> bool:
        try:
            return bool(self.child.isalive())
        except pexpect.ExceptionPexpect:  # reaped by someone else
            return False

    def reap(self) -> tuple[int | None, int | None]:
        """Collect the leader's exit status (bounded wait)."""
        if not self.group.reap():
            return None, None  # unkillable (D state?): give up waiting
        return self.child.exitstatus, self.child.signalstatus

    def _forget_pidfd(self) -> None:
        """Stop waking on the exit we have now seen (a dead pidfd is always ready)."""
        if self.pidfd is not None:
            try:
                self.poller.unregister(self.pidfd)
            except (KeyError, ValueError):
                pass
            os.close(self.pidfd)
            self.pidfd = None

    def close(self) -> None:
        self._forget_pidfd()
        child = self.child
        _no_close_delays(child)
        try:
            child.close(force=True)
        except Exception:  # noqa: BLE001  # pragma: no cover - already reaped; just free the fd
            try:
                os.close(self.fd)
            except OSError:
                pass

    def finish_text(self) -> str:
        self.scanner.feed(self.decoder.decode(b"", final=True))
        self.scanner.close()
        return _tail_text(bytes(self.tail), truncated=self.output_bytes > len(self.tail))


def _tail_text(raw: bytes, truncated: bool) -> str:
    """Last ~50 lines / 8 KB of output as plain text (escapes stripped, and a
    carriage return shows what the terminal would: the text after it)."""
    text = strip_ansi(raw.decode("utf-8", errors="replace"))
    lines = text.split("\n")
    if truncated and len(lines) > 1:
        lines = lines[1:]  # the first line is probably cut
    cleaned = []
    for line in lines:
        line = line.rstrip("\r")
        if "\r" in line:
            line = line.rsplit("\r", 1)[1]
        cleaned.append(line.rstrip())
    while cleaned and not cleaned[-1]:
        cleaned.pop()
    result = "\n".join(cleaned[-TAIL_LINES:])
    if len(result) > TAIL_CHARS:
        result = result[-TAIL_CHARS:]
        cut = result.find("\n")
        if 0 <= cut < len(result) - 1:
            result = result[cut + 1 :]
    return result


def _cwd_problem(cwd: str) -> str | None:
    """Why *cwd* cannot be the agent's working directory, or None.  (A friendly
    early message; the chdir in preexec_fn is what makes a race harmless.)"""
    if not os.path.isdir(cwd):
        return f"working directory {cwd!r} does not exist"
    return None


def _spawn_error(message: str, start: float) -> AttemptResult:
    return AttemptResult(
        exit_status=None,
        term_signal=None,
        signal=None,
        reason="spawn-error",
        duration=time.monotonic() - start,
        output_bytes=0,
        tail="",
        halt_context="",
        error=message,
    )


_QUESTION_END = re.compile(
    r"(\?\s*$|\[[yYnN]/[yYnN]\]\s*:?\s*$|\([yY](es)?/[nN]o?\)\s*:?\s*$|press enter|"
    r"^\s*[❯›>]\s*\d+\.\s)",
    re.IGNORECASE | re.MULTILINE,
)


def looks_like_question(tail: bytes) -> bool:
    """Does the end of the screen look like a prompt waiting for an answer?

    The agent has printed nothing for a while and its last non-empty lines end
    in ``?``, ``[y/n]``, ``(yes/no)``, "Press Enter", or show a numbered menu
    with a cursor (``❯ 1. Yes``): an interactive question no dialog rule
    knows.  Conservative on purpose: a false positive turns a slow agent into
    a halt, so only a question-shaped last screen counts.
    """
    text = strip_ansi(tail.decode("utf-8", "replace")).replace("\r", "\n")
    lines = [ln for ln in text.splitlines() if ln.strip()][-6:]
    if not lines:
        return False
    return _QUESTION_END.search(lines[-1]) is not None or any(
        re.match(r"^\s*[❯›]\s*\d+\.\s", ln) for ln in lines)


def run_attempt(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str] | None,
    prompt: str,
    transcript_path: str,
    timeout: float | None = None,
    idle_timeout: float | None = None,
    dimensions: tuple[int, int] = (50, 200),
    kill_grace: float = 3.0,
    on_output: Callable[[bytes], bytes | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    stdin_text: str | None = None,
    on_spawn: Callable[[int], None] | None = None,
    stop_reason: Callable[[], str | None] | None = None,
    question_idle: float | None = None,
) -> AttemptResult:
    """Run *argv* once in a PTY and report how it ended.

    *prompt* is what the agent was given (it tells echoes from signals, see
    :mod:`seqharness.signals`).  Every output byte is appended to
    *transcript_path* as it arrives and passed to *on_output*; bytes that
    *on_output* returns are typed into the agent's terminal (dialog answers).  The attempt ends
    when the agent exits (reason ``"exited"``), after *timeout* s in total
    (``"timeout"``), after *idle_timeout* s without output (``"idle"``) or when
    *should_stop()* returns true (``"interrupted"``) or *stop_reason()* returns a
    reason (``"stopped"``: the backend's reader asked), or when the agent has
    been silent for *question_idle* s with a question on its screen
    (``"question"``, see :func:`looks_like_question`); in every case the agent's
    whole process group is gone when this returns.  A KeyboardInterrupt inside
    the loop ends the group too and is re-raised.  *stdin_text*, if given, is
    typed into the terminal, followed by EOF.  *on_spawn(pid)* is called once
    the agent runs (its pid is its process group id); if it raises, the
    group is ended and the exception propagates.  An error writing the
    transcript (a full disk) likewise ends the group and propagates.
    """
    start = time.monotonic()
    if not argv:
        return _spawn_error("cannot start the agent: empty command", start)
    problem = _cwd_problem(cwd)
    if problem:
        return _spawn_error(f"cannot start {argv[0]!r}: {problem}", start)

    program = argv[0]
    if os.sep in program and not os.path.isabs(program):
        program = os.path.join(cwd, program)  # relative to the agent's cwd, like subprocess
    args = list(argv[1:])
    folder = os.path.dirname(os.path.abspath(transcript_path))
    os.makedirs(folder, exist_ok=True)

    with open(transcript_path, "ab", buffering=0) as transcript:
        try:
            child: pexpect.spawn[bytes] = pexpect.spawn(
                program if args else _escape_command(program),
                args,
                env=env,
                dimensions=dimensions,
                echo=False,
                encoding=None,
                preexec_fn=lambda: os.chdir(cwd),
            )
        except (pexpect.ExceptionPexpect, OSError) as exc:
            detail = str(exc).strip() or type(exc).__name__
            return _spawn_error(f"cannot start {argv[0]!r}: {detail}", start)
        except Exception as exc:  # noqa: BLE001 - ptyprocess: "Subprocess failed, got bad error data"
            return _spawn_error(f"cannot start {argv[0]!r}: {exc}", start)

        try:
            attempt = _Attempt(child, transcript, SignalScanner(prompt), on_output, stdin_text)
        except BaseException:
            if child.pid is not None:
                signal_group(child.pid, signal.SIGKILL)
            _no_close_delays(child)
            child.close(force=True)
            raise
        reason = "exited"
        try:
            if on_spawn is not None:
                on_spawn(attempt.pid)
            while True:
                if attempt.group.leader_exited():
                    reason = "exited"
                    attempt.drain(EXIT_DRAIN, EXIT_QUIET)
                    break
                if should_stop is not None and should_stop():
                    reason = "interrupted"
                    break
                if stop_reason is not None and stop_reason():
                    reason = "stopped"       # the backend's reader asked (e.g. endless reconnects)
                    break
                now = time.monotonic()
                wait = POLL_INTERVAL
                if timeout is not None:
                    left = start + timeout - now
                    if left <= 0:
                        reason = "timeout"
                        break
                    wait = min(wait, left)
                if idle_timeout is not None:
                    left = attempt.last_output + idle_timeout - now
                    if left <= 0:
                        reason = "idle"
                        break
                    wait = min(wait, left)
                if question_idle is not None and now - attempt.last_output >= question_idle:
                    if not attempt.question_checked and looks_like_question(bytes(attempt.tail[-2048:])):
                        reason = "question"     # blocked on a prompt nobody will answer
                        break
                    attempt.question_checked = True
                attempt.pump(wait)
            attempt.group.terminate(kill_grace, attempt.pump)
            attempt.drain(EXIT_DRAIN, EXIT_QUIET)
        except BaseException:
            # KeyboardInterrupt (or a failing callback): never leave the agent
            # running behind us.  Callbacks are off while we clean up.
            attempt.on_output = None
            try:
                attempt.group.terminate(kill_grace, attempt.pump)
            finally:
                attempt.reap()
                attempt.close()
            raise
        exit_status, term_signal = attempt.reap()
        attempt.close()
        tail = attempt.finish_text()

    return AttemptResult(
        exit_status=exit_status,
        term_signal=term_signal,
        signal=attempt.scanner.signal,
        reason=reason,
        duration=time.monotonic() - start,
        output_bytes=attempt.output_bytes,
        tail=tail,
        halt_context=attempt.scanner.halt_context,
        error=None,
    )
