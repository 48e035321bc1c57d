#!/usr/bin/env python3
"""Check seqharness.taskfile against the corpus of real Kiro tasks.md files.

For every ``*.tasks.md`` in the corpus folder:

* :func:`seqharness.taskfile.parse` must not raise;
* the file split into lines must join back to the identical bytes;
* every task whose status cell is one ASCII byte is flipped in memory
  (``" "`` <-> ``"x"``, anything else -> ``" "``) by the same splice that
  :func:`~seqharness.taskfile.set_status` performs; exactly one byte must differ,
  and re-parsing must give the same number of tasks on the same lines;
* the task count is compared with ``n_checkbox_lines`` in ``MANIFEST.tsv``
  (a plain regex count); differences are not failures but are listed with the
  reason the grammar gives for them;
* the file's dispatch units must build at both granularities (no dependency
  cycle or unknown id error on real files).

Then the real ``seqharness`` command runs a spec with every outcome (pass,
fail, dependency skip, optional skip, halt) and its JUnit XML must validate
against ``../shared/junit/pytest-junit-10.xsd``.

Usage: ``python scripts/conformance.py [--corpus DIR]``.  Exit status 0 when
every check passes (or the corpus folder is absent), 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from seqharness.taskfile import TaskFile, split_lines
from seqharness.taskscan import parse

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "kiro-tasks"

# The regex MANIFEST.tsv's n_checkbox_lines was counted with (outside fences).
_MANIFEST_RE = re.compile(r"^[ \t]*([-*+]|\d+[.)])[ \t]+\[.\]")
_FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})")


@dataclass
class FileResult:
    """Outcome of one corpus file."""

    name: str
    tasks: int = 0
    flips: int = 0
    failures: list[str] = field(default_factory=list)
    manifest: int | None = None
    reasons: list[tuple[int, str]] = field(default_factory=list)


def manifest_counts(corpus: Path) -> dict[str, int]:
    """``file -> n_checkbox_lines`` from MANIFEST.tsv (empty if the file is absent)."""
    path = corpus / "MANIFEST.tsv"
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as fh:
        return {
            row["file"]: int(row["n_checkbox_lines"]) for row in csv.DictReader(fh, delimiter="\t")
        }


def manifest_lines(data: bytes) -> set[int]:
    """Line numbers the manifest regex counts (its fence handling is the simple toggle)."""
    out: set[int] = set()
    fence: str | None = None
    for n, raw in enumerate(split_lines(data), 1):
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        fm = _FENCE_RE.match(text)
        if fm:
            ch = fm.group(1)[0]
            if fence is None:
                fence = ch
            elif ch == fence:
                fence = None
            continue
        if fence is None and _MANIFEST_RE.match(text):
            out.add(n)
    return out


def explain_difference(tf: TaskFile) -> list[tuple[int, str]]:
    """Why our task lines differ from the manifest regex's lines: ``(line, reason)`` pairs.

    A reason starts with ``+`` for a line we count and the regex does not, and
    with ``-`` for the reverse.
    """
    ours = {t.line: t for t in tf.tasks}
    theirs = manifest_lines(tf.data)
    lines = split_lines(tf.data)
    reasons: list[tuple[int, str]] = []
    for n in sorted(set(ours) - theirs):
        t = ours[n]
        if len(t.cell) == 2 and t.cell[1] == "\ufe0f":
            why = f"+ emoji cell [{t.cell}] is 2 code points: one character for us, not '.' for the regex"
        elif len(t.cell) > 1:
            why = (
                f"+ multi-char cell [{t.cell}] followed by an id: a task for us, not for the regex"
            )
        else:
            why = "+ a task for us; the regex's simpler fence tracking hides it"
        reasons.append((n, why))
    for n in sorted(theirs - set(ours)):
        text = lines[n - 1].decode("utf-8", "replace").strip()
        if re.match(r"^[-*+][ \t]+\[.\]\(", text):
            why = "- markdown link '- [x](url)', not a checkbox"
        elif re.match(r"^(?:[-*+]|\d+[.)])[ \t]+\[.\](?:\*|\\\*)?[^\s*]", text):
            why = "- text glued to the box ('- [x]text'): GFM renders no checkbox"
        else:
            why = "- inside front matter, an HTML comment or a fence: nothing there is a task"
        reasons.append((n, why))
    return reasons


def _count_differing_bytes(a: bytes, b: bytes) -> int:
    """Number of byte positions that differ (plus any length difference), at C speed."""
    n = min(len(a), len(b))
    x = (int.from_bytes(a[:n], "little") ^ int.from_bytes(b[:n], "little")).to_bytes(n, "little")
    return n - x.count(0) + abs(len(a) - len(b))


def flip_checks(tf: TaskFile, res: FileResult) -> None:
    """Flip every one-ASCII-byte cell in memory and check the one-byte contract (R10.2)."""
    data = tf.data
    task_lines = [t.line for t in tf.tasks]
    for t in tf.tasks:
        if t.cell_end - t.cell_start != 1 or data[t.cell_start] >= 0x80:
            continue
        new = b"x" if t.cell == " " else b" "
        flipped = data[: t.cell_start] + new + data[t.cell_end :]
        res.flips += 1
        ndiff = _count_differing_bytes(data, flipped)
        if ndiff != 1:
            res.failures.append(f"L{t.line}: flip changed {ndiff} bytes")
            continue
        again = parse(flipped, tf.path)
        if [u.line for u in again.tasks] != task_lines:
            res.failures.append(
                f"L{t.line}: flip changed the task lines ({len(again.tasks)} tasks)"
            )
        elif again.tasks[t.index].cell != new.decode():
            res.failures.append(f"L{t.line}: flip did not land in the status cell")


def check_file(path: Path, manifest: dict[str, int]) -> FileResult:
    """Run every check on one corpus file."""
    res = FileResult(path.name)
    data = path.read_bytes()
    try:
        tf = parse(data, str(path))
    except Exception as exc:  # noqa: BLE001 - a conformance run reports, never crashes
        res.failures.append(f"parse raised {type(exc).__name__}: {exc}")
        return res
    res.tasks = len(tf.tasks)
    if b"".join(split_lines(data)) != data or tf.data is not data:
        res.failures.append("round-trip: joined lines differ from the file")
    flip_checks(tf, res)
    res.manifest = manifest.get(path.name)
    if res.manifest is not None and res.manifest != res.tasks:
        res.reasons = explain_difference(tf)
    return res


def check_units(path: Path) -> list[str]:
    """Dispatch units build at both granularities (no cycle / unknown-id error)."""
    from seqharness.errors import SpecError
    from seqharness.units import build_units

    tf = parse(path.read_bytes(), path.name)
    problems = []
    for granularity in ("parent", "leaf"):
        try:
            build_units(tf, granularity)
        except SpecError as exc:
            problems.append(f"units ({granularity}): {exc}")
    return problems


JUNIT_SPEC = """# Implementation Plan

- [ ] 1. Passes
- [ ] 2. Fails with noisy output
  - fake-agent: fail
- [ ] 3. Depends on the failure
  - _Depends: 2_
- [ ]* 4. Optional
- [ ] 5. Halts
  - fake-agent: halt
- [ ] 6. Never reached
"""


def validate_junit(xml_path: Path, xsd_path: Path) -> list[str]:
    """Problems found validating *xml_path* against *xsd_path* (empty if valid)."""
    import xmlschema

    schema = xmlschema.XMLSchema(str(xsd_path))
    return [str(err).splitlines()[0] for err in schema.iter_errors(str(xml_path))]


def check_junit(xsd_path: Path) -> list[str]:
    """Run the real ``seqharness`` on a spec with every outcome and validate its
    JUnit XML (default xunit2 and xunit1) against the shared schema."""
    import os
    import subprocess
    import tempfile

    problems: list[str] = []
    fake = REPO / "fixtures" / "fake_agent.py"
    for family in ("xunit2", "xunit1"):
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / ".kiro" / "specs" / "conformance"
            spec.mkdir(parents=True)
            (spec / "tasks.md").write_text(JUNIT_SPEC)
            report = Path(tmp) / "report.xml"
            env = {**os.environ, "CODEAGENT_NO_TMUX": "1"}
            proc = subprocess.run(
                [sys.executable, "-m", "seqharness", str(spec), "--maxfail", "5",
                 "--backend", f"cmd:{sys.executable} {fake} --prompt-file {{prompt_file}}",
                 "--junitxml", str(report), "-o", f"junit_family={family}"],
                cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
            if proc.returncode != 2:
                problems.append(f"junit run ({family}): exit {proc.returncode}, expected 2 (halted)")
            if not report.exists():
                problems.append(f"junit run ({family}): no report written")
                continue
            if family == "xunit2":
                problems.extend(f"junit ({family}): {e}" for e in validate_junit(report, xsd_path))
            text = report.read_text()
            for needle in ("<failure", "<skipped", "HALT: task 5"):
                if needle not in text:
                    problems.append(f"junit run ({family}): {needle!r} missing from the report")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of *.tasks.md files"
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="list every differing line")
    args = ap.parse_args(argv)
    corpus: Path = args.corpus
    if not corpus.is_dir():
        print(f"corpus folder {corpus} not found; nothing to check")
        return 0
    files = sorted(corpus.glob("*.tasks.md"))
    manifest = manifest_counts(corpus)
    results = [check_file(p, manifest) for p in files]
    for path, result in zip(files, results):
        result.failures.extend(check_units(path))

    diffs = [r for r in results if r.manifest is not None and r.manifest != r.tasks]
    if diffs:
        print("Task count differs from MANIFEST.tsv n_checkbox_lines:")
        print(f"  {'file':<66} {'ours':>5} {'manifest':>8}  reason")
        for r in diffs:
            counts = Counter(why for _, why in r.reasons)
            summary = "; ".join(f"{k} (x{v})" for k, v in counts.items())
            print(f"  {r.name[:66]:<66} {r.tasks:>5} {r.manifest:>8}  {summary}")
            if args.verbose:
                for line, why in r.reasons:
                    print(f"      line {line}: {why}")
        print()
    failed = [r for r in results if r.failures]
    for r in failed:
        for f in r.failures[:10]:
            print(f"FAIL {r.name}: {f}")
    n_fail = sum(len(r.failures) for r in results)
    print(
        f"files: {len(results)}  tasks: {sum(r.tasks for r in results)}  "
        f"manifest checkbox lines: {sum(r.manifest or 0 for r in results)}  "
        f"flips: {sum(r.flips for r in results)}  count differences: {len(diffs)}  failures: {n_fail}"
    )
    xsd = corpus.parent.parent / "junit" / "pytest-junit-10.xsd"
    junit_problems = check_junit(xsd) if xsd.exists() else []
    for problem in junit_problems:
        print(f"FAIL {problem}")
    print(f"junit: {'valid against ' + xsd.name if not junit_problems else 'INVALID'}"
          if xsd.exists() else "junit: schema not found, not checked")
    return 1 if n_fail or junit_problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
