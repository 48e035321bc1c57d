"""Shared machinery of the built-in backend profiles.

A profile drives one agent CLI under a PTY (see :mod:`seqharness.session`), so
its reader gets what a terminal gets: stdout *and* stderr interleaved, lines
ended by ``\\r\\n``, colour codes around warnings, spinners rewriting a line with
``\\r``, and chunks cut anywhere (inside a line, inside a UTF-8 character).
:class:`LineReader` turns that into clean text lines with bounded memory:

* lines are split on ``\\n`` as bytes (so a multi-byte character is never cut),
  ``\\r`` and ANSI escapes are removed, and only the text after the last
  ``\\r`` of a line is kept (what the terminal shows);
* a line longer than :attr:`LineReader.max_line` is dropped whole (counted in
  ``overlong_lines``), never accumulated;
* the agent's final text is kept as a tail of at most ``FINAL_TEXT_CHARS``, and
  everything else the profiles remember is counts, short strings or bounded
  deques.

:class:`JsonLineReader` adds JSONL parsing for the CLIs that stream events:
a line that is not a JSON object (a warning on stderr, a banner, a stack
trace) is kept in a short ring of "noise" lines, which is where those CLIs put
their final error text (gemini writes its API errors to stderr).

Dialogs.  A first-run dialog (trust this folder, use this API key, bypass
permissions) blocks a CLI until a key is pressed.  Each profile lists its
known dialogs (:class:`Dialog`); the reader looks for them in the screen text
*before the first structured event* only (once the JSON stream runs, the CLI
is past its dialogs, and text inside events, e.g. a file the agent read, must
never trigger a key press), and in the first MiB of output at most (plain-text
CLIs have no first event), and answers each one once.

Stopping.  A reader may ask the session to end the attempt (codex loops on
"Reconnecting..." forever): :attr:`LineReader.stop_requested` is a one-line
reason or None, re-evaluated on every read (it may depend on the clock).

Extra flags and environment per profile, without config files:

``SEQHARNESS_<NAME>_BIN``   the program to run (e.g. a CLI installed outside PATH)
``SEQHARNESS_<NAME>_ARGS``  extra arguments, split like a shell would (``shlex``)
``SEQHARNESS_<NAME>_ENV``   extra environment, ``KEY=VALUE`` words (``shlex``)

``<NAME>`` is the profile name upper-cased with ``-`` as ``_``
(``SEQHARNESS_KIRO_CLI_ARGS``).  Arguments given in ``--backend "NAME:ARGS"``
come after those of the environment variable, so they win where a CLI takes
the last value.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shlex
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from seqharness.backends import Backend, BackendContext, BackendError, Invocation, StreamReader
from seqharness.limits import Limit, one_line
from seqharness.outcome import FAILED, HALTED, LIMITED, PASSED, Outcome
from seqharness.outcome import interpret as plain_interpret
from seqharness.session import AttemptResult
from seqharness.signals import DONE, HALT, SignalScanner, strip_ansi

__all__ = [
    "ARGV_PROMPT_LIMIT",
    "FINAL_TEXT_CHARS",
    "MAX_LINE",
    "TAG_RE",
    "CliProfile",
    "Dialog",
    "JsonLineReader",
    "LineReader",
    "TextReader",
    "TextTail",
    "final_signal",
]

MAX_LINE = 4 * 1024 * 1024  # bytes; a longer output line is dropped, not buffered
FINAL_TEXT_CHARS = 64 * 1024  # the agent's final text kept (its tail)
NOISE_LINES = 40  # non-event lines kept (stderr warnings, error text)
NOISE_LINE_CHARS = 2000
ERRORS_KEPT = 20
ERROR_CHARS = 1000
SCREEN_CHARS = 8192  # screen text kept to recognise a dialog
DIALOG_WATCH_BYTES = 1024 * 1024  # first-run dialogs come first: stop looking after this much output
# Linux refuses a single argv element over 128 KiB (MAX_ARG_STRLEN) with E2BIG;
# a longer prompt is handed over as a pointer to the prompt file instead.
ARGV_PROMPT_LIMIT = 100_000

TAG_RE = re.compile(r"<promise>\s*(TASK_DONE|COMPLETE|HALT)\s*</promise>")
_DONE_TAG_RE = re.compile(r"<promise>\s*(?:TASK_DONE|COMPLETE)\s*</promise>")
_LOOSE_RE = re.compile(r"[\s\u2500-\u259f]+")


def _loose(text: str) -> str:
    """Whitespace and box-drawing removed, case-folded: TUIs move the cursor
    instead of printing spaces and draw frames around dialogs."""
    return _LOOSE_RE.sub("", text).casefold()


# --------------------------------------------------------------------------- pieces
class TextTail:
    """Append-only text keeping only its last *limit* characters, in O(1)
    amortised per append (deltas can arrive by the hundred thousand)."""

    def __init__(self, limit: int = FINAL_TEXT_CHARS) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False

    def append(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._size += len(text)
        if self._size > 2 * self.limit:
            self._compact()

    def set(self, text: str) -> None:
        self._parts = [text]
        self._size = len(text)
        self.truncated = False
        if self._size > self.limit:
            self._compact()

    def clear(self) -> None:
        self._parts = []
        self._size = 0
        self.truncated = False

    def _compact(self) -> None:
        joined = "".join(self._parts)
        if len(joined) > self.limit:
            joined = joined[-self.limit:]
            self.truncated = True
        self._parts = [joined]
        self._size = len(joined)

    @property
    def size(self) -> int:
        return self._size

    def text(self) -> str:
        if len(self._parts) != 1 or self._size > self.limit:
            self._compact()
        return self._parts[0] if self._parts else ""

    def __bool__(self) -> bool:
        return self._size > 0


@dataclass(frozen=True)
class Dialog:
    """A known first-run dialog: when every needle is on screen, type *keys*.

    Needles are compared with whitespace and box-drawing characters removed,
    case-insensitively, so a TUI's cursor movements and frames do not matter.
    """

    name: str
    needles: tuple[str, ...]
    keys: bytes

    def matches(self, loose_screen: str) -> bool:
        return all(_loose(needle) in loose_screen for needle in self.needles)


def final_signal(text: str, prompt: str) -> str | None:
    """The counted signal (``"done"``/``"halt"``) in the agent's final *text*.

    The final text is the agent's own words, but it may still parrot a line of
    the prompt that explains the protocol; :class:`SignalScanner` applies the
    same echo rules as for plain output (a bare tag line always counts).
    """
    if "<promise>" not in text:
        return None
    scanner = SignalScanner(prompt)
    scanner.feed(text)
    scanner.feed("\n")
    scanner.close()
    return scanner.signal


def halt_question(text: str) -> str:
    """The question of a halting agent: its final text without the tags."""
    question = TAG_RE.sub("", text).strip()
    if len(question) > 4000:
        question = "…" + question[-4000:]
    return question or "the agent asked for a human (no question given)"


def has_done_tag(text: str) -> bool:
    return "<promise>" in text and _DONE_TAG_RE.search(text) is not None


# --------------------------------------------------------------------------- readers
class LineReader(StreamReader):
    """Bounded line splitter over raw PTY bytes; subclasses handle lines.

    Attributes every profile fills (read by :meth:`CliProfile.interpret` and by
    reports): ``final`` (the agent's final text, a :class:`TextTail`),
    ``tool_calls``, ``usage`` (token and cost figures as the CLI names them),
    ``errors`` (one-line error texts, bounded), ``fatal`` (the error that failed
    the run, if the stream said so), ``denials`` (tools refused), ``limit``
    (a :class:`~seqharness.limits.Limit`), ``tag_in_tool_output`` (for a better
    failure reason), ``noise`` (last non-event lines), ``dialogs_answered``.
    """

    max_line = MAX_LINE

    def __init__(self, ctx: BackendContext, dialogs: Iterable[Dialog] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.prompt = ctx.prompt
        self.clock = clock
        self.final = TextTail()
        self.tool_calls = 0
        self.usage: dict[str, Any] = {}
        self.errors: deque[str] = deque(maxlen=ERRORS_KEPT)
        self.fatal: str | None = None
        self.denials: list[str] = []
        self.limit: Limit | None = None
        self.tag_in_tool_output = False
        self.noise: deque[str] = deque(maxlen=NOISE_LINES)
        self.events = 0
        self.lines = 0
        self.overlong_lines = 0
        self.bytes_seen = 0
        self.dialogs_answered: list[str] = []
        self._dialogs = [d for d in dialogs]
        self._screen = ""
        self._screen_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = bytearray()
        self._skipping = False
        self._closed = False

    # -- the StreamReader interface -------------------------------------------------
    def feed(self, data: bytes) -> bytes | None:
        if not data:
            return None
        self.bytes_seen += len(data)
        watch = self._dialogs and not self.events and self.bytes_seen - len(data) < DIALOG_WATCH_BYTES
        reply = self._watch_dialogs(data) if watch else None
        start = 0
        find = data.find
        while True:
            nl = find(b"\n", start)
            if nl < 0:
                break
            piece = data[start:nl]
            start = nl + 1
            if self._skipping:
                self._skipping = False  # the end of an overlong line: drop it
                continue
            if self._partial:
                if len(self._partial) + len(piece) > self.max_line:
                    self._partial.clear()
                    self.overlong_lines += 1
                    continue
                self._partial += piece
                piece = bytes(self._partial)
                self._partial.clear()
            elif len(piece) > self.max_line:
                self.overlong_lines += 1
                continue
            self._line(piece)
        if start < len(data) and not self._skipping:
            rest = data[start:]
            if len(self._partial) + len(rest) > self.max_line:
                self._partial.clear()
                self._skipping = True
                self.overlong_lines += 1
            else:
                self._partial += rest
        return reply

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._partial and not self._skipping:
            piece = bytes(self._partial)
            self._partial.clear()
            self._line(piece)
        self._partial.clear()
        self._skipping = False
        self.finish()

    @property
    def stop_requested(self) -> str | None:
        """A reason to end the attempt now, or None (polled by the session)."""
        return None

    @property
    def final_text(self) -> str:
        """The agent's final text as a string.  :mod:`seqharness.assign` reads
        the answer from here (``getattr(reader, "final_text")``); without it, it
        fell back to the raw output tail, where a JSON-streaming CLI's answer is
        an escaped string inside an event and never parsed."""
        return self.final.text()

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished line (for memory checks)."""
        return len(self._partial)

    # -- for subclasses -----------------------------------------------------------------
    def handle_line(self, line: str) -> None:
        """One complete, cleaned output line (no ``\\n``/``\\r``, no escapes)."""

    def finish(self) -> None:
        """The stream ended (called once by :meth:`close`)."""

    def add_error(self, text: str) -> str:
        line = one_line(text, ERROR_CHARS)
        if line:
            self.errors.append(line)
        return line

    def add_noise(self, line: str) -> None:
        line = line.strip()
        if line:
            self.noise.append(line[:NOISE_LINE_CHARS])

    def note_tool_output(self, text: Any) -> None:
        """Remember whether a tool's output carried a tag (it never counts)."""
        if not self.tag_in_tool_output and isinstance(text, str) and "<promise>" in text:
            self.tag_in_tool_output = TAG_RE.search(text) is not None

    def add_usage(self, key: str, value: Any) -> None:
        """Add a number to ``usage[key]`` (ignores non-numbers)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        self.usage[key] = self.usage.get(key, 0) + value

    # -- internals -------------------------------------------------------------------
    def _line(self, raw: bytes) -> None:
        self.lines += 1
        if raw.endswith(b"\r"):
            raw = raw.rstrip(b"\r")
        text = raw.decode("utf-8", errors="replace")
        if "\x1b" in text or "\x9b" in text or "\x07" in text:
            text = strip_ansi(text)
        if "\r" in text:
            text = text.rsplit("\r", 1)[1]  # what the terminal shows after a rewrite
        self.handle_line(text)

    def _watch_dialogs(self, data: bytes) -> bytes | None:
        self._screen += self._screen_decoder.decode(data)
        if len(self._screen) > SCREEN_CHARS:
            self._screen = self._screen[-SCREEN_CHARS:]
        loose = _loose(strip_ansi(self._screen))
        for dialog in self._dialogs:
            if dialog.matches(loose):
                self._dialogs.remove(dialog)  # answered once, never again
                self.dialogs_answered.append(dialog.name)
                self._screen = ""
                return dialog.keys
        return None


class JsonLineReader(LineReader):
    """A :class:`LineReader` for JSONL event streams.

    A line counts as an event when it is a JSON object (``{...}``) with a
    string ``type``.  Claude has been seen writing an event *into the middle*
    of another line (anthropics/claude-code#49640); such a broken line is
    retried from its last ``{"type":`` so the inner event is not lost.
    Everything else is noise, kept briefly as error context.
    """

    def handle_line(self, line: str) -> None:
        stripped = line.strip()
        if not stripped:
            return
        brace = stripped.find("{")
        if brace >= 0 and stripped.endswith("}"):
            event = _parse_object(stripped[brace:])
            if event is None:
                inner = stripped.rfind('{"type":')
                if inner > brace:
                    event = _parse_object(stripped[inner:])
            if event is not None and isinstance(event.get("type"), str):
                if brace > 0:
                    self.add_noise(stripped[:brace])
                self.events += 1
                self.handle_event(event)
                return
        self.add_noise(stripped)
        self.handle_noise(stripped)

    def handle_event(self, event: dict[str, Any]) -> None:
        """One parsed event."""

    def handle_noise(self, line: str) -> None:
        """One line that is not an event."""


class TextReader(LineReader):
    """A :class:`LineReader` for CLIs without an event stream (aider, kiro-cli).

    All output is text and the completion signal is found the way the session
    finds it in plain output: a :class:`SignalScanner` with the prompt's echo
    rules, fed the decoded stream as it comes (so an overlong line still has its
    tag seen).  Lines are kept as ``noise`` (the last ones are the final error
    text) and as the final text tail; :meth:`handle_text` sees each line.
    """

    def __init__(self, ctx: BackendContext, dialogs: Iterable[Dialog] = (), **kwargs: Any) -> None:
        super().__init__(ctx, dialogs, **kwargs)
        self.scanner = SignalScanner(ctx.prompt)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> bytes | None:
        reply = super().feed(data)
        if data:
            self.scanner.feed(self._decoder.decode(data))
        return reply

    def close(self) -> None:
        if not self._closed:
            self.scanner.feed(self._decoder.decode(b"", final=True))
            self.scanner.close()
        super().close()

    def handle_line(self, line: str) -> None:
        if line.strip():
            self.add_noise(line)
        self.final.append(line + "\n")
        self.handle_text(line.strip())

    def handle_text(self, line: str) -> None:
        """One stripped output line."""

    def is_status(self, line: str) -> bool:
        """Is this stripped line the CLI's own status text (banner, token counts),
        to be left out of a halting agent's question?"""
        return False


def _parse_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------- backends
def _env_name(name: str) -> str:
    return "SEQHARNESS_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


class CliProfile(Backend):
    """A built-in profile: a named CLI with fixed headless flags.

    Subclasses set :attr:`name`, :attr:`default_program`, implement
    :meth:`base_argv` / :meth:`prompt_argv`, and usually :meth:`reader`,
    :meth:`error_reason` and :meth:`find_limit`; :meth:`interpret` is shared.
    The factory text after ``NAME:`` is extra arguments (``shlex``-split).
    *environ* is the environment the agent inherits and the one the
    ``SEQHARNESS_<NAME>_*`` variables are read from (default ``os.environ``).
    """

    name = "cli"
    default_program = "cli"
    dialogs: tuple[Dialog, ...] = ()

    def __init__(self, extra: str = "", *, environ: Mapping[str, str] | None = None) -> None:
        # The environment the agent inherits (tests and embedders pass their own).
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.extra_text = extra.strip()
        prefix = _env_name(self.name)
        try:
            self.extra_args = shlex.split(self.environ.get(prefix + "_ARGS", "")) + shlex.split(self.extra_text)
            env_words = shlex.split(self.environ.get(prefix + "_ENV", ""))
        except ValueError as exc:
            raise BackendError(f"backend {self.name!r}: cannot split the extra arguments: {exc}") from None
        self.extra_env: dict[str, str] = {}
        for word in env_words:
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise BackendError(f"backend {self.name!r}: {prefix}_ENV wants KEY=VALUE words, got {word!r}")
            self.extra_env[key] = value
        self.program_path = self.environ.get(prefix + "_BIN", "").strip() or self.default_program

    # -- invocation ------------------------------------------------------------------
    def program(self) -> str:
        return self.program_path

    def describe(self) -> str:
        return f"{self.name}:{self.extra_text}" if self.extra_text else self.name

    def base_argv(self, ctx: BackendContext) -> list[str]:
        """Program and headless flags, before the user's extra arguments."""
        raise NotImplementedError

    def prompt_argv(self, ctx: BackendContext) -> list[str]:
        """The arguments that carry the prompt, after the extra arguments."""
        return [prompt_argument(ctx)]

    def default_env(self) -> dict[str, str]:
        """Variables set unless the user's environment already has them."""
        return {}

    def forced_env(self) -> dict[str, str]:
        """Variables this profile must set whatever the environment says."""
        return {}

    def invocation(self, ctx: BackendContext) -> Invocation:
        argv = self.base_argv(ctx) + self.extra_args + self.prompt_argv(ctx)
        defaults, forced = self.default_env(), self.forced_env()
        env: dict[str, str] | None = None
        if defaults or forced or self.extra_env or self.environ is not os.environ:
            env = dict(self.environ)
            for key, value in defaults.items():
                env.setdefault(key, value)
            env.update(forced)
            env.update(self.extra_env)
        return Invocation(argv=argv, env=env)

    # -- reading -----------------------------------------------------------------------
    def reader(self, ctx: BackendContext) -> LineReader:
        return LineReader(ctx, self.dialogs)

    def interpret(self, result: AttemptResult, reader: StreamReader | None = None, *,
                  trust_exit_code: bool = False) -> Outcome:
        """pass / fail / halt / limited, in this order of precedence:

        interrupted and spawn errors as usual; an attempt the reader asked to
        stop fails with the reader's reason; a timeout or idle stop is a plain
        failure (never a limit); a usage limit (unless the run nevertheless
        ended cleanly with the done signal); a halt in the final text; errors
        the stream or the exit code reveal; denied tools; a non-zero exit;
        then pass only with the done signal in the final text (or
        ``--trust-exit-code``).
        """
        if not isinstance(reader, LineReader):
            return plain_interpret(result, trust_exit_code=trust_exit_code)
        if result.reason in ("interrupted", "spawn-error", "question"):
            return plain_interpret(result, trust_exit_code=trust_exit_code)
        stop = reader.stop_requested
        if (stop and result.reason != "exited") or result.reason == "stopped":
            return Outcome(FAILED, stop or "the attempt was stopped")
        if result.reason in ("timeout", "idle"):
            outcome = plain_interpret(result, trust_exit_code=trust_exit_code)
            if reader.errors:
                outcome.reason += f"; last error: {reader.errors[-1][:200]}"
            return outcome
        signal, question = self.signal_of(reader)
        code = result.exit_status
        error = self.error_reason(result, reader)
        clean_pass = code == 0 and error is None and signal == DONE
        limit = self.find_limit(result, reader)
        if limit is not None and not clean_pass:
            return Outcome(LIMITED, limit.reason, resume_at=limit.resume_at)
        if signal == HALT:
            return Outcome(HALTED, "agent asked for human input", question=question)
        if error is not None:
            return Outcome(FAILED, error)
        if reader.denials:
            names = ", ".join(dict.fromkeys(reader.denials))
            return Outcome(FAILED, f"{self.name}: tools were denied: {names} "
                                   f"(run without a permission bypass?)")
        if code is None:
            return Outcome(FAILED, f"the agent was killed by signal {result.term_signal}")
        if code != 0:
            said = " (its final text had the done signal, but a failing exit code wins)" if signal == DONE else ""
            last = reader.errors[-1] if reader.errors else (reader.noise[-1] if reader.noise else "")
            detail = f": {one_line(last, 200)}" if last else ""
            return Outcome(FAILED, f"{self.name} exited with code {code}{said}{detail}")
        if signal == DONE:
            return Outcome(PASSED, f"{self.name} said <promise>TASK_DONE</promise> in its final message and exited 0")
        if trust_exit_code:
            return Outcome(PASSED, f"{self.name} exited 0 (--trust-exit-code; no done signal)")
        return Outcome(FAILED, self.no_signal_reason(reader))

    # -- hooks for the profiles -----------------------------------------------------------
    def final_text(self, reader: LineReader) -> str:
        """The agent's own final text (never the prompt, tool output or errors)."""
        return reader.final.text()

    def signal_of(self, reader: LineReader) -> tuple[str | None, str]:
        """The counted signal in the final text, and the question if it halts."""
        if isinstance(reader, TextReader):
            signal = reader.scanner.signal
            if signal != HALT:
                return signal, ""
            lines = [line for line in reader.scanner.halt_context.splitlines() if not reader.is_status(line.strip())]
            question = "\n".join(lines).strip()
            return signal, question or "the agent asked for a human (no question given)"
        text = self.final_text(reader)
        signal = final_signal(text, reader.prompt)
        return signal, (halt_question(text) if signal == HALT else "")

    def error_reason(self, result: AttemptResult, reader: LineReader) -> str | None:
        """A one-line failure reason from the stream or exit code, or None."""
        return reader.fatal

    def find_limit(self, result: AttemptResult, reader: LineReader) -> Limit | None:
        return reader.limit

    def no_signal_reason(self, reader: LineReader) -> str:
        where = ""
        if reader.tag_in_tool_output:
            where = " (a tag appeared only in tool output, which never counts)"
        elif not reader.final:
            where = " (no final message was seen in its output)"
        if reader.overlong_lines:
            where += f" ({reader.overlong_lines} overlong output lines were skipped)"
        return (f"{self.name} exited 0 without <promise>TASK_DONE</promise> "
                f"in its final message{where}")


def prompt_argument(ctx: BackendContext) -> str:
    """The prompt as one argv element, or, when it is too long for one
    (Linux: 128 KiB), a short instruction to read the prompt file."""
    if len(ctx.prompt.encode("utf-8", errors="replace")) <= ARGV_PROMPT_LIMIT:
        return ctx.prompt
    return prompt_pointer(ctx)


def prompt_pointer(ctx: BackendContext) -> str:
    """A short prompt that sends the agent to the prompt file."""
    return (f"Your complete instructions for this task are in the file {ctx.prompt_file} "
            f"(too long to pass on the command line). Read that whole file first, then follow it exactly.")


def is_root(geteuid: Callable[[], int] | None = None) -> bool:
    getter = geteuid or getattr(os, "geteuid", None)
    return bool(getter is not None and getter() == 0)

