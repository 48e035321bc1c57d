"""Every conftest template works when copied into a project, as its README says."""

from __future__ import annotations

import sys
from pathlib import Path

from repokit import FAKE_AGENT, REPO

from seqharness.testing import SpecProject

TEMPLATES = REPO / "conftest_templates"


def _install(project: SpecProject, name: str, replacements: dict[str, str]) -> None:
    text = (TEMPLATES / name).read_text()
    for old, new in replacements.items():
        assert old in text, f"{name} no longer contains {old!r}"
        text = text.replace(old, new)
    (project.root / "conftest.py").write_text(text)


def test_custom_backend_template(project: SpecProject, tmp_path: Path) -> None:
    wrapper = tmp_path / "my-agent"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE_AGENT} \"$@\"\n")
    wrapper.chmod(0o755)
    project.spec("feature", "- [ ] 1. One\n")
    _install(project, "custom_backend.py", {
        'return "my-agent"': f"return {str(wrapper)!r}",
        '"--non-interactive",': "",
    })
    res = project.run(".kiro/specs/feature", backend="myagent")
    assert res.ret == 0, res.output
    assert project.agent_calls()[0]["task"] == "1"


def test_route_tasks_template(project: SpecProject, tmp_path: Path) -> None:
    ui_agent = tmp_path / "ui_agent.py"
    ui_agent.write_text(FAKE_AGENT.read_text())
    project.spec("feature", "- [ ] 1. Build the API\n- [ ] 2. Style the login page\n")
    _install(project, "route_tasks.py", {
        'UI_BACKEND = "gemini"': f'UI_BACKEND = "cmd:{sys.executable} {ui_agent} --prompt-file {{prompt_file}}"',
    })
    res = project.run(".kiro/specs/feature")
    assert res.ret == 0, res.output
    assert [Path(c["argv"][0]).name for c in project.agent_calls()] == ["fake_agent.py", "ui_agent.py"]


def test_team_prompt_template(project: SpecProject) -> None:
    spec = project.spec("feature", "- [ ] 1. One\n")
    _install(project, "team_prompt.py", {})
    res = project.run(".kiro/specs/feature")
    assert res.ret == 0, res.output
    prompt = next((spec / ".seqharness" / "transcripts").glob("*.prompt.md")).read_text()
    assert "Write the failing test first" in prompt and "Task id: 1" in prompt


def test_verify_tests_template(project: SpecProject, tmp_path: Path) -> None:
    """A task's own _Verify: check gates it; the others run the default check."""
    project.spec("feature", "- [ ] 1. One\n  - _Verify: false_\n- [ ] 2. Two\n")
    _install(project, "verify_tests.py", {'VERIFY = "python -m pytest -q -x"': 'VERIFY = "true"'})
    res = project.run(".kiro/specs/feature", "--maxfail", "2")
    res.assert_failed(1)
    assert "task 1 failed: verification failed: false: exit 1" in res.output
    state = project.spec_state("feature")
    assert state["tasks"]["1"]["status"] == "failed" and state["completed"] == ["2"]
