"""The prompt's content and the generic command backend's argv."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from seqharness.backends import BackendContext, BackendError, CommandBackend, builtin_registry
from seqharness.prompt import DONE_TAG, HALT_TAG, PromptContext, build_prompt
from seqharness.taskscan import parse
from seqharness.units import build_units


def _unit(text: str):
    return build_units(parse(textwrap.dedent(text).lstrip().encode(), "tasks.md"))[0]


def test_prompt_lists_task_subtasks_requirements_spec_files_and_protocol(tmp_path: Path) -> None:
    spec = tmp_path / ".kiro" / "specs" / "f"
    spec.mkdir(parents=True)
    for name in ("requirements.md", "design.md", "tasks.md"):
        (spec / name).write_text("x")
    unit = _unit("""
        - [ ] 2. Build the form
          - Use the design system
          - _Requirements: 1.1, 2.3_
          - [x] 2.1 Done part
          - [ ] 2.2 Open part
            - _Requirements: 4.1_
          - [ ]* 2.3 Optional part
        """)
    prompt = build_prompt(unit, PromptContext(spec_name="f", spec_dir=spec, workdir=tmp_path))
    assert "Task id: 2" in prompt
    assert "Task title: Build the form" in prompt
    assert "- [x] 2.1 Done part" in prompt and "- [ ] 2.2 Open part" in prompt
    assert "2.3 Optional part" not in prompt
    assert "Requirements to satisfy: 1.1, 2.3, 4.1" in prompt
    assert ".kiro/specs/f/requirements.md" in prompt and ".kiro/specs/f/design.md" in prompt
    assert DONE_TAG in prompt and HALT_TAG in prompt
    # No prompt line is a bare signal: an agent's own bare signal line must count.
    assert all(line.strip() not in (DONE_TAG, HALT_TAG) for line in prompt.splitlines())
    with_opt = build_prompt(unit, PromptContext(spec_name="f", spec_dir=spec, workdir=tmp_path,
                                                include_optional=True, attempt=2,
                                                previous_failure="exit code 1"))
    assert "2.3 Optional part (optional)" in with_opt
    assert "attempt 2" in with_opt and "exit code 1" in with_opt


def _ctx(prompt: str = "do it") -> BackendContext:
    return BackendContext(prompt=prompt, prompt_file="/tmp/p.md", task_id="2.1", workdir="/w", spec_dir="/s")


def test_command_backend_replaces_placeholders_inside_single_arguments() -> None:
    backend = builtin_registry().resolve("cmd:agent --file={prompt_file} --id {task_id} --cwd {workdir} '{{literal}}'")
    inv = backend.invocation(_ctx("evil $(touch X); `rm -rf /` {task_id}"))
    assert inv.argv == ["agent", "--file=/tmp/p.md", "--id", "2.1", "--cwd", "/w", "{literal}"]


def test_command_backend_appends_prompt_when_no_placeholder() -> None:
    hostile = "title with ; && $(x) `y` \n newline"
    inv = builtin_registry().resolve("cmd:agent -q").invocation(_ctx(hostile))
    assert inv.argv == ["agent", "-q", hostile]


def test_prompt_placeholder_is_one_argument_even_with_spaces() -> None:
    inv = CommandBackend("agent -p {prompt}").invocation(_ctx("a b  c"))
    assert inv.argv == ["agent", "-p", "a b  c"]


@pytest.mark.parametrize("spec, message", [
    ("cmd:", "needs a command"),
    ("cmd:agent 'unclosed", "cannot split"),
    ("nonsense", "unknown backend 'nonsense'"),
])
def test_bad_backend_specs(spec: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        builtin_registry().resolve(spec)


def test_check_finds_missing_programs(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not found on PATH"):
        builtin_registry().resolve("cmd:surely-not-an-installed-agent-xyz").check()
    with pytest.raises(BackendError, match="not found or not executable"):
        builtin_registry().resolve(f"cmd:{tmp_path}/missing").check()
    builtin_registry().resolve("cmd:sh -c true").check()
