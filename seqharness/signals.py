"""The done/halt tags, defined once, and the scanner that finds the agent's own
tag in its output: the prompt explains the tags and agent CLIs echo the prompt,
so a tag counts only on a line that is not an echo.  The rules: docs/session.md,
"Completion signals".
"""

from __future__ import annotations

import re

__all__ = [
    "BARE_TAGS",
    "COMPLETE_TAG",
    "DONE",
    "DONE_TAG",
    "DONE_TAG_RE",
    "HALT",
    "HALT_CONTEXT_LINES",
    "HALT_TAG",
    "TAG_CLOSE",
    "TAG_KIND",
    "TAG_OPEN",
    "TAG_RE",
    "SignalScanner",
    "strip_ansi",
]

DONE = "done"
HALT = "halt"

# CSI (ESC [ ... final), including 8-bit CSI; OSC / DCS / SOS / PM / APC strings up
# to BEL or ST (an unterminated one runs to the end of the line, as a terminal
# would swallow it); two-byte and nF escapes (ESC ( B, ESC =, ESC 7 ...); a lone
# ESC; and stray C0 controls other than TAB, LF and CR.
_ANSI_RE = re.compile(
    r"""
      (?:\x1b\[|\x9b) [0-?]* [ -/]* [@-~]        # CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])     # OSC, DCS, SOS, PM, APC ...
      [^\x07\x1b\x9c\n]* (?:\x07|\x1b\\|\x9c)?   # ... up to BEL / ST / end of line
    | \x1b [ -/]* [0-~]                          # nF / Fp / Fe / Fs escapes
    | \x1b                                       # lone ESC
    | [\x00-\x08\x0b\x0c\x0e-\x1f\x7f]           # other C0 controls, DEL
    """,
    re.VERBOSE,
)

TAG_OPEN = "<promise>"  # every tag starts so: text without it holds no tag
TAG_CLOSE = "</promise>"
DONE_TAG = f"{TAG_OPEN}TASK_DONE{TAG_CLOSE}"
COMPLETE_TAG = f"{TAG_OPEN}COMPLETE{TAG_CLOSE}"  # counts as done too
HALT_TAG = f"{TAG_OPEN}HALT{TAG_CLOSE}"
TAG_KIND: dict[str, str] = {"TASK_DONE": DONE, "COMPLETE": DONE, "HALT": HALT}  # word -> kind
BARE_TAGS = frozenset({DONE_TAG, COMPLETE_TAG, HALT_TAG})
# Any tag, its word in group 1 (spaces inside the tag are tolerated) ...
TAG_RE = re.compile(rf"{TAG_OPEN}\s*(TASK_DONE|COMPLETE|HALT)\s*{TAG_CLOSE}")
# ... and a done tag only.
DONE_TAG_RE = re.compile(rf"{TAG_OPEN}\s*(?:TASK_DONE|COMPLETE)\s*{TAG_CLOSE}")

# Removed for the "piece of an echoed prompt line" comparison: whitespace (TUIs
# re-wrap and pad, or move the cursor instead of printing spaces) and
# box-drawing / block characters (TUI frames around an echoed prompt).
_LOOSE_RE = re.compile(r"[\s\u2500-\u259f]+")

HALT_CONTEXT_LINES = 20
_HALT_LINE_CHARS = 1000  # one context line is cut to this many characters
_RECENT_CHARS = 64 * 1024  # normalised text kept to build a halt context from
_OVERLONG_KEEP = 4096  # raw tail kept of an overlong line, beyond the longest tag line


def strip_ansi(text: str) -> str:
    """Remove ANSI/VT escape sequences (CSI, OSC, other ESC sequences) and stray
    control characters other than TAB, LF and CR from *text*."""
    if "\x1b" not in text and not _has_controls(text):
        return text
    return _ANSI_RE.sub("", text)


_CONTROLS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x90\x98\x9b-\x9f]")


def _has_controls(text: str) -> bool:
    return _CONTROLS_RE.search(text) is not None


def _normalise(text: str) -> str:
    """Strip escapes and remove every ``\\r`` (line structure is kept)."""
    text = strip_ansi(text)
    if "\r" in text:
        text = text.replace("\r", "")
    return text


def _loose(text: str) -> str:
    return _LOOSE_RE.sub("", text)


class SignalScanner:
    """Streaming detector of the agent's completion signal.

    ``feed()`` any chunks of decoded output, ``close()`` at the end, then read
    ``signal`` (``"done"``, ``"halt"`` or ``None``: the LAST counted tag wins)
    and ``halt_context`` (for a halt: up to ~20 lines of agent text before the
    HALT line, the question to show a human).
    """

    def __init__(self, prompt: str, max_line: int | None = None) -> None:
        lines = [_normalise(line).strip() for line in prompt.split("\n")]
        self._prompt_lines: frozenset[str] = frozenset(line for line in lines if line)
        self._tag_lines: tuple[str, ...] = tuple(
            sorted({line for line in self._prompt_lines if TAG_RE.search(line)})
        )
        self._loose_tag_lines: tuple[str, ...] = tuple(
            sorted({_loose(line) for line in self._tag_lines})
        )
        longest = max((len(line) for line in prompt.split("\n")), default=0)
        self.max_line: int = max(65536, 2 * longest) if max_line is None else max(1, max_line)
        longest_tag_line = max((len(line) for line in self._tag_lines), default=0)
        # Overlap kept when an overlong line is cut: a tag or an echoed tag-bearing
        # prompt line that straddles the cut is still seen whole in the next window.
        self._overlap = max(256, min(self.max_line // 2, _OVERLONG_KEEP + 2 * longest_tag_line))

        self.signal: str | None = None
        self.halt_context: str = ""

        self._parts: list[str] = []  # raw pieces of the current unterminated line
        self._part_len = 0
        self._overlong = False  # current line exceeded max_line and was cut
        self._long_signal: str | None = None  # last counted tag in cut-off segments
        self._long_context: str = ""  # halt context computed for that tag
        self._long_tainted = False  # a cut-off segment echoed a tag-bearing prompt line
        self._recent = ""  # last ~64 KB of raw complete lines, for halt context
        self._closed = False

    # ----------------------------------------------------------------- feeding
    def feed(self, text: str) -> None:
        """Scan a chunk of output (any size, any split point)."""
        if not text:
            return
        cut = text.rfind("\n")
        if cut < 0:
            self._parts.append(text)
            self._part_len += len(text)
            if self._part_len > self.max_line:
                self._trim_overlong()
            return
        head = text[: cut + 1]
        if self._parts:
            self._parts.append(head)
            region = "".join(self._parts)
        else:
            region = head
        rest = text[cut + 1 :]
        self._parts = [rest] if rest else []
        self._part_len = len(rest)
        self._scan_region(region)
        if self._part_len > self.max_line:
            self._trim_overlong()

    def close(self) -> None:
        """Scan the last, unterminated line.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._parts or self._overlong:
            region = "".join(self._parts) + "\n"
            self._parts = []
            self._part_len = 0
            self._scan_region(region)

    # ---------------------------------------------------------------- internals
    def _scan_region(self, region: str) -> None:
        """*region* is one or more complete lines, ending with ``\\n``."""
        overlong = self._overlong
        # Normalising only removes characters, so without a "<" in the raw text
        # there is no tag: floods of ordinary output skip all per-line work.
        norm = _normalise(region) if overlong or "<" in region else ""
        if TAG_OPEN in norm or overlong:
            lines = norm.split("\n")
            lines.pop()  # region ends with "\n"
            for index, line in enumerate(lines):
                first_long = overlong and index == 0
                if TAG_OPEN not in line and not first_long:
                    continue
                if first_long:
                    # The end of a line that was cut into segments: the verdict on
                    # its earlier segments is in the _long_* fields.
                    if self._long_tainted or self._tainted(line):
                        continue
                    kind = self._last_tag(line)
                    if kind is None:
                        if self._long_signal is not None:
                            self._count(self._long_signal, self._long_context)
                        continue
                else:
                    kind = self._judge(line)
                if kind is not None:
                    before = "\n".join(lines[max(0, index - 4 * HALT_CONTEXT_LINES) : index])
                    self._count(kind, self._halt_context(before, line) if kind == HALT else "")
            self._reset_overlong()
        self._remember(region)

    @staticmethod
    def _last_tag(line: str) -> str | None:
        last = None
        for match in TAG_RE.finditer(line):
            last = match
        return None if last is None else TAG_KIND[last.group(1)]

    def _tainted(self, text: str) -> bool:
        """True if *text* contains a tag-bearing prompt line (exactly, or with
        whitespace and box-drawing characters ignored): it is an echo."""
        for prompt_line in self._tag_lines:
            if prompt_line in text:
                return True
        if self._loose_tag_lines:
            loose = _loose(text)
            for prompt_line in self._loose_tag_lines:
                if prompt_line in loose:
                    return True
        return False

    def _judge(self, line: str) -> str | None:
        """Kind of the last tag on a normalised line, or None if it does not count."""
        kind = self._last_tag(line)
        if kind is None:
            return None
        text = line.strip()
        if text in self._prompt_lines or self._tainted(text):
            return None
        loose = _loose(text)
        if loose not in BARE_TAGS:
            # A piece of an echoed prompt line that a TUI re-wrapped is not the
            # agent's own words either.
            for prompt_line in self._loose_tag_lines:
                if loose in prompt_line:
                    return None
        return kind

    def _count(self, kind: str, context: str) -> None:
        self.signal = kind
        self.halt_context = context if kind == HALT else ""

    def _halt_context(self, before_in_region: str, halt_line: str) -> str:
        """Up to ~20 lines of agent text before the HALT line (plus any text on the
        HALT line itself), without echoed prompt lines."""
        keep = 4 * HALT_CONTEXT_LINES  # candidates; echoes and blanks are dropped below
        recent = self._recent
        pieces = recent.rsplit("\n", keep + 1)
        if len(pieces) > keep + 1:
            recent = "\n".join(pieces[1:])  # normalise only the last lines, not 64 KB
        recent = _normalise(recent)
        text = recent + before_in_region if before_in_region else recent
        candidates = text.split("\n")[-keep:]
        own = TAG_RE.sub("", halt_line).strip()
        if own:
            candidates.append(own)
        kept: list[str] = []
        for raw in candidates:
            line = raw.rstrip()
            stripped = line.strip()
            if stripped in self._prompt_lines or TAG_OPEN in stripped:
                continue  # echoed prompt lines and earlier tags are not the question
            if len(line) > _HALT_LINE_CHARS:
                line = line[:_HALT_LINE_CHARS] + "…"
            kept.append(line)
        while kept and not kept[0].strip():
            kept.pop(0)
        while kept and not kept[-1].strip():
            kept.pop()
        return "\n".join(kept[-HALT_CONTEXT_LINES:])

    def _remember(self, region: str) -> None:
        """Keep the last ~64 KB of complete lines, raw (normalised only when a
        halt context is built from them)."""
        if len(region) >= _RECENT_CHARS:
            self._recent = region[-_RECENT_CHARS:]
        else:
            recent = self._recent + region
            self._recent = recent[-_RECENT_CHARS:] if len(recent) > _RECENT_CHARS else recent

    def _trim_overlong(self) -> None:
        """The current line grew past max_line: scan what we have as one window,
        remember its verdict, and keep only an overlapping raw tail."""
        window = "".join(self._parts)
        norm = _normalise(window) if not self._long_tainted and "<" in window else ""
        if TAG_OPEN in norm:
            if self._tainted(norm):
                self._long_tainted = True
            else:
                kind = self._last_tag(norm)
                if kind is not None:
                    context = ""
                    if kind == HALT:
                        context = self._halt_context("", norm[-_HALT_LINE_CHARS:])
                    self._long_signal, self._long_context = kind, context
        tail = window[-self._overlap :]
        self._parts = [tail]
        self._part_len = len(tail)
        self._overlong = True

    def _reset_overlong(self) -> None:
        self._overlong = False
        self._long_signal = None
        self._long_context = ""
        self._long_tainted = False
