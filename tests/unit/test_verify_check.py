"""run_check, the verification command runner: real processes, bounded memory, no orphans."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from seqharness.verify import TAIL_BYTES, TAIL_LINES, run_check


def _run(argv: list[str], tmp_path: Path, timeout: float = 30) -> tuple[object, str]:
    transcript = tmp_path / "t.log"
    transcript.write_text("agent output\n")
    check = run_check(argv, cwd=tmp_path, transcript=transcript, timeout=timeout, env=dict(os.environ))
    return check, transcript.read_text()


def test_exit_code_output_and_transcript(tmp_path: Path) -> None:
    check, text = _run([sys.executable, "-c", "print('1 failed: test_add'); raise SystemExit(3)"], tmp_path)
    assert check.exit_code == 3 and not check.ok and check.summary().startswith("exit 3 in ")
    assert check.tail == "1 failed: test_add"
    assert text.startswith("agent output\n") and "--- seqharness: verifying:" in text
    assert "1 failed: test_add" in text and "verification failed: exit 3" in text


def test_argv_is_never_run_by_a_shell(tmp_path: Path) -> None:
    check, _ = _run([sys.executable, "-c", "import sys; print(sys.argv[1:])", "$(touch pwned)", ";", "|"],
                    tmp_path)
    assert check.ok and "'$(touch pwned)', ';', '|'" in check.tail
    assert not (tmp_path / "pwned").exists()


def test_a_timeout_ends_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = (f"import subprocess, sys, time; p = subprocess.Popen(['sleep', '60']); "
            f"open({str(pidfile)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(60)")
    start = time.monotonic()
    check, _ = _run([sys.executable, "-c", code], tmp_path, timeout=1.0)
    assert time.monotonic() - start < 8
    assert check.exit_code is None and check.error == "timed out after 1s" and not check.ok
    assert check.tail == "started"
    child = int(pidfile.read_text())
    try:
        os.kill(child, 0)
        alive = Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[0] != "Z"
    except ProcessLookupError:
        alive = False
    assert not alive, "the check's child outlived the timeout"


def test_the_tail_is_bounded_whatever_the_output(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(200000): sys.stdout.write(f'line {i}\\n')"
    check, text = _run([sys.executable, "-c", code], tmp_path)
    assert check.ok and len(text) > 2_000_000  # all of it in the transcript
    lines = check.tail.splitlines()
    assert len(lines) == TAIL_LINES and lines[-1] == "line 199999" and len(check.tail) <= TAIL_BYTES


def test_a_missing_program_is_a_failed_check(tmp_path: Path) -> None:
    check, _ = _run(["surely-not-a-program-xyz"], tmp_path)
    assert not check.ok and check.exit_code is None and check.summary().startswith("cannot run it:")


def test_a_check_that_closes_its_output_early_is_waited_for(tmp_path: Path) -> None:
    check, _ = _run(["sh", "-c", "echo bye; exec >/dev/null 2>&1; sleep 0.3; exit 0"], tmp_path)
    assert check.ok, check.summary()
    assert check.tail == "bye" and check.duration >= 0.3
