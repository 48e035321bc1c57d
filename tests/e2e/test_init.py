"""seqharness init: a starter spec and a conftest template, never overwriting anything."""

from __future__ import annotations

import subprocess

from seqharness.testing import SpecProject, seqharness_command


def _init(project: SpecProject, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*seqharness_command(), "init", *args], cwd=project.root, env=project.env,
                          capture_output=True, text=True, timeout=60)


def test_init_creates_a_spec_that_runs_and_a_template_conftest(project: SpecProject) -> None:
    made = _init(project, "auth", "--template", "team_prompt")
    assert made.returncode == 0, made.stdout + made.stderr
    assert "created  .kiro/specs/auth/tasks.md" in made.stdout and "conftest.py" in made.stdout
    assert (project.root / "conftest.py").read_text().startswith('"""conftest.py template: add your team')
    res = project.run(".kiro/specs/auth")
    res.assert_outcomes(passed=2)
    assert "Write the failing test first" in project.prompt("auth", "1")


def test_init_never_overwrites(project: SpecProject) -> None:
    spec = project.spec("auth", "- [ ] 1. Mine\n")
    (project.root / "conftest.py").write_text("# ours\n")
    again = _init(project, "auth", "--template", "verify_tests")
    assert again.returncode == 1
    assert "kept     .kiro/specs/auth/tasks.md (exists; not overwritten)" in again.stdout
    assert "conftest.py exists; not overwritten" in again.stdout
    assert (spec / "tasks.md").read_text() == "- [ ] 1. Mine\n"
    assert (project.root / "conftest.py").read_text() == "# ours\n"


def test_init_lists_templates_and_rejects_unknown_ones(project: SpecProject) -> None:
    listed = _init(project, "--list")
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {"custom_backend", "route_tasks", "team_prompt", "verify_tests"} <= set(names)
    bad = _init(project, "--template", "nope")
    assert bad.returncode == 4 and "no template 'nope'" in bad.stdout
