"""Point 6: task text and agent output are data, never code.

A spec whose folder name, task titles and details hold shell syntax, tmux
format strings (``#{...}`` and ``#(...)``, which tmux runs through ``sh -c``
while expanding a name) and terminal escapes is run with real tmux, under
``strace -f`` when available: no marker file appears, no shell is ever
exec'd (by seqharness, tmux or anyone else in the run), tmux session and
window names keep to a safe alphabet, the agent gets the prompt as one
argument, and no escape sequence from the task text reaches the terminal.
Agent output full of characters XML forbids still gives a valid JUnit file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .faultkit import FaultProject, Stats, validate_junit, wait_until

EVIL = ("$(touch PWNED_dollar) `touch PWNED_tick` ; touch PWNED_semi && touch PWNED_and "
        "| touch PWNED_pipe 'q' \"dq\" #{session_name} #(touch PWNED_fmt) "
        "\x1b]0;PWNED_title\x07 \x1b[2J \x1b[31mred")
SPEC_NAME = "spec-$(touch PWNED_dir)`touch PWNED_dtick`;#(touch PWNED_sess)#{session_name}"
TASKS = f"""# Plan {EVIL}

- [ ] 1. Title {EVIL}
  - detail {EVIL}
  - fake-agent: done
- [ ] {EVIL} idless task
- [ ] 3. Third && touch PWNED_three; $(touch PWNED_three2)
"""
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "busybox", "csh", "tcsh"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _strace_ok() -> bool:
    if shutil.which("strace") is None:
        return False
    return subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True).returncode == 0


def _pwned(*folders: Path) -> list[str]:
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [str(p) for p in folder.rglob("PWNED*")]
    return found


def _no_escapes(text: str) -> bool:
    return not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)


def test_hostile_task_text_never_reaches_a_shell(tmux_fproject: FaultProject, tmp_path: Path,
                                                  stats: Stats) -> None:
    project = tmux_fproject
    project.spec(SPEC_NAME, TASKS)
    report = tmp_path / "report.xml"
    args = [f".kiro/specs/{SPEC_NAME}", "--junitxml", str(report), "-v"]
    traced = _strace_ok()
    trace = tmp_path / "trace"
    if traced:
        # -f follows tmux's server too; it outlives the run, so strace ends when
        # the server is killed below.
        argv = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), *project.argv(*args)]
        proc = subprocess.Popen(argv, cwd=project.root, env=project.full_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
        assert wait_until(lambda: project.state_path.exists()
                          and project.spec_state(SPEC_NAME).get("completed_at"), 90, step=0.1)
        time.sleep(0.5)
        sessions = project.tmux_out("list-windows", "-a", "-F", "#{session_name}\t#{window_name}")
        subprocess.run(["tmux", "-L", project.tmux_socket, "kill-server"], capture_output=True, timeout=10)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
    else:
        res = project.run(*args)
        out, err = res.stdout, res.stderr
        assert res.ret == 0, res.output
        sessions = project.tmux_out("list-windows", "-a", "-F", "#{session_name}\t#{window_name}")
    stats.hostile_inputs.update({"shell-syntax-in-titles", "tmux-formats-in-names", "escapes-in-titles"})
    if "Traceback" in out + err:
        stats.tracebacks += 1
    assert "Traceback" not in out + err
    # Nothing was executed: no marker file anywhere the run could have written.
    assert not _pwned(tmp_path, project.root, Path.cwd(), Path.home()), _pwned(tmp_path, project.root)
    # All three tasks ran, each agent given the prompt file as a single argument.
    calls = project.agent_calls()
    assert len(calls) == 3
    for call in calls:
        assert call["argv"][-2] == "--prompt-file" and call["argv"][-1].endswith(".prompt.md")
        assert Path(call["argv"][-1]).is_file()
    prompt = Path(calls[0]["argv"][-1]).read_text()
    assert f"Task title: Title {EVIL}" in prompt and f"detail {EVIL}" in prompt
    # tmux: one session for the run, every name in the safe alphabet.
    rows = [line.split("\t") for line in sessions.splitlines() if line]
    assert rows, sessions
    for session, window in rows:
        assert SAFE_NAME.match(session) and SAFE_NAME.match(window), (session, window)
    assert {w for _, w in rows} >= {"task-1", "task-3"}
    # No escape sequence from the task text reached the terminal (no TTY: pytest adds none).
    assert _no_escapes(out + err), repr(out + err)
    validate_junit(report)
    if traced:
        programs = set()
        for line in trace.read_text(errors="replace").splitlines():
            match = re.search(r'execve\("([^"]+)".*= 0$', line)
            if match:
                programs.add(os.path.basename(match.group(1)))
        assert programs & {"tmux", "tail"}, programs  # the trace did see tmux at work
        assert not programs & SHELLS, f"a shell was executed: {sorted(programs)}"


def test_hostile_tmux_session_option_is_sanitised(tmux_fproject: FaultProject, tmp_path: Path,
                                                   stats: Stats) -> None:
    project = tmux_fproject
    project.spec("feature", "- [ ] 1. One\n")
    res = project.run(".kiro/specs/feature", "--tmux-session", "#(touch PWNED_opt);$(touch PWNED_opt2) x:y.z")
    stats.hostile_inputs.add("tmux-session-option")
    assert res.ret == 0, res.output
    assert not _pwned(tmp_path, project.root)
    names = project.tmux_out("list-sessions", "-F", "#{session_name}").split()
    assert names and all(SAFE_NAME.match(n) for n in names), names


def test_prompt_placeholder_passes_the_prompt_as_one_argument(fproject: FaultProject, tmp_path: Path,
                                                              stats: Stats) -> None:
    fproject.spec("feature", TASKS)
    backend = f"cmd:{sys.executable} {Path(__file__).parents[2] / 'fixtures' / 'fake_agent.py'} {{prompt}}"
    res = fproject.run(".kiro/specs/feature", backend=backend)
    stats.hostile_inputs.add("prompt-as-argument")
    assert res.ret == 0, res.output
    assert not _pwned(tmp_path, fproject.root)
    calls = fproject.agent_calls()
    prompts = sorted((fproject.root / ".kiro/specs/feature/.seqharness/transcripts").glob("*.prompt.md"))
    assert len(calls) == 3 and len(prompts) == 3
    for call in calls:
        assert len(call["argv"]) == 2, call["argv"]  # the script and the whole prompt
    assert calls[0]["argv"][1] == prompts[0].read_text() or calls[0]["argv"][1] in {p.read_text() for p in prompts}


@pytest.mark.parametrize("family", ["xunit2", "xunit1"])
def test_agent_output_full_of_forbidden_characters_gives_valid_junit(fproject: FaultProject, tmp_path: Path,
                                                                     stats: Stats, family: str) -> None:
    fproject.spec("feature", "- [ ] 1. Fails noisily \x01\x1b[31m title\n  - fake-agent: garbage=fail\n"
                             "- [ ] 2. Halts noisily\n  - fake-agent: garbage=halt\n")
    report = tmp_path / "report.xml"
    res = fproject.run(".kiro/specs/feature", "--junitxml", str(report), "--maxfail", "5",
                       "-o", f"junit_family={family}")
    stats.hostile_inputs.add(f"agent-output-garbage-{family}")
    assert res.ret == 2, res.output  # the halt
    assert "Traceback" not in res.output
    if family == "xunit2":
        validate_junit(report)  # junit-10.xsd describes xunit2
    root = ET.parse(report).getroot()  # well-formed: a forbidden character would fail here
    failures = root.findall(".//testcase/failure")
    assert len(failures) == 2
    texts = [f.get("message") or "" for f in failures] + [f.text or "" for f in failures]
    for text in texts:
        assert _no_escapes(text), repr(text)
    assert "exited with code 3" in failures[0].get("message")
    assert failures[1].get("message").startswith("HALT: task 2 needs human input")
    assert "red" in failures[0].text and "end" in failures[0].text
    assert _no_escapes(res.stdout), repr(res.stdout)
