"""pytest-html and pytest-json-report on a spec: one row per task, with the task's facts.

The two plugins are installed outside the test venv by
scripts/install-report-plugins.sh (as .ci/run does) and put on PYTHONPATH
for these runs only, so the rest of the suite does not autoload them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from seqharness.testing import SpecProject

PLUGINS = Path(os.environ.get("SEQHARNESS_REPORT_PLUGINS")
               or Path.home() / ".cache" / "seqharness-report-plugins")

pytestmark = pytest.mark.skipif(not (PLUGINS / "pytest_html").is_dir() or not (PLUGINS / "pytest_jsonreport").is_dir(),
                                reason="run scripts/install-report-plugins.sh (.ci/run does)")

SPEC = """\
- [ ] 1. Create the model
- [ ] 2. Add the login page
  - fake-agent: fail
- [ ] 3. Write the docs
"""


def test_html_and_json_reports_have_a_row_per_task_with_its_facts(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", SPEC)
    html, js = tmp_path / "report.html", tmp_path / "report.json"
    res = project.run(".kiro/specs/feature", "--maxfail", "5", "--html", str(html), "--self-contained-html",
                      "--json-report", f"--json-report-file={js}",
                      env={"PYTHONPATH": str(PLUGINS)})
    res.assert_failed(1)
    doc = json.loads(js.read_text())
    tests = {t["nodeid"].rsplit("::", 1)[1]: t for t in doc["tests"]}
    assert sorted(tests) == ["1", "2", "3"]
    assert [tests[n]["outcome"] for n in ("1", "2", "3")] == ["passed", "failed", "passed"]
    for name, row in tests.items():
        out = row["call"].get("stdout", "")
        assert f"task: {name}: " in out and "transcript: .kiro/specs/feature/.seqharness/transcripts/" in out
    assert "task 2 failed: the agent exited with code 1" in tests["2"]["call"]["crash"]["message"]
    page = html.read_text()
    for name in ("1", "2", "3"):
        assert f"tasks.md::{name}" in page
    assert "transcript: .kiro/specs/feature/.seqharness/transcripts/task-2-" in page
