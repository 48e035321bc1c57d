"""The scanner that turns the bytes of a ``tasks.md`` into a :class:`~seqharness.taskfile.TaskFile`.

It is the only code that knows the ``tasks.md`` grammar (rules R1-R10 of the
research notes, ``kiro-grammar.md``; its line regexes and helpers are in
:mod:`seqharness.scanrules`) and it is on the hot path of every run's start,
so it lives apart from the model it fills: :func:`parse` and
:func:`load` make one pass over the lines and record, for every checkbox task,
the byte offsets of its line and status cell, its place in the tree, its body
and its annotations (read by :mod:`seqharness.annotations`), without ever
changing a byte.  The grammar and the tuning notes are in ``docs/taskfile.md``.
"""

from __future__ import annotations

import gc
import operator
import os
from itertools import accumulate, repeat
from typing import NamedTuple

from seqharness.annotations import (
    FAST_LINE_RE,
    KEY_CACHE,
    Annotation,
    Wrap,
    annotate,
    cached_norm,
    derive,
    split_requirements,
)
from seqharness.scanrules import (
    BAD_ID_RE,
    BARE_CHECKBOX_RE,
    BOM,
    CELL_FAST,
    CHECKBOX_ANY_RE,
    HEADING_CLOSE_RE,
    HEADING_RE,
    SPECIAL_FIRST,
    SUMMARY_RE,
    TASK_FAST_RE,
    TASK_FIRST,
    TASK_RE,
    WAVE_HEADING_RE,
    dominant_newline,
    front_matter_end,
    heading_diag,
    indent_width,
    odd_cell,
    text_lines,
    unclosed,
)
from seqharness.taskfile import (
    Diagnostic,
    Task,
    TaskFile,
    TaskFileError,
    line_of_offset,
    split_lines,
)

__all__ = ["load", "parse"]


class _Scan(NamedTuple):
    """What the line scan hands to :func:`seqharness.annotations.derive`."""

    tasks: list[Task]
    diags: list[Diagnostic]
    prose: dict[int, list[str]]  # task index -> ids from "depends on …" prose
    waves: list[tuple[int, str]]  # (line, JSON text) of wave-graph fences
    #: tasks whose requirements/depends derive() must (re)build: the scan fills
    #: ``requirements`` itself only from the closed one-line annotation shape
    rederive: dict[int, Task]


def _scan(data: bytes) -> _Scan:
    """The single pass over the lines (R1-R8).

    Written as one loop over local variables, with cheap tests on the first
    significant character deciding which lines deserve a regex, because this is
    the hot path: a 10,000-task file is ~30,000 lines.  The text is decoded
    once; byte offsets come from the byte lines, looked up only for tasks.
    """
    tasks: list[Task] = []
    diags: list[Diagnostic] = []
    first_ids: dict[str, Task] = {}
    prose: dict[int, list[str]] = {}
    waves: list[tuple[int, str]] = []
    rederive: dict[int, Task] = {}
    req_cache: dict[str, tuple[str, ...]] = {}
    if not data:
        return _Scan(tasks, diags, prose, waves, rederive)
    bom = 3 if data.startswith(BOM) else 0
    tlines = text_lines(data, bom)
    # offsets[i] is the byte offset of line i+1; a line's bytes are
    # data[offsets[i]:offsets[i + 1]] (the last slice may run past the end).
    if not bom and data.isascii() and b"\r" not in data:
        # The common file: characters are bytes and every terminator is one
        # "\n", so the offsets come from the decoded lines, without splitting
        # the bytes into a second list of ~N lines.
        offsets = list(accumulate(map(operator.add, map(len, tlines), repeat(1)), initial=0))
    else:
        offsets = list(accumulate(map(len, split_lines(data)), initial=0))
    if tlines[-1] == "":
        tlines.pop()  # "a\n".split("\n") has a trailing ""; a BOM-only file has no line
    skip = front_matter_end(tlines)
    # sections (R3)
    headings: list[tuple[int, str]] = []
    section: tuple[str, ...] = ()
    in_summary = in_wave = False
    # nesting (R6): open tasks, indentation strictly increasing
    st: list[Task] = []
    section_ids: dict[str, Task] = {}
    # bodies (R7)
    last_owner: Task | None = None
    pending: list[str] = []
    wrap: Wrap | None = None
    # regions (R2): 0 none, 1 fence, 2 HTML comment
    region = fence_len = region_start = 0
    fence_ch = ""
    region_owner: Task | None = None
    capture: list[str] | None = None
    task_match = TASK_RE.match
    task_fast = TASK_FAST_RE.match
    cell_fast = CELL_FAST
    special = SPECIAL_FIRST
    task_first = TASK_FIRST
    ann_fast = FAST_LINE_RE.match
    key_cache = KEY_CACHE
    for lineno, t in enumerate(tlines[skip:] if skip else tlines, skip + 1):
        if region:
            if region == 1:
                if fence_ch in t:
                    s = t.strip(" \t")
                    if len(s) >= fence_len and s.count(fence_ch) == len(s):
                        region = 0
                        if capture is not None:
                            waves.append((region_start, "\n".join(capture)))
                            capture = None
                if region and capture is not None:
                    capture.append(t)
            elif "-->" in t:
                region = 0
            if region_owner is not None:
                region_owner.details.append(t)
            continue
        s = t.lstrip(" \t")
        if not s:
            if last_owner is not None:
                pending.append(t)
            continue
        c = s[0]
        if c in special:
            if c in task_first:
                # ---- task line (R4-R6)
                if "[" in s:
                    m = task_fast(t)
                    if m is not None:
                        # the dominant shape; same result as TASK_RE (see TASK_FAST_RE)
                        gi, cell, star, tid, dot, title = m.groups()
                        cs = cell_fast[cell]
                        title = title.strip()
                        optional = star is not None
                        raw_id = tid if dot is None else tid + dot
                        cpos = m.start(2)
                    else:
                        cs = None
                        m = task_match(t)
                        if m is not None:
                            g = m.groups()
                            cs = cell_fast.get(g[2]) or odd_cell(g, lineno, diags)
                            if cs is not None:
                                gi = g[0]
                                cpos = m.start(3)
                                title = g[12].strip()
                                optional = g[3] is not None
                                if g[4] is not None:
                                    tid = g[7]
                                    raw_id = g[4]
                                    if g[8] is not None:
                                        optional = True
                                else:
                                    tid = raw_id = None
                                    if title[:1] in "*0123456789" and title and BAD_ID_RE.match(title):
                                        diags.append(
                                            Diagnostic(
                                                lineno,
                                                "malformed_id",
                                                f"title starts like an id but is not one: {title[:20]!r}",
                                            )
                                        )
                                if g[1] != "-":
                                    code = (
                                        "ordered_list_checkbox"
                                        if g[1][:1].isdigit()
                                        else "star_or_plus_bullet"
                                    )
                                    diags.append(
                                        Diagnostic(
                                            lineno,
                                            code,
                                            f"checkbox on a {g[1]!r} list item accepted as a task",
                                        )
                                    )
                    if cs is not None:
                        w = indent_width(gi) if "\t" in gi else len(gi)
                        line_start = offsets[lineno - 1]
                        raw = data[line_start : offsets[lineno]]
                        # The text before the cell is ASCII: char offset == byte offset.
                        cell_start = line_start + cpos + (bom if lineno == 1 else 0)
                        if len(cs[0]) == 1 and cs[1] != "unknown":
                            cell_end = cell_start + 1
                        else:  # measure in the bytes: an invalid byte decodes to 3
                            cell_end = line_start + raw.index(b"]", cell_start - line_start)
                        if wrap is not None:
                            unclosed(diags, wrap)
                            wrap = None
                        while st and st[-1].indent >= w:
                            st.pop()
                        parent = st[-1] if st else None
                        by_id = False
                        if tid is not None and "." in tid:
                            by_prefix = section_ids.get(tid.rpartition(".")[0])
                            if by_prefix is not None and by_prefix is not parent:
                                if parent is None:
                                    parent = by_prefix
                                    by_id = True
                                else:
                                    diags.append(Diagnostic(lineno, "indent_id_conflict",
                                        f"task {tid} is indented under line {parent.line} but its "
                                        f"id points to line {by_prefix.line}; indentation wins"))  # fmt: skip
                        task = Task(
                            len(tasks), lineno, line_start, raw, cell_start, cell_end,
                            cs[0], cs[1], optional, tid, raw_id, title, w,
                            0 if parent is None else parent.depth + 1, parent, [], by_id, [], [], (), (), (),
                            section, in_summary,
                        )  # fmt: skip
                        if tid is not None:
                            section_ids[tid] = task
                            first = first_ids.setdefault(tid, task)
                            if first is not task:
                                diags.append(
                                    Diagnostic(
                                        lineno,
                                        "duplicate_id",
                                        f"task id {tid} also on line {first.line}; both kept",
                                    )
                                )
                        if parent is not None:
                            parent.children.append(task)
                        st.append(task)
                        tasks.append(task)
                        if pending:
                            pending.clear()
                        last_owner = task
                        if "<!--" in s and "-->" not in s[s.rfind("<!--") :]:
                            region, region_start, region_owner = 2, lineno, task
                        # annotate() on a title only looks for an inline
                        # annotation closing it, a bold property form and
                        # "depends on" prose; test for those first.
                        if (
                            title[-1:] == "_"
                            or "epend" in title
                            or ("**" in title and ("**V" in title or "**P" in title or "**v" in title))
                        ):
                            annotate(task, title, lineno, w, False, prose)
                            rederive[task.index] = task
                        continue
            elif c == "`" or c == "~":
                # ---- fence opening (R2.2)
                if s[:3] in ("```", "~~~"):
                    n = len(s) - len(s.lstrip(c))
                    if not (c == "`" and "`" in s[n:]):
                        ind = len(t) - len(s)
                        width = indent_width(t[:ind]) if "\t" in t[:ind] else ind
                        region, fence_ch, fence_len, region_start = 1, c, n, lineno
                        if wrap is not None:
                            unclosed(diags, wrap)
                            wrap = None
                        while st and st[-1].indent >= width:
                            st.pop()
                        region_owner = last_owner = st[-1] if st else None
                        if region_owner is not None:
                            region_owner.details.extend(pending)
                            region_owner.details.append(t)
                        pending.clear()
                        if in_wave and s[n:].strip()[:4].lower() == "json":
                            capture = []
                        continue
            elif c == "#":
                # ---- heading (R3)
                hm = HEADING_RE.match(s) if len(t) - len(s) <= 3 and "\t" not in t[:4] else None
                if hm is not None:
                    level = len(hm.group(1))
                    text = hm.group(2) or ""
                    if "#" in text:
                        text = HEADING_CLOSE_RE.sub("", text)
                    text = text.strip()
                    while headings and headings[-1][0] >= level:
                        headings.pop()
                    headings.append((level, text))
                    section = tuple(h for _, h in headings)
                    in_summary = any(SUMMARY_RE.match(h) for h in section)
                    in_wave = any(WAVE_HEADING_RE.search(h) for h in section)
                    st.clear()
                    section_ids.clear()
                    pending.clear()
                    last_owner = None
                    if wrap is not None:
                        unclosed(diags, wrap)
                        wrap = None
                    if "[" in text or text[:1] in "*T0123456789":
                        heading_diag(lineno, text, diags)
                    if "<!--" in s and "-->" not in s[s.rfind("<!--") :]:
                        region, region_start, region_owner = 2, lineno, None
                    continue
            elif c == "|" or c == ">":  # table row, blockquote: never a task (R2.4, R2.5)
                if "[" in s and CHECKBOX_ANY_RE.search(s):
                    code = "checkbox_in_table" if c == "|" else "checkbox_in_blockquote"
                    diags.append(Diagnostic(lineno, code, "checkbox here is not a task"))
            elif c == "[" and BARE_CHECKBOX_RE.match(s):
                # "[x] **T1.1** …": GFM renders no checkbox without a list marker
                diags.append(
                    Diagnostic(
                        lineno, "bare_checkbox", "checkbox without a list marker is not a task"
                    )
                )
        # ---- body text (R7): owned by the innermost open task indented less
        ind = len(t) - len(s)
        if ind:
            width = ind if "\t" not in t else indent_width(t[:ind])
        else:
            width = 0
        if st:
            owner: Task | None = st[-1]
            if owner.indent >= width:  # type: ignore[union-attr]
                st.pop()
                while st and st[-1].indent >= width:
                    st.pop()
                owner = st[-1] if st else None
        else:
            owner = None
        if "<!--" in s:
            # HTML comment (R2.3): a line starting one is not read for annotations;
            # one left open turns the following lines into a region.
            if "-->" not in s[s.rfind("<!--") :]:
                region, region_start, region_owner = 2, lineno, owner
            if s.startswith("<!--"):
                if wrap is not None:
                    unclosed(diags, wrap)
                    wrap = None
                if owner is not None:
                    owner.details.extend(pending)
                    owner.details.append(t)
                pending.clear()
                last_owner = owner
                continue
        if owner is None:
            if wrap is not None:
                unclosed(diags, wrap)
                wrap = None
            if pending:
                pending.clear()
            last_owner = None
            continue
        if pending:
            if owner is last_owner:
                owner.details.extend(pending)
            pending.clear()
        owner.details.append(t)
        last_owner = owner
        if wrap is not None:
            if wrap.task is owner and width > wrap.width:
                piece = s.rstrip()
                if piece.endswith("_"):
                    wrap.parts.append(piece[:-1].strip())
                    wrap.ann.value = " ".join(p for p in wrap.parts if p)
                    wrap = None
                else:
                    wrap.parts.append(piece)
                continue
            unclosed(diags, wrap)
            wrap = None
        if "_" in s[:6]:
            m = ann_fast(s)
            if m is not None:  # the common "- _Requirements: 1.1, 2.3_" shape
                key, value = m.groups()
                key = key.rstrip(" ")
                value = value.rstrip(" \t")
                norm = key_cache.get(key) or cached_norm(key)
                owner.annotations.append(Annotation(key, norm, value, lineno))
                if norm == "requirements":
                    items = req_cache.get(value)
                    if items is None:
                        items = req_cache[value] = tuple(split_requirements(value))
                    owner.requirements += items
                elif norm == "depends":
                    rederive[owner.index] = owner
            else:
                wrap = annotate(owner, s, lineno, width, True, prose)
                rederive[owner.index] = owner
        elif (
            ("_" in s and s.rstrip()[-1:] == "_")
            or "epend" in s
            or ("**" in s and ("**V" in s or "**P" in s or "**v" in s))
        ):
            # what annotate() looks for when no "_" opens the line: an inline
            # annotation closing it, a bold property form, "depends on" prose
            wrap = annotate(owner, s, lineno, width, True, prose)
            rederive[owner.index] = owner
    if wrap is not None:
        unclosed(diags, wrap)
    if region == 1:
        diags.append(
            Diagnostic(
                region_start, "unclosed_fence", "code fence never closed; it runs to the end"
            )
        )
    elif region == 2:
        diags.append(
            Diagnostic(
                region_start, "unclosed_comment", "HTML comment never closed; it runs to the end"
            )
        )
    return _Scan(tasks, diags, prose, waves, rederive)


def parse(data: bytes, path: str = "tasks.md") -> TaskFile:
    """Index *data* (the bytes of a tasks.md).  Never raises on text input.

    The only error is a NUL byte: such data is a binary file, and guessing at
    it would risk an edit that corrupts it.  Invalid UTF-8, a BOM, any mix of
    line endings, an empty file or a file without tasks all parse (the last two
    to ``tasks == []``; whether that is an error is the caller's call).

    *path* is only a label for diagnostics and errors.  Time is linear in the
    size of the file (see ``docs/taskfile.md`` for the per-line cost).
    """
    nul = data.find(b"\0")
    if nul >= 0:
        raise TaskFileError(path, line_of_offset(data, nul), "binary file, not a tasks list")
    gc_was_enabled = gc.isenabled()
    # The index is thousands of small linked objects and no garbage: running the
    # cycle collector over them while they are built costs ~10 % for nothing.
    gc.disable()
    try:
        sc = _scan(data)
        derive(
            sc.rederive.values(),
            sc.tasks,
            sc.prose,
            sc.waves,
            lambda ln, code, msg: sc.diags.append(Diagnostic(ln, code, msg)),
        )
    finally:
        if gc_was_enabled:
            gc.enable()
    return TaskFile(
        path=path, data=data, tasks=sc.tasks, diagnostics=sc.diags, newline=dominant_newline(data)
    )


def load(path: str | os.PathLike[str]) -> TaskFile:
    """Read and parse a file; an OSError becomes a one-line TaskFileError."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise TaskFileError(p, 0, f"cannot read: {exc.strerror or exc}") from exc
    return parse(data, p)
