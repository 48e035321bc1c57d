"""Configuration files: [tool.seqharness] in pyproject.toml and a spec folder's seqharness.toml."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from repokit import fake_backend

from seqharness.testing import SpecProject


def _pyproject(project: SpecProject, body: str) -> None:
    (project.root / "pyproject.toml").write_text(textwrap.dedent(body))


def test_project_file_sets_options_and_the_command_line_wins(project: SpecProject) -> None:
    project.spec("feature", "- [ ] 1. One\n  - fake-agent: flaky=2\n")
    _pyproject(project, f"""
        [tool.seqharness]
        backend = {json.dumps(fake_backend())}
        task-retries = 2
        verify = "true"
        """)
    res = project.run(".kiro/specs/feature", backend=None)
    res.assert_passed()  # two failed attempts, then a pass: retries came from the file
    assert [c["task"] for c in project.agent_calls()] == ["1", "1", "1"]
    project.spec("second", "- [ ] 7. Seven\n  - fake-agent: flaky=2\n")
    res = project.run(".kiro/specs/second", "--retries", "0", backend=None)
    res.assert_failed(1)  # the command line beats the file


def test_a_spec_folder_overrides_the_project_file(project: SpecProject) -> None:
    project.spec("plain", "- [ ] 1. One\n")
    special = project.spec("special", "- [ ] 1. One\n")
    _pyproject(project, f"""
        [tool.seqharness]
        backend = {json.dumps(fake_backend())}
        """)
    (special / "seqharness.toml").write_text('verify = "false"\n')
    project.run(".kiro/specs/plain", backend=None).assert_passed()
    res = project.run(".kiro/specs/special", backend=None)
    res.assert_failed(1)
    assert "verification failed: false: exit 1" in res.output


def test_bad_configuration_is_one_line_naming_the_file(project: SpecProject) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    _pyproject(project, """
        [tool.seqharness]
        retries = "three"
        """)
    res = project.run(".kiro/specs/feature")
    assert res.ret == 4, res
    assert "pyproject.toml: retries must be an integer, got 'three'" in res.output
    _pyproject(project, "[tool.seqharness]\nretrys = 3\n")
    res = project.run(".kiro/specs/feature")
    assert res.ret == 4 and "unknown key 'retrys' in [tool.seqharness]" in res.output
    _pyproject(project, "[tool.seqharness\n")
    res = project.run(".kiro/specs/feature")
    assert res.ret == 4 and "pyproject.toml: " in res.output and "(at line 1, column 17)" in res.output
    (project.root / "pyproject.toml").unlink()
    (project.root / ".kiro/specs/feature/seqharness.toml").write_text("tmux = false\n")
    res = project.run(".kiro/specs/feature")
    assert res.ret == 4 and "seqharness.toml: unknown key 'tmux' in seqharness.toml" in res.output
    assert "Traceback" not in res.output


def test_plugin_options_live_in_the_project_file_too(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    events = tmp_path / "events.jsonl"
    _pyproject(project, f"""
        [tool.seqharness]
        notify-cmd = {json.dumps(f"sh -c 'cat >> {events}; echo >> {events}'")}
        notify-on = "finished"
        """)
    project.run(".kiro/specs/feature").assert_passed()
    assert json.loads(events.read_text().splitlines()[0])["event"] == "finished"
