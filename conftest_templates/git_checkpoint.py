"""conftest.py template: one git commit per passed task, on the branch you are on.

``seqharness --git`` does this properly (a branch of its own, failed attempts
put aside, a clean start checked); this is the short version to copy and
change: the message, which files, a different branch, a push.  The task title
is untrusted text: it reaches git on stdin, never through a shell.
"""

import subprocess

import pytest

# seqharness's own files (state, progress log, transcripts) stay out of the commits.
EXCLUDE = [":(exclude,glob).kiro/specs/SEQUENTIAL_*",
           ":(exclude,glob).kiro/specs/*/.seqharness/**"]                  # EDIT
FALLBACK_IDENTITY = ["-c", "user.name=seqharness",
                     "-c", "user.email=seqharness@localhost"]             # EDIT


def git(workdir, *args, message=None):
    return subprocess.run(["git", *args], cwd=workdir, input=message, capture_output=True,
                          text=True, timeout=120, check=True).stdout


def pytest_seqharness_attempt_finish(attempt, outcome):
    """Runs once the pass is recorded (state and tasks.md ticks are on disk)."""
    if outcome.kind != "passed":
        return
    spec, unit, workdir = attempt.spec, attempt.unit, attempt.spec.workdir
    title = " ".join(unit.title.split())
    message = (f"{spec.name} {unit.name}: {title}\n\n"                     # EDIT
               f"Seqharness-Task: {unit.name}\n")
    has_identity = subprocess.run(["git", "config", "user.email"], cwd=workdir,
                                  capture_output=True, timeout=30, check=False).returncode == 0
    try:
        git(workdir, "add", "-A", "--", ".", *EXCLUDE)
        git(workdir, *([] if has_identity else FALLBACK_IDENTITY),
            "commit", "-q", "--allow-empty", "-F", "-", message=message)
    except subprocess.CalledProcessError as exc:
        pytest.exit(f"git {exc.cmd[1]} failed after task {unit.name}: {exc.stderr.strip()}", returncode=2)
