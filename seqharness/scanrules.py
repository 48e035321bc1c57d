"""The line-level rules that the ``tasks.md`` scanner (:mod:`seqharness.taskscan`) applies.

The scanner's one-pass loop is tuned as a single function over local
variables, so everything it consults that is not the loop itself lives here:
the compiled line regexes (task lines, headings, checkboxes where none may be),
the first-character tables, decoding and splitting the text into lines,
front-matter detection, indentation width, the helpers that build its
diagnostics and the dominant line ending.  Keeping them apart keeps
``taskscan`` short enough to read while leaving the loop whole; they are pure
(no state between calls) and taskscan imports them as module globals, so a
lookup costs the loop what it did when they were defined beside it.  The
grammar (rules R1-R10) is in ``docs/taskfile.md``.
"""

from __future__ import annotations

import re

from seqharness.annotations import Wrap
from seqharness.taskfile import STATUS_BY_CELL, Diagnostic

__all__ = [
    "BAD_ID_RE",
    "BARE_CHECKBOX_RE",
    "BOM",
    "CELL_FAST",
    "CHECKBOX_ANY_RE",
    "HEADING_CHECKBOX_RE",
    "HEADING_CLOSE_RE",
    "HEADING_NUMBER_RE",
    "HEADING_RE",
    "NL_SPLIT",
    "SPECIAL_FIRST",
    "SUMMARY_RE",
    "TASK_FAST_RE",
    "TASK_FIRST",
    "TASK_RE",
    "WAVE_HEADING_RE",
    "dominant_newline",
    "front_matter_end",
    "heading_diag",
    "indent_width",
    "odd_cell",
    "one_char",
    "text_lines",
    "unclosed",
]

BOM = b"\xef\xbb\xbf"


# --------------------------------------------------------------------------- regexes

HEADING_RE = re.compile(r"(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
HEADING_CLOSE_RE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
CHECKBOX_ANY_RE = re.compile(r"\[[ xX~/\-]\]")
BARE_CHECKBOX_RE = re.compile(r"\[[^\]]{1,8}\](?:[ \t]|$)")
HEADING_CHECKBOX_RE = re.compile(r"^(?:[-*+][ \t]+)?\[[^\]]{1,8}\]")
HEADING_NUMBER_RE = re.compile(r"^(?:\*\*)?(?:Task[ \t]+)?\d+(?:\.\d+)*[.:)]?(?:\*\*)?(?:[ \t]|$)")

BAD_ID_RE = re.compile(r"(?:\*\*)?\d+(?:\.\d+)*[a-z]+[.:)](?=[ \t]|$)")

SUMMARY_RE = re.compile(
    r"^[\W\d_]*(?:(?:implementation|overall|final|project|general|additional|important)\s+)?"
    r"(?:notes?|summary|success\s+criteria|success\s+metrics|definition\s+of\s+done|"
    r"acceptance\s+criteria|completion\s+criteria|exit\s+criteria|"
    r"完了条件|完了基準|注意事項|備考|备注|注意|验收标准|完成标准|总结|まとめ)(?!\w)",
    re.IGNORECASE,
)
WAVE_HEADING_RE = re.compile(r"task\s+dependency\s+graph", re.IGNORECASE)

# A checkbox line (R4), its id token (R5) and its title, in one match.  It runs
# on the decoded line, but everything up to the cell is ASCII (indent, marker,
# gap, "["), so the cell's character offset is also its byte offset; re.ASCII
# keeps \d from matching non-ASCII digits.  A bare integer only counts as an id
# with a terminator ("1." yes, "20 unit tests" no), inside bold ("**8**"), or
# after a word prefix ("Task 3").
TASK_RE = re.compile(
    r"([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+\[([^\]]{0,40})\]"  # 1 indent, 2 marker, 3 cell
    r"(\*|\\\*)?(?=[ \t]|$)[ \t]*"  # 4 optional marker right after the box
    r"(?:((\*\*)?(?:(Task|TASK|Step|STEP)[ \t]+)?"  # 5 token, 6 bold, 7 word prefix
    r"(\d+(?:\.\d+)+|[A-Z]\d+(?:\.\d+)*|\d+(?=\*?[.:)])|(?(6)\d+(?=\*\*)|(?!))|(?(7)\d+|(?!)))"  # 8
    r"(\*(?!\*))?([.:)])?(\*\*)?(:)?)(?=[ \t]|$))?"  # 9 star, 10 terminator, 11 bold, 12 colon
    r"[ \t]*(.*)",  # 13 title
    re.ASCII,
)
# The dominant shape, ``- [ ] 1.1 Title`` / ``- [x]* 3. Title``, matched first
# at half the cost of TASK_RE.  Whenever it matches, TASK_RE matches too, with
# the same indent, cell, optional star, id, terminator and title: its first id
# alternative is the same greedy dotted number, and a bare number followed by
# "." is its third; the trailing "[ \t]+" stands for TASK_RE's lookahead.
# Anything else (other bullets, cells, bold or prefixed ids, "1.1*", "1.1:",
# no id) fails here and takes TASK_RE.  The test suite pins the equivalence.
TASK_FAST_RE = re.compile(
    r"([ \t]*)-[ \t]+\[([ xX~/\-])\](\*)?[ \t]+(\d+(?:\.\d+)+|\d+(?=\.))(\.)?[ \t]+(.*)",
    re.ASCII,
)
CELL_FAST: dict[str, tuple[str, str]] = {k: (k, v) for k, v in STATUS_BY_CELL.items()}
SPECIAL_FIRST = "#`~-*+0123456789|>[<"
TASK_FIRST = "-*+0123456789"
NL_SPLIT = re.compile(r"\r\n|\r|\n").split


# --------------------------------------------------------------------------- lines


def dominant_newline(data: bytes) -> bytes:
    """The most frequent terminator (CRLF wins ties); ``b"\\n"`` for a file without one."""
    if b"\r" not in data:  # the common case, one memchr instead of three counts
        return b"\n"
    crlf = data.count(b"\r\n")
    lf = data.count(b"\n") - crlf
    cr = data.count(b"\r") - crlf
    if crlf == lf == cr == 0:
        return b"\n"
    if crlf >= lf and crlf >= cr:
        return b"\r\n"
    return b"\n" if lf >= cr else b"\r"


def text_lines(data: bytes, bom: int) -> list[str]:
    """The decoded lines without terminators, aligned with :func:`~seqharness.taskfile.split_lines`.

    Decoding once and splitting in C is much cheaper than decoding line by line.
    A replacement character never swallows a CR or LF (they are ASCII), so the
    line boundaries are the same as in the bytes.
    """
    text = data.decode("utf-8", "replace")
    if bom:
        text = text[1:]
    return NL_SPLIT(text) if "\r" in text else text.split("\n")


def front_matter_end(tlines: list[str]) -> int:
    """R2.1: number of front-matter lines if line 1 is ``---`` and a closer follows, else 0.

    An opening ``---`` that is never closed is a thematic break, not front
    matter; treating it as front matter would hide every task in the file.
    """
    if not tlines or tlines[0] != "---":
        return 0
    for i in range(1, len(tlines)):
        if tlines[i] in ("---", "..."):
            return i + 1
    return 0


def indent_width(indent: str) -> int:
    """Indentation width (R1.4): a space counts 1, a tab advances to the next multiple of 4.

    Only used to compare lines; the original characters are never rewritten.
    """
    w = 0
    for ch in indent:
        w = (w // 4 + 1) * 4 if ch == "\t" else w + 1
    return w


# --------------------------------------------------------------------------- cells, diagnostics


def one_char(cell: str) -> bool:
    """One code point, optionally followed by the emoji variation selector U+FE0F."""
    n = len(cell)
    return n == 1 or (n == 2 and cell[1] == "\ufe0f")


def odd_cell(
    g: tuple[str | None, ...], lineno: int, diags: list[Diagnostic]
) -> tuple[str, str] | None:
    """R4.4 for cells that are not one known ASCII character; None when it is not a task.

    One character (an emoji may carry U+FE0F) is a task with an unknown status.
    A longer cell (``[搁置：]``) is a task only when an id follows; otherwise it
    is a word in brackets (``[Vite]…``, ``[US#] label``) or an empty ``[]``.
    """
    cell = g[2]
    if not cell:
        return None
    if not one_char(cell) and (
        len(cell) > 8 or g[3] is not None or g[4] is None or any(ch.isspace() for ch in cell)
    ):
        return None
    diags.append(
        Diagnostic(lineno, "unknown_status", f"unknown status cell [{cell}]; treated as not done")
    )
    return cell, "unknown"


def unclosed(diags: list[Diagnostic], wrap: Wrap) -> None:
    """Report a wrapped annotation whose closing ``_`` never came."""
    ann = wrap.ann
    diags.append(
        Diagnostic(
            ann.line,
            "wrapped_annotation_unclosed",
            f"annotation '_{ann.key}:' has no closing '_' in the task body; first line kept",
        )
    )


def heading_diag(lineno: int, text: str, diags: list[Diagnostic]) -> None:
    """Report a heading that looks like a task: a checkbox or a task number in it."""
    if HEADING_CHECKBOX_RE.match(text):
        diags.append(
            Diagnostic(
                lineno,
                "checkbox_in_heading",
                f"heading holds a checkbox, not a task: {text[:60]!r}",
            )
        )
    elif HEADING_NUMBER_RE.match(text):
        diags.append(
            Diagnostic(
                lineno,
                "heading_task_number",
                f"heading carries a task number, not a task: {text[:60]!r}",
            )
        )
