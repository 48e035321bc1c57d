"""The prompt sent to the agent for one dispatch unit.

The built-in prompt is the ``trylast`` answer of
``pytest_seqharness_build_prompt`` (plugin ``seqharness.prompt``), so a
conftest.py replaces it by returning its own, or amends it with a wrapper.
The prompt carries the completion protocol, so it contains the signal strings
itself.  No line of it is *only* a signal tag: the scanner in
:mod:`seqharness.signals` ignores any output line that repeats a prompt line,
and an agent that answers with a bare ``<promise>TASK_DONE</promise>`` line
must not be mistaken for an echo.

Task text is untrusted.  It is placed in the prompt as data; the prompt goes
to the agent as a file or a single argv element, never through a shell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from seqharness.signals import DONE_TAG, HALT_TAG
from seqharness.taskfile import Task
from seqharness.units import Unit

SPEC_FILES = ("requirements.md", "bugfix.md", "design.md", "tasks.md")


@dataclass
class PromptContext:
    spec_name: str
    spec_dir: Path          # the spec folder
    workdir: Path           # where the agent runs
    include_optional: bool = False
    attempt: int = 1
    previous_failure: str | None = None
    previous_details: str | None = None  # e.g. the failed verification's output tail


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _checkbox(task: Task) -> str:
    return "[x]" if task.done else "[ ]"


def _task_block(task: Task, depth: int) -> list[str]:
    pad = "  " * depth
    label = f"{task.id} " if task.id else ""
    opt = " (optional)" if task.optional else ""
    lines = [f"{pad}- {_checkbox(task)} {label}{task.title}{opt}"]
    for detail in task.details:
        text = detail.strip()
        if text:
            lines.append(f"{pad}    {text}")
    return lines


def build_prompt(unit: Unit, ctx: PromptContext) -> str:
    head = unit.head
    lines: list[str] = []
    lines.append(f"You are implementing one task of the Kiro spec \"{ctx.spec_name}\".")
    lines.append(f"Working directory: {ctx.workdir}")
    lines.append("")
    lines.append(f"Task id: {unit.name}")
    lines.append(f"Task title: {head.title}")
    if head.section:
        lines.append(f"Section: {' > '.join(head.section)}")
    reqs: list[str] = []
    for task in unit.tasks:
        for req in task.requirements:
            if req not in reqs:
                reqs.append(req)
    if reqs:
        lines.append(f"Requirements to satisfy: {', '.join(reqs)}")
    lines.append("")
    lines.append("The task as written in tasks.md (checked boxes are already done):")
    for task in unit.tasks:
        if task is not head and task.optional and not ctx.include_optional:
            continue
        lines.extend(_task_block(task, task.depth - head.depth))
    lines.append("")
    spec_files = [ctx.spec_dir / name for name in SPEC_FILES if (ctx.spec_dir / name).is_file()]
    if spec_files:
        lines.append("Read these spec files before you start:")
        for path in spec_files:
            lines.append(f"- {_rel(path, ctx.workdir)}")
        lines.append("")
    if ctx.attempt > 1:
        lines.append(f"This is attempt {ctx.attempt}. The previous attempt did not complete:")
        lines.append(f"  {ctx.previous_failure or 'no reason recorded'}")
        if ctx.previous_details:
            lines.append("Its last lines of output (fix what they show):")
            lines.append("```")
            lines.extend(ctx.previous_details.rstrip().splitlines())
            lines.append("```")
        lines.append("")
    lines.append("Rules:")
    lines.append("- Work on this task and its subtasks only; do not start other tasks.")
    lines.append("- Do not edit the checkboxes in tasks.md; the harness records progress.")
    lines.append(f"- When the task is complete, print the completion tag {DONE_TAG} as the last line of your answer.")
    lines.append(f"- If you cannot continue without a human decision, explain what you need and then print {HALT_TAG} on a line of its own.")
    lines.append("")
    return "\n".join(lines)


@pytest.hookimpl(trylast=True)
def pytest_seqharness_build_prompt(unit: Unit, context: PromptContext) -> str:
    return build_prompt(unit, context)
