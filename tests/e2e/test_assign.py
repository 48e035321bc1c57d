"""Choosing a backend per task: --assign-backend (LLM), routing rules, the hook."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from repokit import FAKE_AGENT

from seqharness.testing import SpecProject

ASSIGNER = '''
import json, os, re, sys, time
prompt = open(sys.argv[1]).read()
with open(os.environ["ASSIGN_LOG"], "a") as log:
    log.write(json.dumps({"prompt": prompt[:300], "time": time.time()}) + "\\n")
if os.environ.get("ASSIGN_FAIL"):
    sys.exit(1)
task = re.search(r"find task (\\S+): (.*)", prompt)
kind = "ui" if "page" in task.group(2) else "code"
print("Thinking about it...")
print(json.dumps({"task": task.group(1), "type": kind, "owner": ""}))
'''


def _agents(tmp_path: Path) -> tuple[str, str]:
    """Two copies of the fake agent, told apart in its call log by their path."""
    a = tmp_path / "agent_code.py"
    b = tmp_path / "agent_ui.py"
    a.write_text(FAKE_AGENT.read_text())
    b.write_text(FAKE_AGENT.read_text())
    return (f"cmd:{sys.executable} {a} --prompt-file {{prompt_file}}",
            f"cmd:{sys.executable} {b} --prompt-file {{prompt_file}}")


def _which(project: SpecProject) -> list[tuple[str, str]]:
    return [(c["task"], Path(c["argv"][0]).stem) for c in project.agent_calls()]


def test_assign_backend_routes_by_type_and_asks_once_per_task_across_runs(
        project: SpecProject, tmp_path: Path) -> None:
    spec = project.spec("feature", """
        - [ ] 1. Build the API
        - [ ] 2. Design the landing page
          - fake-agent: fail
        """)
    code, ui = _agents(tmp_path)
    assigner = tmp_path / "assigner.py"
    assigner.write_text(textwrap.dedent(ASSIGNER))
    log = tmp_path / "assign.jsonl"
    project.env["ASSIGN_LOG"] = str(log)
    args = (".kiro/specs/feature", "--assign-backend", f"cmd:{sys.executable} {assigner} {{prompt_file}}",
            "--assign-map", f"code={code},ui={ui}")
    res = project.run(*args)
    assert res.ret == 1, res.output
    assert "task 2 assigned: type ui" in res.stdout
    assert _which(project) == [("1", "agent_code"), ("2", "agent_ui")]
    assignments = project.state()["specs"]["feature"]["assignments"]
    assert assignments["1"]["type"] == "code" and assignments["2"]["backend"] == ui
    tasks = spec / "tasks.md"
    tasks.write_text(tasks.read_text().replace("fake-agent: fail", "fake-agent: done"))
    res = project.run(*args)
    assert res.ret == 0, res.output
    assert _which(project)[-1] == ("2", "agent_ui")
    assert len(log.read_text().splitlines()) == 2      # once per task, across both runs


def test_failed_assignment_falls_back_to_the_default_backend(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", "- [ ] 1. Build the API\n")
    assigner = tmp_path / "assigner.py"
    assigner.write_text(textwrap.dedent(ASSIGNER))
    project.env.update(ASSIGN_LOG=str(tmp_path / "assign.jsonl"), ASSIGN_FAIL="1")
    res = project.run(".kiro/specs/feature", "--assign-backend",
                      f"cmd:{sys.executable} {assigner} {{prompt_file}}")
    assert res.ret == 0, res.output
    assert "assignment of task 1 failed" in res.stdout and "using the default backend" in res.stdout
    assert project.state()["specs"]["feature"]["assignments"] == {}


def test_routing_rules_from_the_ini_file(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", """
        - [ ] 1. Build the API
        - [ ] 2. Design the landing page
        - [ ] 3. Polish styles
          - _Type: ui_
        """)
    code, ui = _agents(tmp_path)
    (project.root / "pytest.ini").write_text(textwrap.dedent(f"""
        [pytest]
        seqharness_routes =
            title:/landing|login/ = {ui}
            type:ui = {ui}
        """))
    res = project.run(".kiro/specs/feature", backend=code)
    assert res.ret == 0, res.output
    assert _which(project) == [("1", "agent_code"), ("2", "agent_ui"), ("3", "agent_ui")]


def test_bad_routing_rule_is_a_usage_error(project: SpecProject) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    (project.root / "pytest.ini").write_text("[pytest]\nseqharness_routes =\n    colour:red = x\n")
    res = project.run(".kiro/specs/feature")
    assert res.ret == 4
    assert "seqharness_routes: cannot read 'colour:red = x'" in res.output


def test_assignment_hook_in_conftest(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", "- [ ] 1. Build the API\n- [ ] 2. Second\n")
    code, ui = _agents(tmp_path)
    (project.root / "conftest.py").write_text(textwrap.dedent(f"""
        def pytest_seqharness_choose_backend(unit, spec):
            if unit.name == "2":
                return {ui!r}
            return None
        """))
    res = project.run(".kiro/specs/feature", backend=code)
    assert res.ret == 0, res.output
    assert _which(project) == [("1", "agent_code"), ("2", "agent_ui")]
    assert json.loads((project.root / ".kiro/specs/SEQUENTIAL_STATE.json").read_text())
