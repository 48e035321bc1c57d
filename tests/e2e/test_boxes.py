"""Box hygiene: an agent that ticks or rewrites other tasks' lines gets them restored."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from seqharness.testing import SpecProject

SPEC = """\
# Plan

- [ ] 1. Build the API
  Some notes the agent may edit.
- [ ] 2. Add login
- [ ] 3. Write the docs
"""

MEDDLER = '''
import sys
prompt = open(sys.argv[sys.argv.index("--prompt-file") + 1]).read()
if "Task id: 1" in prompt:
    path = ".kiro/specs/feature/tasks.md"
    text = open(path).read()
    text = text.replace("- [ ] 3. Write the docs", "- [x] 3. Write the docs")
    text = text.replace("- [ ] 2. Add login", "- [ ] 2. Add login (done by agent?)")
    text = text.replace("Some notes the agent may edit.", "Notes edited by the agent.")
    open(path, "w").write(text)
print("<promise>TASK_DONE</promise>")
'''


def _meddler(tmp_path: Path) -> str:
    agent = tmp_path / "meddler.py"
    agent.write_text(MEDDLER)
    return f"cmd:{shlex.quote(sys.executable)} {shlex.quote(str(agent))} --prompt-file {{prompt_file}}"


def test_other_tasks_lines_are_restored_and_reported(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", SPEC)
    res = project.run(".kiro/specs/feature", "--maxfail", "1", backend=_meddler(tmp_path))
    res.assert_passed()
    assert "task 1: the agent changed task lines of" in res.output and "(lines 5, 6); restored" in res.output
    text = project.tasks_md("feature")
    assert text == SPEC.replace("- [ ] ", "- [x] ").replace("Some notes the agent may edit.",
                                                            "Notes edited by the agent.")
    assert project.spec_state("feature")["completed"] == ["1", "2", "3"]  # task 3 ran: its tick did not count


def test_the_guard_can_be_turned_off(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", SPEC)
    res = project.run(".kiro/specs/feature", "-p", "no:seqharness.boxes", backend=_meddler(tmp_path))
    res.assert_passed()
    assert "restored" not in res.output
    assert "- [ ] 2. Add login (done by agent?)" in project.tasks_md("feature")  # the agent's edit stays
