"""Generated ``tasks.md`` files for the benchmark.

* :func:`run_spec`: N top-level tasks, each a dispatch unit with a short body
  (what the per-task figures run).
* :func:`big_tasks_md`: a realistic Kiro plan of about N checkbox lines for the
  parsing figure: numbered parents with four subtasks each, detail bullets,
  ``_Requirements:_`` and some ``_Depends:_`` annotations, section headings, a
  fenced code block now and then, and a ``## Notes`` checklist at the end.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SPEC_NAME = "bench"


def run_tasks_md(n: int) -> str:
    parts = ["# Implementation Plan\n\n"]
    for i in range(1, n + 1):
        parts.append(f"- [ ] {i}. Benchmark task number {i}\n"
                     f"  - Do the small thing number {i}\n"
                     f"  - _Requirements: 1.{i % 7 + 1}_\n\n")
    return "".join(parts)


def run_spec(root: Path, n: int) -> Path:
    """A fresh project at *root* with one spec of *n* tasks; returns the spec folder."""
    if root.exists():
        shutil.rmtree(root)
    spec = root / ".kiro" / "specs" / SPEC_NAME
    spec.mkdir(parents=True)
    (spec / "requirements.md").write_text("# Requirements\n\n1. The benchmark runs.\n")
    (spec / "design.md").write_text("# Design\n\nNothing to design.\n")
    (spec / "tasks.md").write_text(run_tasks_md(n))
    return spec


def big_tasks_md(n: int) -> bytes:
    """About *n* checkbox lines of a realistic plan (parents of 4 subtasks)."""
    out = ["# Implementation Plan\n\n",
           "Tasks are executed one at a time; optional ones are marked with *.\n\n"]
    parent = 0
    count = 0
    while count < n:
        parent += 1
        if parent % 50 == 1:
            out.append(f"## Phase {parent // 50 + 1}: milestone {parent // 50 + 1}\n\n")
        out.append(f"- [ ] {parent}. Implement component {parent} of the service layer\n")
        count += 1
        for sub in range(1, 5):
            if count >= n:
                break
            star = "*" if sub == 4 else ""
            out.append(f"  - [ ]{star} {parent}.{sub} Write `module_{parent}_{sub}.py` with the "
                       f"**core** logic for part {sub}\n"
                       f"    - Handle the edge cases listed in the design (section {sub})\n"
                       f"    - Add unit tests for the public functions\n"
                       f"    - _Requirements: {parent % 9 + 1}.{sub}, {sub}.{parent % 5 + 1}_\n")
            if sub == 2 and parent > 1 and parent % 3 == 0:
                out.append(f"    - _Depends: {parent - 1}_\n")
            count += 1
        if parent % 25 == 0:
            out.append("\n  ```python\n  - [ ] not a task, inside a fence\n  ```\n")
        out.append("\n")
    out.append("## Notes\n\n- [ ] Checklist item that is never dispatched\n")
    return "".join(out).encode()
