"""Annotations in ``tasks.md`` task bodies and the task fields derived from them (rule R8).

Kiro and its relatives attach metadata to a task as ``_Key: value_`` lines in
its body, written in several shapes in real files; this module turns them into
:class:`Annotation` records for the scanner (:mod:`seqharness.taskscan`) and,
once the whole file is scanned, derives each task's ``requirements``,
``depends`` and wave-graph order, which need every task's id.  It is separate
so that the value splitting (requirement ranges, dependency ids) can be tested
on its own, and it only reads decoded text, so it can never affect a
round-trip.  The recognised shapes are listed in ``docs/taskfile.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # taskfile imports this module at run time; Task is only a hint
    from seqharness.taskfile import Task

__all__ = [
    "FAST_LINE_RE",
    "KEY_CACHE",
    "KEY_NORMALISATION",
    "Annotation",
    "LineAnnotation",
    "Wrap",
    "annotate",
    "bold_annotations",
    "cached_norm",
    "derive",
    "inline_annotation",
    "line_annotation",
    "match_line_annotation",
    "normalize_key",
    "prose_depends",
    "split_depends",
    "split_requirements",
]

#: Raw keys (casefolded, inner whitespace collapsed) mapped to their meaning.
#: Anything not listed keeps its own lowercased key as ``norm``.
KEY_NORMALISATION: dict[str, str] = {
    "requirements": "requirements",
    "requirement": "requirements",
    "reqs": "requirements",
    "req": "requirements",
    "要件": "requirements",
    "対応要件": "requirements",
    "需求": "requirements",
    "требования": "requirements",
    "требование": "requirements",
    "validates": "requirements",
    "depends": "depends",
    "depends on": "depends",
    "depend on": "depends",
    "dependencies": "depends",
    "dependency": "depends",
    "依存タスク": "depends",
    "依存": "depends",
    "boundary": "boundary",
    "blocked": "blocked",
    "blocked by": "blocked",
}

# A key is 1-40 letters (any script), digits, spaces or inner underscores.
# ``\w`` is Unicode-aware, ``[^\W_]`` is "a letter or digit".
_KEY = r"[^\W_](?:[\w ]{0,38}[^\W_])?"

# Forms 1-3: the whole (detail) line is an annotation.
_LINE_RE = re.compile(
    r"^[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?_(?P<key>" + _KEY + r")[ \t]*(?P<kq>_[ \t]*)?[:：]"
    r"(?P<rest>.*)$"
)
# Form 4: an annotation closing a longer line ("… done. _Requirements: 2.1_").
_INLINE_RE = re.compile(
    r"(?:(?<=\s)|^)_(?P<key>" + _KEY + r")[ \t]*[:：][ \t]*(?P<value>.*?)[ \t]*_[ \t]*$"
)
# Bold property-test forms.
_BOLD_RE = re.compile(
    r"\*\*(?P<key>[Vv]alidates|Property[ \t]+\d+(?:\.\d+)*)[ \t]*[:：][ \t]*(?P<value>.*?)[ \t]*\*\*"
)

_NONE_VALUES = frozenset(
    {"", "-", "—", "–", "none", "n/a", "na", "nil", "なし", "無し", "无", "無", "нет", "ー"}
)

# Task ids as they are referenced from annotations and prose.
_DEP_ID_RE = re.compile(r"(?<![\w.])(?:[A-Z]\d+(?:\.\d+)*|\d+(?:\.\d+)*)(?![\w])")

_ID = r"(?:[A-Z]\d+(?:\.\d+)*|\d+(?:\.\d+)*)"
_PROSE_DEP_RE = re.compile(
    r"\bdepends?[ \t]+on\b(?P<sep>[ \t]*:[ \t]*(?:tasks?[ \t]*)?|[ \t]+tasks?[ \t]*#?|[ \t]+)"
    r"(?P<ids>" + _ID + r"(?:[ \t]*(?:,|&|\band\b|、)[ \t]*(?:tasks?[ \t]*)?" + _ID + r")*)"
    r"(?![\w%])",
    re.IGNORECASE,
)

# Requirement items.
_REQ_PREFIX_RE = re.compile(
    r"^(?:requirements?|reqs?|要件|需求|требования)\.?[ \t]*", re.IGNORECASE
)
_NUM = r"\d+(?:\.\d+)*"
_REQ_RANGE_RE = re.compile(r"^(" + _NUM + r")[ \t]*[-–—~〜][ \t]*(" + _NUM + r")(?=$|[\s(])")
_REQ_NUM_RE = re.compile(r"^(" + _NUM + r")(?=$|[\s(（:])")
_REQ_PREFIXED_RE = re.compile(r"^([A-Za-z]{1,8}-?\d+(?:\.\d+)*[a-z]?)(?=$|[\s(（:])")
_REQ_SPLIT_RE = re.compile(r"[,、;；，]")
_REQ_SIMPLE_RE = re.compile(r"[ \t]*\d+(?:\.\d+)*(?:[ \t]*,[ \t]*\d+(?:\.\d+)*)*[ \t]*")
_MAX_RANGE = 200


@dataclass(eq=False, slots=True)
class Annotation:
    """One ``_Key: value_`` (or bold property) annotation of a task.

    ``key`` is kept exactly as written (``要件``, ``Depends on``); ``norm`` is
    what callers match on (see :func:`normalize_key`).  ``value`` joins a
    wrapped value's lines with single spaces.
    """

    key: str
    norm: str
    value: str
    line: int


class Wrap(NamedTuple):
    """An annotation whose value continues on following lines (R8 form 3).

    The scanner owns the indentation logic, so it feeds continuation lines; this
    only carries what it needs: the task, the annotation to extend, the width of
    the line that opened it, and the value pieces so far.
    """

    task: Task
    ann: Annotation
    width: int
    parts: list[str]


class LineAnnotation(NamedTuple):
    """What :func:`line_annotation` found on one line.

    ``closed`` is False for form 3: the value continues on the following,
    more indented body lines until one ends with ``_``.
    """

    key: str
    value: str
    closed: bool


def normalize_key(key: str) -> str:
    """Map a raw key to ``requirements`` / ``depends`` / ``boundary`` / ``blocked``.

    Other keys are returned lowercased (with whitespace collapsed), so callers
    can still match e.g. ``completed`` or ``leverage``.  ``Property N`` keys
    normalise to ``property`` so that every property bullet groups together.
    """
    folded = " ".join(key.split()).casefold()
    norm = KEY_NORMALISATION.get(folded)
    if norm is not None:
        return norm
    if folded.startswith("property "):
        return "property"
    return folded


def match_line_annotation(text: str) -> tuple[str, str, bool] | None:
    """:func:`line_annotation` as a plain tuple (the parser's hot path)."""
    m = _LINE_RE.match(text)
    if m is None:
        return None
    key, kq, rest = m.group("key", "kq", "rest")
    key = key.rstrip()
    rest = rest.strip()
    if kq:
        # ``_Key_: value`` — the italic closes before the colon.
        return key, rest, True
    if rest.startswith("_"):
        # Form 2: ``_Key:_ value`` — only the key is italic.
        return key, rest[1:].strip(), True
    if rest.endswith("_"):
        return key, rest[:-1].strip(), True
    return key, rest, False


def line_annotation(text: str) -> LineAnnotation | None:
    """Recognise forms 1-3 on a whole detail line, else None."""
    found = match_line_annotation(text)
    return None if found is None else LineAnnotation(*found)


def inline_annotation(text: str) -> tuple[str, str] | None:
    """Recognise form 4: ``_Key: value_`` as the last thing on a longer line."""
    if "_" not in text:
        return None
    m = _INLINE_RE.search(text)
    if m is None:
        return None
    return m.group("key").rstrip(), m.group("value").strip()


def bold_annotations(text: str) -> list[tuple[str, str]]:
    """Return every ``**Property N: …**`` / ``**Validates: …**`` pair on a line."""
    if "**" not in text:
        return []
    return [(m.group("key"), m.group("value")) for m in _BOLD_RE.finditer(text)]


def _expand_range(a: str, b: str) -> list[str] | None:
    """Expand ``1.1–1.3`` (same prefix, same depth) or ``1–3``; None if not expandable.

    Only the last component varies, because nothing in the file says how many
    sub-requirements ``3.x`` has, so ``2.4–3.1`` cannot be expanded honestly.
    """
    pa, pb = a.split("."), b.split(".")
    if len(pa) != len(pb) or pa[:-1] != pb[:-1]:
        return None
    lo, hi = int(pa[-1]), int(pb[-1])
    if lo > hi or hi - lo > _MAX_RANGE:
        return None
    head = ".".join(pa[:-1])
    return [f"{head}.{n}" if head else str(n) for n in range(lo, hi + 1)]


def split_requirements(value: str) -> list[str]:
    """Split a requirements value into items (R8).

    Items are separated by ``,`` ``、`` ``;``.  Each item is a dotted id, a
    range (expanded when only the last component differs), a whole requirement
    number, a prefixed id (``FR-3``, ``R-001``; a ``Req``/``Requirement`` word
    is dropped), or otherwise kept as free text.  An item that *starts* with an
    id followed by a remark (``16.5 (partly)``) yields just the id.
    """
    if _REQ_SIMPLE_RE.fullmatch(value):  # "1.1, 2.3" — by far the most common shape
        return [item.strip() for item in value.split(",")]
    out: list[str] = []
    for raw in _REQ_SPLIT_RE.split(value):
        item = raw.strip().strip("*_`").strip()
        if not item:
            continue
        item = _REQ_PREFIX_RE.sub("", item, count=1) or item
        m = _REQ_RANGE_RE.match(item)
        if m is not None:
            expanded = _expand_range(m.group(1), m.group(2))
            out.extend(expanded if expanded is not None else [item[: m.end()].strip()])
            continue
        m = _REQ_NUM_RE.match(item) or _REQ_PREFIXED_RE.match(item)
        if m is not None:
            out.append(m.group(1))
            continue
        out.append(item)
    return out


def split_depends(value: str) -> list[str]:
    """Task ids named by a depends annotation; ``none`` / ``-`` give []."""
    v = value.strip().strip("*_`").strip()
    if v.casefold() in _NONE_VALUES:
        return []
    return _DEP_ID_RE.findall(v)


def prose_depends(text: str) -> list[str]:
    """Ids named by prose such as ``depends on: 1, 2`` or ``Depends on task 3``.

    A bare integer right after "depends on" (``depends on 3 services``) is too
    ambiguous to be an id, so plain numbers need a ``:`` or the word "task";
    dotted and letter ids (``depends on T006, T007``) are taken as they are.
    """
    found: list[str] = []
    for m in _PROSE_DEP_RE.finditer(text):
        ids = _DEP_ID_RE.findall(m.group("ids"))
        if not ids:
            continue
        if not m.group("sep").strip() and "." not in ids[0] and not ids[0][:1].isalpha():
            continue
        found.extend(ids)
    return found


# --------------------------------------------------------------------------- scanner hooks

#: The dominant annotation shape, ``- _Key: value_``, in one match.  The scanner
#: tries it first; everything else (key-only italics, wrapped values, inline,
#: bold) goes through :func:`annotate`.  Both repeats are greedy on purpose: a
#: lazy key or value makes the engine retry the rest of the pattern at every
#: character (2.6x slower).  The key cannot cross the first colon and the value
#: must end at the line's last ``_``, so greedy and lazy match the same lines and
#: differ only in the blanks before the colon and before the closing ``_``,
#: which the caller strips (``key.rstrip(" ")``, ``value.rstrip(" \t")``).
FAST_LINE_RE = re.compile(
    r"(?:[-*+][ \t]+)?_([^\W_][\w ]{0,39})[ \t]*[:：][ \t]*(?!_)(.*)_[ \t]*$"
)
KEY_CACHE: dict[str, str] = {}


def cached_norm(key: str) -> str:
    """:func:`normalize_key`, memoised: a file repeats the same few keys thousands of times."""
    norm = KEY_CACHE.get(key)
    if norm is None:
        norm = KEY_CACHE[key] = normalize_key(key)
    return norm


def annotate(
    task: Task, s: str, lineno: int, width: int, whole_line: bool, prose: dict[int, list[str]]
) -> Wrap | None:
    """Record the annotations on one title or body line of *task*; return a wrap if one opens.

    *s* is the line without its indentation.  Cheap substring tests come first:
    a whole-line annotation has its ``_`` within the first few characters (after
    an optional list marker), an inline one ends the line with ``_``.  Prose
    dependency ids go to ``prose[task.index]`` and are merged by :func:`derive`.
    """
    wrap = None
    if "_" in s:
        la = match_line_annotation(s) if whole_line and "_" in s[:6] else None
        if la is not None:
            key, value, closed = la
            ann = Annotation(key, cached_norm(key), value, lineno)
            task.annotations.append(ann)
            if not closed:
                wrap = Wrap(task, ann, width, [value])
        elif s.rstrip().endswith("_"):
            ia = inline_annotation(s)
            if ia is not None:
                task.annotations.append(Annotation(ia[0], cached_norm(ia[0]), ia[1], lineno))
    if "**" in s and ("**V" in s or "**P" in s or "**v" in s):
        for key, value in bold_annotations(s):
            task.annotations.append(Annotation(key, cached_norm(key), value, lineno))
    if "epend" in s:
        ids = prose_depends(s)
        if ids:
            prose.setdefault(task.index, []).extend(ids)
    return wrap


# --------------------------------------------------------------------------- derived fields

#: ``report(line, code, message)``: how :func:`derive` hands back a diagnostic.
Report = Callable[[int, str, str], None]


def derive(
    todo: Iterable[Task],
    tasks: list[Task],
    prose: dict[int, list[str]],
    waves: list[tuple[int, str]],
    report: Report,
) -> None:
    """Build ``requirements`` and ``depends`` of the *todo* tasks; apply the wave graph.

    The scanner fills ``requirements`` itself from the dominant closed
    one-line shape (most tasks); *todo* are the tasks it could not finish that
    way (a wrapped, inline, bold or prose annotation, or a ``depends`` key).
    Their fields are rebuilt here from all their annotations, in order, once
    wrapped values are complete.  The wave graph is applied here because it
    usually comes *before* the tasks it names.  Split requirement values are
    cached: the same list is typically repeated on many tasks.  ``depends``
    ends up de-duplicated, in first-seen order, and never names the task itself.
    """
    req_cache: dict[str, tuple[str, ...]] = {}
    for t in todo:
        reqs: list[str] = []
        deps: list[str] = []
        for ann in t.annotations:
            if ann.norm == "requirements":
                items = req_cache.get(ann.value)
                if items is None:
                    items = req_cache[ann.value] = tuple(split_requirements(ann.value))
                reqs.extend(items)
            elif ann.norm == "depends":
                deps.extend(split_depends(ann.value))
        deps.extend(prose.get(t.index, ()))
        t.requirements = tuple(reqs)
        t.depends = tuple(d for d in dict.fromkeys(deps) if d != t.id)
    if waves:
        by_id: dict[str, list[Task]] = {}
        for t in tasks:
            if t.id is not None:
                by_id.setdefault(t.id, []).append(t)
        for line, text in waves:
            apply_waves(by_id, line, text, report)


def apply_waves(by_id: dict[str, list[Task]], line: int, text: str, report: Report) -> None:
    """``{"waves":[{"tasks":[…]}, …]}``: each task of wave k depends on all of wave k-1.

    Real files also write a wave as a bare list (``[["1","2"],["3"]]``) and ids
    as numbers (``"tasks": [1, 2]``); both are accepted.  Anything unreadable is
    reported, never raised: a broken graph must not stop the tasks from running.
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        report(line, "wave_graph_invalid", f"dependency graph JSON does not parse: {exc}")
        return
    waves = doc.get("waves") if isinstance(doc, dict) else None
    if waves is None:
        return
    if not isinstance(waves, list):
        report(line, "wave_graph_invalid", "dependency graph 'waves' is not a list")
        return
    ids_per_wave: list[list[str]] = []
    for wave in waves:
        items = wave.get("tasks") if isinstance(wave, dict) else wave
        if not isinstance(items, list):
            report(line, "wave_graph_invalid", "a wave has no 'tasks' list; graph ignored")
            return
        ids_per_wave.append([norm_wave_id(x) for x in items if isinstance(x, (str, int))])
    for prev, cur in pairwise(ids_per_wave):
        for tid in cur:
            for t in by_id.get(tid, ()):
                t.wave_depends += tuple(
                    p for p in dict.fromkeys(prev) if p != t.id and p not in t.wave_depends
                )


def norm_wave_id(x: str | int) -> str:
    """``1`` / ``"1."`` / ``"Task 1"`` -> ``"1"``: ids in the graph as task ids."""
    s = str(x).strip()
    if s[:5].lower() == "task ":
        s = s[5:].strip()
    return s.rstrip(".:*")
