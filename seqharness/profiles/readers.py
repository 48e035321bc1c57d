"""The stream readers the built-in profiles share: an agent CLI's output comes
through a PTY as a terminal would show it (stdout and stderr interleaved,
escapes, ``\\r`` rewrites, chunks cut anywhere), and these turn it into clean
lines, JSONL events and the agent's final text with bounded memory, answering
known first-run dialogs on the way.  How and why: docs/session.md, "Profile
stream readers".
"""

from __future__ import annotations

import codecs
import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from seqharness.backends import BackendContext, StreamReader
from seqharness.limits import Limit, one_line
from seqharness.signals import TAG_OPEN, TAG_RE, SignalScanner, strip_ansi

__all__ = [
    "DIALOG_WATCH_BYTES",
    "ERRORS_KEPT",
    "ERROR_CHARS",
    "FINAL_TEXT_CHARS",
    "MAX_LINE",
    "NOISE_LINES",
    "NOISE_LINE_CHARS",
    "SCREEN_CHARS",
    "Dialog",
    "JsonLineReader",
    "LineReader",
    "TextReader",
    "TextTail",
]

MAX_LINE = 4 * 1024 * 1024  # bytes; a longer output line is dropped, not buffered
FINAL_TEXT_CHARS = 64 * 1024  # the agent's final text kept (its tail)
NOISE_LINES = 40  # non-event lines kept (stderr warnings, error text)
NOISE_LINE_CHARS = 2000
ERRORS_KEPT = 20
ERROR_CHARS = 1000
SCREEN_CHARS = 8192  # screen text kept to recognise a dialog
DIALOG_WATCH_BYTES = 1024 * 1024  # first-run dialogs come first: stop looking after this much output
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
        self.usage: dict[str, float] = {}  # ints stay ints
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

    def note_tool_output(self, text: object) -> None:
        """Remember whether a tool's output carried a tag (it never counts)."""
        if not self.tag_in_tool_output and isinstance(text, str) and TAG_OPEN in text:
            self.tag_in_tool_output = TAG_RE.search(text) is not None

    def add_usage(self, key: str, value: object) -> None:
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

    def __init__(self, ctx: BackendContext, dialogs: Iterable[Dialog] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ctx, dialogs, clock)
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
