"""The hooks of seqharness.hookspec, as a user's conftest.py sees them in a real run.

A conftest plugin implementing every hook logs each call with its arguments
and what is on disk at that moment (the state file, the task's checkbox), so
the order, the arguments and the documented moment of each hook are checked
against a real ``seqharness`` run of the fake agent.
"""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from seqharness import hookspec
from seqharness.testing import SpecProject

FAKE_AGENT = Path(__file__).resolve().parents[2] / "fixtures" / "fake_agent.py"

SPEC = """\
- [ ] 1. First task
- [ ] 2. SKIPME by the conftest
- [ ] 3. Flaky task
  - fake-agent: flaky=1
- [ ] 4. Needs a human
  - fake-agent: halt
- [ ] 5. Never reached
"""

RECORDER = '''
import json, os
from pathlib import Path

import pytest

LOG = os.environ["HOOK_LOG"]
SEEN = {}


def log(hook, **kw):
    with open(LOG, "a") as fh:
        fh.write(json.dumps({"hook": hook, **kw}) + "\\n")


def state(spec):
    doc = json.loads((spec.specs_dir / "SEQUENTIAL_STATE.json").read_text())
    return doc["specs"][spec.name]


def box(spec, unit):
    line = spec.tasks_path.read_text().splitlines()[unit.head.line - 1]
    return line[line.index("[") + 1]


def pytest_seqharness_add_backends(backends):
    log("add_backends", names=backends.names())


def pytest_seqharness_spec_start(spec):
    log("spec_start", spec=spec.name, token=bool(state(spec)["next_token"]),
        lock=(spec.run_dir / "run.lock").exists())


def pytest_seqharness_unit_skip(spec, unit):
    log("unit_skip", unit=unit.name)
    return "skipped by the conftest" if "SKIPME" in unit.title else None


def pytest_seqharness_choose_backend(spec, unit):
    log("choose_backend", unit=unit.name)


def pytest_seqharness_build_prompt(spec, unit, context):
    log("build_prompt", unit=unit.name, attempt=context.attempt, previous=context.previous_failure)


def pytest_seqharness_invocation(attempt, invocation):
    log("invocation", unit=attempt.unit.name, attempt=attempt.number, pid=attempt.pid,
        argv_is_list=isinstance(invocation.argv, list))
    env = dict(os.environ if invocation.env is None else invocation.env)
    env["FAKE_AGENT_LOG"] = os.environ["HOOKED_AGENT_LOG"]
    invocation.env = env


def pytest_seqharness_attempt_start(attempt):
    log("attempt_start", unit=attempt.unit.name, attempt=attempt.number, pid=attempt.pid,
        transcript=attempt.transcript.exists(), window=attempt.window,
        running=state(attempt.spec)["running"]["unit"], box=box(attempt.spec, attempt.unit))


def pytest_seqharness_agent_output(attempt, data):
    key = (attempt.unit.name, attempt.number)
    SEEN[key] = SEEN.get(key, b"") + data


@pytest.hookimpl(wrapper=True)
def pytest_seqharness_decide_outcome(attempt, result):
    outcome = yield
    log("decide_outcome", unit=attempt.unit.name, attempt=attempt.number, exit=result.exit_status,
        kind=outcome.kind)
    return outcome


def pytest_seqharness_attempt_logreport(attempt, outcome):
    st = state(attempt.spec)
    seen = SEEN.get((attempt.unit.name, attempt.number), b"")
    log("attempt_logreport", unit=attempt.unit.name, attempt=attempt.number, kind=outcome.kind,
        running=(st["running"] or {}).get("unit"), box=box(attempt.spec, attempt.unit),
        output_has_done=b"<promise>TASK_DONE</promise>" in seen, output_bytes=len(seen))


def pytest_seqharness_attempt_finish(attempt, outcome):
    st = state(attempt.spec)
    log("attempt_finish", unit=attempt.unit.name, attempt=attempt.number, kind=outcome.kind,
        recorded=st["tasks"][attempt.unit.name]["status"], running=st["running"],
        box=box(attempt.spec, attempt.unit))


def pytest_seqharness_wait(spec, unit, wait):
    log("wait", unit=unit.name, kind=wait.kind)


def pytest_seqharness_halt(spec, unit, question):
    log("halt", unit=unit.name, question=question, recorded=state(spec)["halted_task"])


def pytest_seqharness_report_facts(spec, unit, result):
    log("report_facts", unit=unit.name, outcome=result.outcome.kind, attempts=len(result.attempts))
    return [("hooked", "yes")]


def pytest_seqharness_spec_finish(spec, exitstatus):
    log("spec_finish", spec=spec.name, exitstatus=exitstatus)
'''


def _hook_names() -> set[str]:
    return {name for name in dir(hookspec) if name.startswith("pytest_seqharness_")}


def test_the_recorder_conftest_implements_every_hook() -> None:
    implemented = {line.split("(")[0][4:] for line in RECORDER.splitlines() if line.startswith("def pytest_")}
    assert implemented == _hook_names()


def test_every_hook_fires_in_order_with_its_arguments_at_its_moment(project: SpecProject,
                                                                     tmp_path: Path) -> None:
    spec = project.spec("feature", SPEC)
    project.conftest(RECORDER)
    log, hooked_agents = tmp_path / "hooks.jsonl", tmp_path / "hooked-agents.jsonl"
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/feature", "--task-retries", "1", "--delay", "0.05",
                      "--junitxml", str(report), "-rs",
                      env={"HOOK_LOG": str(log), "HOOKED_AGENT_LOG": str(hooked_agents)})
    assert res.ret == 2, res  # halted at task 4
    events = [json.loads(line) for line in log.read_text().splitlines()]

    def brief(e: dict) -> str:
        return e["hook"] + (f" {e['unit']}" if "unit" in e else "") + (f"/{e['attempt']}" if "attempt" in e else "")

    attempt = ["build_prompt", "invocation", "attempt_start", "decide_outcome", "attempt_logreport",
               "attempt_finish"]

    def run(unit: str, n: int) -> list[str]:
        return [f"{h} {unit}/{n}" for h in attempt]

    expected = (["add_backends", "spec_start",
                 "unit_skip 1", "choose_backend 1", *run("1", 1), "report_facts 1",
                 "unit_skip 2",
                 "unit_skip 3", "choose_backend 3", "wait 3", *run("3", 1), "wait 3", *run("3", 2),
                 "report_facts 3",
                 "unit_skip 4", "choose_backend 4", "wait 4", *run("4", 1), "halt 4", "report_facts 4",
                 "spec_finish"])
    assert [brief(e) for e in events] == expected

    by = {(e["hook"], e.get("unit"), e.get("attempt")): e for e in events}
    assert {"cmd", "claude", "codex", "opencode", "gemini", "aider", "kiro-cli"} <= set(by["add_backends", None, None]["names"])
    assert by["spec_start", None, None] == {"hook": "spec_start", "spec": "feature", "token": True, "lock": True}
    prompts = [e for e in events if e["hook"] == "build_prompt" and e["unit"] == "3"]
    assert [p["attempt"] for p in prompts] == [1, 2]
    assert prompts[0]["previous"] is None and "exited with code" in prompts[1]["previous"]
    # invocation: before the spawn; its env change reached the agent.
    assert by["invocation", "1", 1]["pid"] is None and by["invocation", "1", 1]["argv_is_list"]
    assert [json.loads(line)["task"] for line in hooked_agents.read_text().splitlines()] == ["1", "3", "3", "4"]
    # attempt_start: after write-order steps 1-2 (running recorded, [-] written).
    start = by["attempt_start", "1", 1]
    assert isinstance(start["pid"], int) and start["transcript"] and start["window"] is None
    assert start["running"] == "1" and start["box"] == "-"
    # decide_outcome: the backend's reading, seen by a wrapper.
    assert [by["decide_outcome", "3", n]["kind"] for n in (1, 2)] == ["failed", "passed"]
    assert by["decide_outcome", "4", 1]["kind"] == "halted"
    # attempt_logreport: step 4, before the state (5) and tasks.md (6) are written.
    report1 = by["attempt_logreport", "1", 1]
    assert report1["running"] == "1" and report1["box"] == "-" and report1["kind"] == "passed"
    assert report1["output_has_done"] and report1["output_bytes"] > 0
    # attempt_finish: after steps 5-6.
    finish1 = by["attempt_finish", "1", 1]
    assert finish1["recorded"] == "passed" and finish1["running"] is None and finish1["box"] == "x"
    assert by["attempt_finish", "3", 1]["box"] == " " and by["attempt_finish", "3", 1]["recorded"] == "failed"
    assert by["halt", "4", None]["recorded"] == "4" and by["halt", "4", None]["question"]
    assert by["report_facts", "3", None]["attempts"] == 2
    assert by["spec_finish", None, None]["exitstatus"] == 1  # pytest's own, before the halt's 2
    assert "skipped by the conftest" in res.output
    out = [c.findtext("system-out") or "" for c in ET.parse(report).getroot().iter("testcase")]
    assert "hooked: yes" in out[0] and "attempts: 1" in out[0]
    assert "- [ ] 2. SKIPME" in spec.joinpath("tasks.md").read_text()


@pytest.mark.parametrize("name", ["seqharness.tmux", "seqharness.live", "seqharness.progress",
                                  "seqharness.junit", "seqharness.reporting", "seqharness.state"])
def test_each_builtin_view_can_be_disabled_and_the_run_still_passes(tmux_project: SpecProject,
                                                                     tmp_path: Path, name: str) -> None:
    tmux_project.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    report = tmp_path / "r.xml"
    res = tmux_project.run(".kiro/specs/feature", "-p", f"no:{name}", "--live", "on",
                           "--junitxml", str(report))
    assert res.ret == 0, res
    specs = tmux_project.root / ".kiro" / "specs"
    windows = tmux_project.tmux("list-windows", "-a", "-F", "#{window_name}") if name != "seqharness.tmux" else ""
    facts = "".join(c.findtext("system-out") or "" for c in ET.parse(report).getroot().iter("testcase"))
    on = {
        "seqharness.tmux": "task-1" in windows,
        "seqharness.live": "\x1b[" in res.stdout,
        "seqharness.progress": (specs / "SEQUENTIAL_PROGRESS.md").exists(),
        "seqharness.junit": "transcript:" in facts,
        "seqharness.reporting": "transcript:" in facts,
        "seqharness.state": (specs / "SEQUENTIAL_STATE.json").exists()
        and "- [x] 1. One" in (specs / "feature" / "tasks.md").read_text(),
    }
    assert on.pop(name) is False, f"{name} still worked although disabled"
    if name in ("seqharness.junit", "seqharness.reporting"):  # the facts need both
        on.pop("seqharness.reporting" if name == "seqharness.junit" else "seqharness.junit")
    assert all(on.values()), (on, res)


def test_conftest_replaces_the_prompt_adds_a_backend_and_routes_before_the_ini_rules(
        project: SpecProject, tmp_path: Path) -> None:
    spec = project.spec("feature", "- [ ] 1. Build the login page\n- [ ] 2. Other work\n")
    (project.root / "pytest.ini").write_text("[pytest]\nseqharness_routes =\n    title:/login/ = nosuch\n")
    mine = tmp_path / "mine_agent.py"
    mine.write_text(FAKE_AGENT.read_text())
    project.conftest(f'''
        import sys
        import pytest
        from seqharness.backends import CommandBackend

        def pytest_seqharness_add_backends(backends):
            backends.add("mine", lambda extra: CommandBackend(
                f"{{sys.executable}} {mine} --prompt-file {{{{prompt_file}}}}"))

        @pytest.hookimpl(tryfirst=True)
        def pytest_seqharness_choose_backend(unit):
            return "mine" if "login" in unit.title else None

        def pytest_seqharness_build_prompt(unit, context):
            return f"Task id: {{unit.name}}\\nOur own prompt. Print the done tag when done.\\n"
        ''')
    res = project.run(".kiro/specs/feature")
    assert res.ret == 0, res
    prompts = sorted((spec / ".seqharness" / "transcripts").glob("*.prompt.md"))
    assert len(prompts) == 2
    assert all(p.read_text().startswith("Task id:") and "Our own prompt" in p.read_text() for p in prompts)
    calls = project.agent_calls()
    assert [(c["task"], Path(c["argv"][0]).name) for c in calls] == [("1", "mine_agent.py"),
                                                                      ("2", "fake_agent.py")]
    assert "nosuch" not in res.output  # the conftest answered before the ini rule


def test_a_decide_outcome_wrapper_turns_a_pass_into_a_failure(project: SpecProject) -> None:
    project.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n")
    project.conftest('''
        import pytest
        from seqharness.outcome import Outcome

        @pytest.hookimpl(wrapper=True)
        def pytest_seqharness_decide_outcome(attempt, result):
            outcome = yield
            if attempt.unit.name == "2":
                return Outcome("failed", "verification failed: 1 test failed")
            return outcome
        ''')
    res = project.run(".kiro/specs/feature")
    assert res.ret == 1, res
    assert "task 2 failed: verification failed: 1 test failed" in res.output
    state = project.spec_state("feature")
    assert state["completed"] == ["1"] and state["tasks"]["2"]["status"] == "failed"


def test_a_plugin_ends_an_attempt_on_its_own_signal(project: SpecProject) -> None:
    project.spec("feature", "- [ ] 1. Floods\n  - fake-agent: hang\n")
    project.conftest('''
        def pytest_seqharness_agent_output(attempt, data):
            attempt.request_stop("saw enough output")
        ''')
    res = project.run(".kiro/specs/feature", "--task-timeout", "30")
    assert res.ret == 1, res
    assert "stopped: saw enough output" in res.output
    assert res.duration < 20


def test_hookspec_documents_every_hook_with_typed_parameters() -> None:
    import inspect
    import typing

    for name in _hook_names():
        func = getattr(hookspec, name)
        doc = inspect.getdoc(func) or ""
        assert "Use in conftest plugins" in doc, name
        hints = typing.get_type_hints(func, globalns=_typing_namespace())
        params = inspect.signature(func).parameters
        assert set(params) <= set(hints) and "return" in hints, name
        assert all(hints[p] is not typing.Any for p in params), name
    assert textwrap.dedent(hookspec.__doc__ or "").count("pytest_seqharness_") >= len(_hook_names())


def _typing_namespace() -> dict[str, object]:
    from seqharness import attempt, backends, harness, outcome, prompt, units

    return {**vars(hookspec), "Attempt": attempt.Attempt, "UnitResult": attempt.UnitResult,
            "Wait": attempt.Wait, "BackendRegistry": backends.BackendRegistry,
            "Invocation": backends.Invocation, "SpecRun": harness.SpecRun,
            "AttemptResult": outcome.AttemptResult, "Outcome": outcome.Outcome,
            "PromptContext": prompt.PromptContext, "Unit": units.Unit}
