"""Two protections the protection-removal check found untested: the state
recorder records an attempt even when another logreport hook raises, and a
killed run's [-] box is restored even when the next run does not run that task."""

from __future__ import annotations

from seqharness.testing import SpecProject


def test_a_raising_logreport_hook_cannot_lose_a_pass(project: SpecProject) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    project.conftest('''
        def pytest_seqharness_attempt_logreport(attempt, outcome):
            raise RuntimeError("a broken reporter")
        ''')
    res = project.run(".kiro/specs/feature")
    assert res.ret != 0  # the broken hook is reported
    state = project.spec_state("feature")
    assert state["completed"] == ["1"] and state["running"] is None
    assert "- [x] 1. One" in project.tasks_md("feature")


def test_a_killed_runs_dash_box_is_restored_when_the_task_is_not_rerun(project: SpecProject) -> None:
    project.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    killed = project.run(".kiro/specs/feature", env={"SEQHARNESS_FAULT": "marked@1=kill"})
    assert killed.ret < 0 or killed.ret == 137, killed
    assert "- [-] 1. One" in project.tasks_md("feature")
    res = project.run(".kiro/specs/feature/tasks.md::2")
    res.assert_passed()
    assert project.tasks_md("feature") == "- [ ] 1. One\n- [x] 2. Two\n"
