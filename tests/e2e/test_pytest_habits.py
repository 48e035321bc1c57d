"""pytest's own habits on a spec: -m by task type and tags, --lf, --sw, -x, --co."""

from __future__ import annotations

from seqharness.testing import SpecProject

TAGGED = """\
- [ ] 1. Build the API
  - _Tags: backend, api_
- [ ] 2. Style the login page
  - _Type: ui_
- [ ] 3. Document the API
  - _Tags: docs_
"""


def test_m_selects_tasks_by_type_and_tags(project: SpecProject) -> None:
    project.spec("feature", TAGGED)
    res = project.run(".kiro/specs/feature", "-m", "ui or docs", "-v")
    res.assert_passed()
    assert [c["task"] for c in project.agent_calls()] == ["2", "3"]
    assert "1 deselected" in res.output and "PytestUnknownMarkWarning" not in res.output
    listed = project.run(".kiro/specs/feature", "--co", "-q", "-m", "api")
    assert "tasks.md::1" in listed.stdout and "tasks.md::2" not in listed.stdout


FLAKY_SPEC = """\
- [ ] 1. One
- [ ] 2. Two
  - fake-agent: fail
- [ ] 3. Three
- [ ] 4. Four
"""


def test_lf_reruns_exactly_the_failed_task(project: SpecProject) -> None:
    spec = project.spec("feature", FLAKY_SPEC)
    first = project.run(".kiro/specs/feature", "--maxfail", "2")
    first.assert_failed(1)
    assert [c["task"] for c in project.agent_calls()] == ["1", "2", "3", "4"]
    tasks = spec / "tasks.md"
    tasks.write_text(tasks.read_text().replace("fake-agent: fail", "fake-agent: done"))
    again = project.run(".kiro/specs/feature", "--lf")
    again.assert_passed()
    assert "run-last-failure: rerun previous 1 failure" in again.output and "1 passed" in again.output
    assert [c["task"] for c in project.agent_calls()][4:] == ["2"]


def test_sw_resumes_at_the_failing_task(project: SpecProject) -> None:
    spec = project.spec("feature", FLAKY_SPEC)
    first = project.run(".kiro/specs/feature", "--sw")
    first.assert_failed(1)
    assert [c["task"] for c in project.agent_calls()] == ["1", "2"]
    tasks = spec / "tasks.md"
    tasks.write_text(tasks.read_text().replace("fake-agent: fail", "fake-agent: done"))
    again = project.run(".kiro/specs/feature", "--sw")
    again.assert_passed()
    assert "skipping 1 already passed items" in again.output
    assert [c["task"] for c in project.agent_calls()][2:] == ["2", "3", "4"]


def test_x_stops_at_the_first_failure_and_maxfail_goes_on(project: SpecProject) -> None:
    project.spec("feature", FLAKY_SPEC)
    project.run(".kiro/specs/feature", "-x").assert_failed(1)
    assert [c["task"] for c in project.agent_calls()] == ["1", "2"]
    project.run(".kiro/specs/feature", "--maxfail", "5").assert_failed(1)
    assert [c["task"] for c in project.agent_calls()][2:] == ["2", "3", "4"]
