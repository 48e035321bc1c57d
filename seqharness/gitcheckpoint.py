"""Git, task by task: with ``--git`` every passed task is one commit on a branch of the run's own.

Plugin ``seqharness.git`` (off unless ``--git`` or ini ``seqharness_git``):

* ``pytest_seqharness_spec_start``: the run refuses (one line, exit 4) a
  workdir that is not in a git repository, a repository with no commit yet,
  a branch that would be the default branch, and a work tree with
  uncommitted changes (``--git-allow-dirty`` commits them first, as one
  commit of their own); then it works on ``seqharness/<spec>``
  (``--git-branch``), created from the current HEAD, or checked out again
  when it exists (a resumed run).
* ``pytest_seqharness_attempt_finish``: after the state and tasks.md are
  written, a passed attempt becomes one commit of every change in the work
  tree (``tasks.md`` ticks included), message ``<spec> <task id>: <title>``
  with ``Seqharness-*`` trailers; the state records its sha.  Any other
  outcome's changes are put aside (``--git-failed``: ``keep`` commits them
  to ``refs/seqharness/<spec>/failed-<id>-<n>`` without moving the branch,
  ``stash`` stashes them, ``reset`` drops them) and the work tree goes back
  to the branch head, so the next attempt starts clean.
* ``pytest_seqharness_spec_finish``: an attempt cut short (Ctrl-C, SIGTERM)
  is put aside as ``interrupted-<id>-<n>``.
* ``pytest_seqharness_report_facts``: ``commit: <sha>`` in the JUnit file.

seqharness's own files (``.kiro/specs/SEQUENTIAL_*``, ``<spec>/.seqharness/``)
are never committed, stashed or cleaned, ignored or not, and ``tasks.md`` is
not reset (seqharness owns its boxes).  Ignored files are left alone.
Nothing is ever pushed.  git runs from argv lists, never a shell, with
timeouts; messages go in on stdin.  ``conftest_templates/git_checkpoint.py``
is the short version to copy and change.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from seqharness import interrupts
from seqharness.gitrepo import (
    GitError,
    Repo,
    commit_message,
    default_branches,
    has_identity,
    one_line,
    open_repo,
    own_files,
    ref_part,
)
from seqharness.harness import RunPlugin
from seqharness.lock import LockedError, RunLock
from seqharness.options import option_group
from seqharness.outcome import PASSED
from seqharness.processes import end_leftovers
from seqharness.reporting import clean_text
from seqharness.state import TaskRecord
from seqharness.taskfile import TaskFileError
from seqharness.writes import RunStopped, save_state

if TYPE_CHECKING:
    from seqharness.attempt import Attempt, UnitResult
    from seqharness.harness import SpecRun
    from seqharness.outcome import Outcome
    from seqharness.units import Unit

FAILED_MODES = ("keep", "stash", "reset")
DEFAULT_BRANCH = "seqharness/{spec}"
FALLBACK_IDENTITY = ("-c", "user.name=seqharness", "-c", "user.email=seqharness@localhost")


@dataclass
class Track:
    """One spec's git run."""

    repo: Repo
    branch: str
    head: str                               # the branch head seqharness last wrote or found
    started_from: str                       # what HEAD was when the run started (a branch or a sha)
    tasks_rel: str | None                   # tasks.md relative to the top level (never reset)
    commits: int = 0


class GitCheckpoints(RunPlugin):
    """Plugin ``seqharness.git``."""

    def pytest_addoption(self, parser: pytest.Parser) -> None:
        group = option_group(parser)
        group.addoption("--git", dest="sh_git", action="store_const", const=True, default=None,
                        help="commit each passed task on a branch of its own (seqharness/<spec>), "
                             "message '<spec> <task id>: <title>' with Seqharness-* trailers; "
                             "nothing is pushed. ini: seqharness_git")
        group.addoption("--no-git", dest="sh_git", action="store_const", const=False,
                        help="no commits, whatever the ini file says")
        group.addoption("--git-branch", dest="sh_git_branch", default=None, metavar="NAME",
                        help="the branch --git commits to ({spec}: the spec's name; default "
                             "seqharness/{spec}); never the default branch. ini: seqharness_git_branch")
        group.addoption("--git-failed", dest="sh_git_failed", choices=FAILED_MODES, default=None,
                        help="a failed (or halted) attempt's changes, before the next attempt: 'keep' "
                             "commits them to refs/seqharness/<spec>/failed-<id>-<n> (default), 'stash' "
                             "stashes them, 'reset' drops them. ini: seqharness_git_failed")
        group.addoption("--git-allow-dirty", dest="sh_git_allow_dirty", action="store_true",
                        default=False,
                        help="with --git, commit uncommitted changes found at the start as a commit "
                             "of their own on the branch, instead of refusing to start")
        parser.addini("seqharness_git", "default --git", type="bool", default=False)
        parser.addini("seqharness_git_branch", "default --git-branch", default=None)
        parser.addini("seqharness_git_failed", "default --git-failed", default=None)

    _git_lock: RunLock | None = None

    def setup(self) -> None:
        self.selected: list[SpecRun] = []
        self.tracks: dict[int, Track] = {}                       # id(spec) -> its git run
        self.open: Attempt | None = None                         # an attempt that has not finished
        self.commits: dict[tuple[int, str], str] = {}            # (id(spec), unit) -> sha
        self.kept: dict[tuple[int, str], list[str]] = {}         # (id(spec), unit) -> where
        config = self.config
        option = config.getoption("sh_git", None)
        self.enabled = bool(option if option is not None else config.getini("seqharness_git"))
        branch = config.getoption("sh_git_branch", None)
        failed = config.getoption("sh_git_failed", None)
        allow_dirty = bool(config.getoption("sh_git_allow_dirty", False))
        if not self.enabled:
            for given, name in ((branch, "--git-branch"), (failed, "--git-failed"),
                                (allow_dirty or None, "--git-allow-dirty")):
                if given is not None:
                    raise pytest.UsageError(f"{name} needs --git")
        self.branch_template = branch or _ini_text(config, "seqharness_git_branch") or DEFAULT_BRANCH
        failed = failed or _ini_text(config, "seqharness_git_failed") or "keep"
        if failed not in FAILED_MODES:
            raise pytest.UsageError(f"seqharness_git_failed = {failed!r}: use one of {', '.join(FAILED_MODES)}")
        self.failed_mode = failed
        self.allow_dirty = allow_dirty

    # -- the run -----------------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from seqharness.collect import TaskItem

        for item in session.items:
            if isinstance(item, TaskItem) and item.spec_run not in self.selected:
                self.selected.append(item.spec_run)

    @pytest.hookimpl(tryfirst=True)
    def pytest_seqharness_spec_start(self, spec: SpecRun) -> None:
        """Before the state recorder reads the boxes: the branch is checked out first."""
        if not self.enabled:
            return
        if len(self.selected) > 1:
            names = ", ".join(s.name for s in self.selected)
            raise pytest.UsageError(f"--git runs one spec at a time (selected: {names}); "
                                    "run them one after another")
        try:
            self.tracks[id(spec)] = self._start(spec)
        except GitError as exc:
            self._unlock()
            raise pytest.UsageError(f"--git: {exc}") from None

    def _start(self, spec: SpecRun) -> Track:
        repo = open_repo(spec.workdir)
        if repo.sha("HEAD") is None:
            raise GitError(f"the repository {repo.top} has no commit yet; commit once first")
        branch = self.branch_template.replace("{spec}", ref_part(spec.name))
        if not repo.ok("check-ref-format", "--branch", branch):
            raise GitError(f"{branch!r} is not a valid branch name (choose one with --git-branch NAME)")
        if branch in default_branches(repo):
            raise GitError(f"{branch!r} is the default branch; seqharness commits only to a branch "
                           f"of its own (default {DEFAULT_BRANCH.replace('{spec}', spec.name)})")
        self._lock(repo)
        repo.excludes = own_files(repo, spec)
        if not has_identity(repo):
            repo.identity = FALLBACK_IDENTITY
        try:
            tasks_rel: str | None = spec.tasks_path.resolve().relative_to(repo.top.resolve()).as_posix()
        except ValueError:
            tasks_rel = None
        current = repo.symbolic_head()
        started_from = current.removeprefix("refs/heads/") if current else (repo.sha("HEAD") or "HEAD")[:12]
        exists = repo.sha(f"refs/heads/{branch}") is not None
        on_branch = current == f"refs/heads/{branch}"
        track = Track(repo, branch, head=repo.sha("HEAD") or "", started_from=started_from,
                      tasks_rel=tasks_rel)
        changes = repo.changes()
        if changes and on_branch and spec.state.running is not None:
            # A killed run's attempt left its work here: put it aside, it runs again.
            # Its agent may still be at work: end it first (the recorder would, later).
            running = spec.state.running
            token, pgid = running.get("token"), running.get("pgid")
            found, alive = end_leftovers(token if isinstance(token, str) else None,
                                         pgid if isinstance(pgid, int) else None)
            if alive:
                raise GitError(f"the agent of a killed run is still running ({alive}) and cannot be "
                               "ended; its changes cannot be put aside")
            if found:
                self.h.say(f"seqharness: git: ended the agent a killed run left ({len(found)} "
                           "process(es)) before putting its changes aside")
            unit = str(running.get("unit") or "unknown")
            record: TaskRecord = spec.state.tasks.get(unit) or TaskRecord()
            attempts = record.get("attempts")
            number = (attempts if isinstance(attempts, int) else 0) + 1
            mode = "keep" if self.failed_mode == "reset" else self.failed_mode  # never drop a guess
            where = self._put_aside(track, spec, unit, record.get("title") or unit, "interrupted",
                                    number, "the run was killed during this attempt", mode)
            if where:
                self.h.say(f"seqharness: git: a killed run left task {unit}'s changes in the work "
                           f"tree; {where}")
            # What is left is its [-] box, which the state recorder restores next.
            changes = repo.changes(*([tasks_rel] if tasks_rel else []))
        if changes and not self.allow_dirty:
            shown = ", ".join(clean_text(c) for c in changes[:3]) + (", ..." if len(changes) > 3 else "")
            raise GitError(f"the work tree has uncommitted changes ({len(changes)}: {shown}); commit or "
                           "stash them first, or pass --git-allow-dirty to commit them onto the branch "
                           "before the first task")
        if not on_branch:
            repo.out("switch", "-q", *([] if exists else ["-c"]), branch)
            self._reread_tasks(spec, branch)
        track.head = repo.sha("HEAD") or track.head
        if exists:
            self.h.say(f"seqharness: git: resuming on branch {branch} at {track.head[:12]}")
        else:
            self.h.say(f"seqharness: git: working on a new branch {branch}, from {started_from} "
                       f"at {track.head[:12]}")
        if changes:
            message = commit_message(
                f"{spec.name}: uncommitted changes from before the run",
                [("Seqharness-Start", f"carried onto {branch} by --git-allow-dirty")])
            track.head = self._commit(track, message)
            self.h.say(f"seqharness: git: committed the {len(changes)} uncommitted change(s) found at "
                       f"the start as {track.head[:12]} (--git-allow-dirty)")
        state_file = spec.specs_dir / "SEQUENTIAL_STATE.json"
        if repo.excludes and not repo.ok("check-ignore", "-q", "--no-index", str(state_file)):
            self.h.say_once("git:ignore", "seqharness: git: the state files under .kiro/specs are not "
                            "in .gitignore; --git leaves them out of its commits")
        return track

    def _reread_tasks(self, spec: SpecRun, branch: str) -> None:
        from seqharness.recovery import refresh_after_lock

        try:
            refresh_after_lock(spec)
        except TaskFileError:
            raise GitError(f"tasks.md on branch {branch} has other task lines than the one this run "
                           "read before checking it out; run seqharness again (now on that branch)") from None

    def _lock(self, repo: Repo) -> None:
        """One --git run per work tree: they would commit each other's changes."""
        lock = RunLock(repo.git_dir / "seqharness-git.lock")
        try:
            lock.acquire()
        except OSError as exc:
            raise GitError(f"cannot create {lock.path}: {exc.strerror or exc}") from None
        except LockedError as exc:
            holder = f" (pid {exc.holder})" if exc.holder else ""
            raise GitError(f"another seqharness --git run{holder} is using the work tree of {repo.top}") from None
        self._git_lock = lock

    def _unlock(self) -> None:
        if self._git_lock is not None:
            self._git_lock.release()
            self._git_lock = None

    # -- one attempt -------------------------------------------------------------------------

    def pytest_seqharness_attempt_start(self, attempt: Attempt) -> None:
        self.open = attempt

    def pytest_seqharness_attempt_finish(self, attempt: Attempt, outcome: Outcome) -> None:
        self.open = None
        spec, unit = attempt.spec, attempt.unit
        track = self.tracks.get(id(spec))
        if track is None:
            return
        number = self._attempts(spec, unit.name, attempt.number)
        try:
            with interrupts.critical():
                if outcome.kind == PASSED:
                    sha = self._commit(track, self._message(spec, unit, attempt, number))
                    self.commits[id(spec), unit.name] = sha
                    if self.config.pluginmanager.get_plugin("seqharness.state") is not None:
                        spec.state.record_commit(unit.name, sha)
                        save_state(spec)
                    return
                where = self._put_aside(track, spec, unit.name, unit.title, outcome.kind, number,
                                        outcome.reason, self.failed_mode)
        except GitError as exc:
            raise RunStopped(f"git: {exc} (task {unit.name}, the work tree is as the agent left it)") from None
        if where:
            self.kept.setdefault((id(spec), unit.name), []).append(where)
            self.h.say(f"seqharness: git: task {unit.name} attempt {number} {outcome.kind}: {where}")

    def _attempts(self, spec: SpecRun, unit_name: str, fallback: int) -> int:
        """The unit's attempts over all runs, as the state counts them (this one included)."""
        attempts = (spec.state.tasks.get(unit_name) or {}).get("attempts")
        return attempts if isinstance(attempts, int) and attempts > 0 else fallback

    def _message(self, spec: SpecRun, unit: Unit, attempt: Attempt, number: int) -> str:
        trailers = [("Seqharness-Task", unit.name), ("Seqharness-Attempts", str(number)),
                    ("Seqharness-Backend", attempt.backend.describe())]
        verify = self.config.pluginmanager.get_plugin("seqharness.verify")
        check = getattr(verify, "last", {}).get((spec.name, unit.name))
        if check is not None and getattr(check, "ok", False):
            trailers.append(("Seqharness-Verify", f"{check.command}: passed, {check.summary()}"))
        return commit_message(f"{spec.name} {unit.name}: {one_line(unit.title)}", trailers)

    def _on_branch(self, track: Track) -> None:
        head = track.repo.symbolic_head()
        if head != f"refs/heads/{track.branch}":
            where = head.removeprefix("refs/heads/") if head else "a detached HEAD"
            raise GitError(f"the work tree is on {where}, not on {track.branch} (did the agent switch "
                           "branches?); seqharness commits only to its own branch")

    def _commit(self, track: Track, message: str) -> str:
        """Everything in the work tree but seqharness's own files, as one commit on the branch."""
        repo = track.repo
        self._on_branch(track)
        repo.out("add", "-A", *repo.pathspec())
        repo.out(*repo.identity, "commit", "-q", "--no-verify", "--allow-empty", "--cleanup=verbatim",
                 "-F", "-", input=message)
        sha = repo.sha("HEAD")
        if sha is None:
            raise GitError("the commit is not on HEAD")
        track.head = sha
        track.commits += 1
        return sha

    def _put_aside(self, track: Track, spec: SpecRun, unit_name: str, title: str, kind: str,
                   number: int, reason: str, mode: str) -> str | None:
        """Put an attempt's changes aside (*mode*) and bring the work tree back to the branch
        head; where they went, or None when there was nothing to put aside."""
        repo = track.repo
        self._on_branch(track)
        base = track.head
        moved = repo.sha("HEAD") != base            # the agent committed on the branch itself
        keep_out = [track.tasks_rel] if track.tasks_rel else []   # its boxes are seqharness's
        if not moved and not repo.changes(*keep_out):
            return None
        message = commit_message(
            f"{spec.name} {unit_name}: {one_line(title)} ({kind} attempt {number})",
            [("Seqharness-Task", unit_name), ("Seqharness-Attempts", str(number)),
             ("Seqharness-Outcome", f"{kind}: {reason}")])
        where: str | None = None
        if mode == "keep":
            snapshot = self._snapshot(track, message)
            if snapshot is not None:
                ref = self._free_ref(repo, f"refs/seqharness/{ref_part(spec.name)}/"
                                           f"{kind}-{ref_part(unit_name)}-{number}")
                repo.out("update-ref", "-m", f"seqharness: {kind} attempt", ref, snapshot)
                where = f"its changes are kept in {ref} (git show --stat {ref})"
        if moved:
            repo.out("reset", "-q", "--soft", base)
        if mode == "stash":
            before = repo.out("stash", "list")
            subject = one_line(f"seqharness: {spec.name} {unit_name} {kind} attempt {number}: {title}")
            repo.out(*repo.identity, "stash", "push", "-q", "--include-untracked", "-m", subject,
                     *repo.pathspec(*keep_out))
            if repo.out("stash", "list") != before:
                where = "its changes are stashed as stash@{0} (git stash show -p --include-untracked)"
        if moved or repo.changes(*keep_out):
            repo.out("restore", "-q", f"--source={base}", "--staged", "--worktree",
                     *repo.pathspec(*keep_out))
            repo.out("clean", "-q", "-f", "-d", *repo.pathspec(*keep_out))
            if mode == "reset":
                where = "its changes are dropped (--git-failed reset)"
        return where

    def _snapshot(self, track: Track, message: str) -> str | None:
        """A commit of the work tree as it is, on top of HEAD, made in a temporary index
        (the real index and the branch do not move); None if nothing changed."""
        repo = track.repo
        index = repo.git_dir / f"seqharness-index-{os.getpid()}"
        env = dict(os.environ)
        env["GIT_INDEX_FILE"] = str(index)
        try:
            repo.out("read-tree", "HEAD", env=env)
            repo.out("add", "-A", *repo.pathspec(), env=env)
            tree = repo.out("write-tree", env=env)
        finally:
            with contextlib.suppress(OSError):
                index.unlink()
        head = repo.sha("HEAD")
        if head == track.head and tree == repo.out("rev-parse", f"{track.head}^{{tree}}"):
            return None
        return repo.out(*repo.identity, "commit-tree", tree, "-p", head or track.head, "-F", "-",
                        input=message)

    @staticmethod
    def _free_ref(repo: Repo, ref: str) -> str:
        """*ref*, or *ref*-2, -3, ... when an earlier run left one of that name."""
        candidate, n = ref, 1
        while repo.ok("show-ref", "--verify", "-q", candidate):
            n += 1
            candidate = f"{ref}-{n}"
        return candidate

    # -- the end -----------------------------------------------------------------------------

    def pytest_seqharness_spec_finish(self, spec: SpecRun, exitstatus: int) -> None:
        track = self.tracks.pop(id(spec), None)
        if track is None:
            return
        attempt, self.open = self.open, None
        try:
            if attempt is not None and attempt.spec is spec:
                number = self._attempts(spec, attempt.unit.name, attempt.number)
                with interrupts.critical():
                    where = self._put_aside(track, spec, attempt.unit.name, attempt.unit.title,
                                            "interrupted", number, "the run stopped during this attempt",
                                            self.failed_mode)
                if where:
                    self.h.say(f"seqharness: git: task {attempt.unit.name} attempt {number} was "
                               f"interrupted: {where}")
        except GitError as exc:
            self.h.say(f"seqharness: git: could not put the interrupted attempt's changes aside: {exc}")
        finally:
            self._unlock()
        since = f" (git log {track.started_from}..{track.branch})" if track.started_from != track.branch else ""
        self.h.say(f"seqharness: git: {track.commits} commit(s) on {track.branch} in this run{since}; "
                   "nothing was pushed")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._unlock()

    def pytest_seqharness_report_facts(self, spec: SpecRun, unit: Unit,
                                       result: UnitResult) -> list[tuple[str, str]] | None:
        facts: list[tuple[str, str]] = []
        sha = self.commits.get((id(spec), unit.name))
        if sha is not None:
            facts.append(("commit", sha))
        for where in self.kept.get((id(spec), unit.name), []):
            facts.append(("git", where))
        return facts or None


def _ini_text(config: pytest.Config, name: str) -> str | None:
    value = config.getini(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


__all__ = ["GitCheckpoints", "GitError", "Repo", "commit_message", "one_line", "open_repo", "ref_part"]
