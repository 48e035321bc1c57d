"""The pieces of --git that take untrusted text: task titles and ids in messages and ref names."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from seqharness.gitrepo import commit_message, one_line, ref_part

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

HOSTILE = "Fix \x1b[31mlogin\x1b[0m\n\nSigned-off-by: Mallory <m@evil>\r\n# not a comment\x00 $(rm -rf ~)"


def test_one_line_keeps_a_title_on_one_clean_line() -> None:
    line = one_line(HOSTILE)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x00" not in line
    assert line.startswith("Fix login Signed-off-by: Mallory") and "$(rm -rf ~)" in line
    assert len(one_line("word " * 100, 50)) == 50


def test_a_hostile_title_cannot_add_trailers() -> None:
    message = commit_message(f"demo 1: {one_line(HOSTILE)}", [("Seqharness-Task", "1"),
                                                             ("Seqharness-Attempts", "2")])
    subject, blank, *rest = message.splitlines()
    assert subject.startswith("demo 1: Fix login") and blank == ""
    assert rest == ["Seqharness-Task: 1", "Seqharness-Attempts: 2"]
    assert message.endswith("\n")


@needs_git
def test_git_reads_exactly_our_trailers() -> None:
    message = commit_message(f"demo 1: {one_line(HOSTILE)}", [("Seqharness-Task", "1"),
                                                             ("Seqharness-Backend", "cmd:a\nb")])
    parsed = subprocess.run(["git", "interpret-trailers", "--parse"], input=message,
                            capture_output=True, text=True, timeout=30, check=True).stdout
    assert parsed.splitlines() == ["Seqharness-Task: 1", "Seqharness-Backend: cmd:a b"]


@needs_git
@pytest.mark.parametrize("name", ["2.1", "6[2]", "T001", "..", "a..b", "x.lock", "-x", ".hidden",
                                  "spaces and ~^:?*", "emoji 🚀", "", "a/b", "@{1}"])
def test_ref_part_makes_valid_ref_names(name: str) -> None:
    part = ref_part(name)
    ref = f"refs/seqharness/demo/failed-{part}-1"
    assert subprocess.run(["git", "check-ref-format", ref], capture_output=True,
                          timeout=30, check=False).returncode == 0, ref
    assert "/" not in part


def test_ref_part_keeps_ordinary_ids() -> None:
    assert [ref_part(n) for n in ("2.1", "T001", "update-pom-xml")] == ["2.1", "T001", "update-pom-xml"]
