"""Git plumbing for ``--git``: a repository, its commands, and commit messages.

The checkpoint plugin (:mod:`seqharness.gitcheckpoint`) decides when to
commit or set work aside; this module knows how to ask git, always with an
argv list and a timeout (task titles are untrusted and never reach a shell),
and how to build a message whose trailers a hostile title cannot forge.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from seqharness.reporting import clean_text

if TYPE_CHECKING:
    from seqharness.harness import SpecRun

GIT_TIMEOUT = 300.0                 # seconds for one git command (git add of a big tree)
ALWAYS_DEFAULT = ("main", "master")
_REF_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class GitError(Exception):
    """A git command failed (its message is one line)."""


def one_line(text: str, limit: int = 200) -> str:
    """Untrusted text (a task title, a command) as one clean line."""
    line = " ".join(clean_text(text).split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def ref_part(text: str) -> str:
    """A component of a ref name from untrusted text (``git check-ref-format`` rules)."""
    part = _REF_UNSAFE.sub("_", text)
    part = re.sub(r"\.{2,}", ".", part).strip("._-")
    if part.endswith(".lock"):
        part = part[:-5] + "_lock"
    return part[:80] or "task"


def commit_message(subject: str, trailers: list[tuple[str, str]], body: str = "") -> str:
    """``subject``, an optional body, and trailers as the last paragraph."""
    parts = [one_line(subject, 300)]
    if body.strip():
        parts.append(body.strip())
    parts.append("\n".join(f"{key}: {one_line(value, 500) or '-'}" for key, value in trailers))
    return "\n\n".join(parts) + "\n"


@dataclass
class Repo:
    """The git repository around a workdir; every command runs at its top level."""

    top: Path
    git_dir: Path
    identity: tuple[str, ...] = ()          # -c options when the repository has no identity
    excludes: list[str] = field(default_factory=list)   # seqharness's own files

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            check: bool = True, timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return git(self.top, *args, input=input, env=env, check=check, timeout=timeout)

    def out(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        return self.run(*args, input=input, env=env).stdout.strip()

    def ok(self, *args: str) -> bool:
        return self.run(*args, check=False).returncode == 0

    def sha(self, rev: str) -> str | None:
        proc = self.run("rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def symbolic_head(self) -> str | None:
        proc = self.run("symbolic-ref", "-q", "HEAD", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def pathspec(self, *also_excluded: str) -> list[str]:
        """``-- . :(exclude)...``: the whole work tree but seqharness's files (and *also_excluded*)."""
        extra = [f":(exclude,top,literal){path}" for path in also_excluded]
        return ["--", ".", *self.excludes, *extra]

    def changes(self, *also_excluded: str) -> list[str]:
        """Paths with uncommitted changes (untracked included, ignored not, seqharness's own not)."""
        out = self.run("status", "--porcelain=v1", "-z", "--untracked-files=normal",
                       *self.pathspec(*also_excluded)).stdout
        entries: list[str] = []
        fields = out.split("\0")
        i = 0
        while i < len(fields):
            entry = fields[i]
            if len(entry) > 3:
                entries.append(entry[3:])
                if entry[0] in "RC":    # a rename: its source follows
                    i += 1
            i += 1
        return entries


def git(cwd: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None,
        check: bool = True, timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS`` in *cwd* (argv, never a shell; its own session, so a Ctrl-C
    held off by seqharness does not cut it in half)."""
    full = dict(os.environ if env is None else env)
    full.setdefault("GIT_TERMINAL_PROMPT", "0")
    full["GIT_EDITOR"] = ":"
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=full, input=input, capture_output=True,
                              encoding="utf-8", errors="replace", timeout=timeout, check=False,
                              start_new_session=True,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise GitError("git is not installed (not found on PATH)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror or exc}") from None
    if check and proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {_last_line(proc.stderr or proc.stdout)}")
    return proc


def _last_line(text: str) -> str:
    """git's own reason: its first error line, else its last line."""
    lines = [line.strip() for line in clean_text(text).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "fatal:"))]
    useful = [line for line in lines if not line.startswith("hint:")]
    return " ".join((errors[:1] or useful[-1:] or lines[-1:] or ["(no message)"])[0].split())[:300]


def open_repo(workdir: Path) -> Repo:
    """The repository of *workdir*; :class:`GitError` if there is none."""
    proc = git(workdir, "rev-parse", "--show-toplevel", "--absolute-git-dir", check=False,
               timeout=60)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) < 2 or not lines[0]:
        raise GitError(f"{workdir} is not in a git repository (git init, then commit once)")
    return Repo(top=Path(lines[0]), git_dir=Path(lines[1]))


def default_branches(repo: Repo) -> set[str]:
    """Names a run never commits to: the remote's HEAD branch, ``init.defaultBranch``, main, master."""
    names = set(ALWAYS_DEFAULT)
    for remote in repo.run("remote", check=False).stdout.split():
        head = repo.run("symbolic-ref", "-q", "--short", f"refs/remotes/{remote}/HEAD", check=False)
        if head.returncode == 0 and "/" in head.stdout:
            names.add(head.stdout.strip().split("/", 1)[1])
    configured = repo.run("config", "init.defaultBranch", check=False)
    if configured.returncode == 0 and configured.stdout.strip():
        names.add(configured.stdout.strip())
    return names


def has_identity(repo: Repo) -> bool:
    """Does git know who commits (``user.email``, or the variables that replace it)?"""
    if any(os.environ.get(name) for name in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL", "EMAIL")):
        return True
    proc = repo.run("config", "user.email", check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def own_files(repo: Repo, spec: SpecRun) -> list[str]:
    """Exclude pathspecs for seqharness's files under ``.kiro/specs`` (state, progress, locks,
    transcripts), relative to the top level; none when ``.kiro/specs`` is outside the repository."""
    try:
        rel = spec.specs_dir.resolve().relative_to(repo.top.resolve()).as_posix()
    except ValueError:
        return []
    prefix = "" if rel == "." else re.sub(r"([*?\[\\])", r"\\\1", rel) + "/"
    return [f":(exclude,top,glob){prefix}{pattern}"
            for pattern in ("SEQUENTIAL_*", ".SEQUENTIAL_*", "*/.seqharness/**")]
