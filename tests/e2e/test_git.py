"""Git, task by task (--git): one commit per passed task, on a branch of the run's own.

Real temporary git repositories, the real ``seqharness`` command and the fake
agent of ``fixtures/fake_agent.py`` (``write=RELPATH`` writes a file), plus a
small scripted agent for attempts that fail after changing files.  Git reads
no global or system configuration here, so the repository has no identity
unless a test gives it one.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from repokit import REPO

from seqharness.testing import SpecProject

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

TEST_IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]

TASKS = """\
- [ ] 1. Create the model
  - fake-agent: write=src/model.py
- [ ] 2. Add the view
  - fake-agent: write=src/view.py
- [ ] 3. Document it
"""

STATE_IGNORES = ".kiro/specs/SEQUENTIAL_*\n.kiro/specs/*/.seqharness/\n"

# Attempt 1 leaves half-done work (a new file, a staged file, an edit of a
# tracked file; with AGENT_COMMITS=1 even a commit of its own) and fails;
# attempt 2 records what it found and writes the real thing.
FLAKY_AGENT = '''
import json, os, subprocess, sys
counter = os.environ["ATTEMPTS_FILE"]
n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
open(counter, "w").write(str(n))
with open(os.environ["SEEN_LOG"], "a") as fh:
    fh.write(json.dumps({"attempt": n, "junk": os.path.exists("junk.txt"),
                         "staged": os.path.exists("staged.txt"),
                         "readme": open("README.md").read()}) + "\\n")
if n == 1:
    open("junk.txt", "w").write("half-done work\\n")
    open("staged.txt", "w").write("staged by the agent\\n")
    open("README.md", "a").write("broken edit\\n")
    subprocess.run(["git", "add", "staged.txt"], check=True)
    if os.environ.get("AGENT_COMMITS"):
        subprocess.run(["git", "-c", "user.name=Agent", "-c", "user.email=agent@example.com",
                        "commit", "-q", "-m", "agent commit"], check=True)
    print("error: tests failed")
    sys.exit(1)
os.makedirs("src", exist_ok=True)
open("src/good.py", "w").write("good = True\\n")
print("<promise>TASK_DONE</promise>")
'''

# Writes a file, then works until it is stopped.
SLOW_AGENT = '''
import time
open("partial.txt", "w").write("work in progress\\n")
print("working", flush=True)
time.sleep(60)
'''


class Git:
    """git in the project's repository, with the project's environment."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def __call__(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(["git", *args], cwd=self.root, env=self.env, input=input,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"git {shlex.join(args)}: {proc.stderr}"
        return proc.stdout.strip()

    def ok(self, *args: str) -> bool:
        return subprocess.run(["git", *args], cwd=self.root, env=self.env, capture_output=True,
                              timeout=60).returncode == 0

    def init(self, *, commit: bool = True) -> None:
        self("init", "-q", "-b", "main")
        if commit:
            (self.root / "README.md").write_text("# Project\n")
            self.commit_all("initial commit")

    def commit_all(self, message: str) -> str:
        self("add", "-A")
        self(*TEST_IDENTITY, "commit", "-q", "-m", message)
        return self.sha("HEAD")

    def sha(self, ref: str) -> str:
        return self("rev-parse", "--verify", "-q", ref)

    def branch(self) -> str:
        return self("symbolic-ref", "--short", "HEAD")

    def commits(self, revs: str) -> list[str]:
        """Oldest first."""
        out = self("rev-list", "--reverse", revs)
        return out.splitlines() if out else []

    def body(self, sha: str) -> str:
        return self("log", "-1", "--format=%B", sha)

    def trailers(self, sha: str) -> dict[str, str]:
        out = self("log", "-1", "--format=%(trailers:only,unfold)", sha)
        return dict(line.split(": ", 1) for line in out.splitlines() if line)

    def changed(self, sha: str) -> set[str]:
        return set(self("diff-tree", "--no-commit-id", "--name-only", "-r", "--root", sha).splitlines())

    def files(self, ref: str) -> set[str]:
        return set(self("ls-tree", "-r", "--name-only", ref).splitlines())

    def show(self, ref: str, path: str) -> str:
        return self("show", f"{ref}:{path}") + "\n"

    def status(self) -> list[str]:
        return self("status", "--porcelain", "--untracked-files=all").splitlines()


@pytest.fixture
def git(project: SpecProject, tmp_path: Path) -> Git:
    """The project's git, reading no global or system configuration."""
    config = tmp_path / "gitconfig"
    config.write_text("")
    project.env.update(GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1",
                       PYTHONDONTWRITEBYTECODE="1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
                 "EMAIL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        project.env.pop(name, None)
    return Git(project.root, project.env)


def _repo_with_spec(project: SpecProject, git: Git, tasks: str = TASKS, *,
                    ignore_state: bool = False) -> str:
    """A repository on ``main`` with the spec committed; returns main's sha."""
    git.init()
    project.spec("demo", tasks)
    if ignore_state:
        (project.root / ".gitignore").write_text(STATE_IGNORES)
    return git.commit_all("add the demo spec")


def _flaky_backend(project: SpecProject, tmp_path: Path) -> str:
    agent = tmp_path / "flaky_agent.py"
    agent.write_text(FLAKY_AGENT)
    project.env["ATTEMPTS_FILE"] = str(tmp_path / "attempts")
    project.env["SEEN_LOG"] = str(tmp_path / "seen.jsonl")
    return f"cmd:{shlex.quote(sys.executable)} {shlex.quote(str(agent))} --prompt-file {{prompt_file}}"


def _seen(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "seen.jsonl").read_text().splitlines()]


def _only_state_files_untracked(git: Git) -> None:
    """The work tree holds nothing but seqharness's own (uncommitted) files."""
    for line in git.status():
        assert line.startswith("?? .kiro/specs/"), git.status()
        path = line[3:]
        assert "/.seqharness/" in path or Path(path).name.startswith("SEQUENTIAL_"), git.status()


# -- the bar ---------------------------------------------------------------------------------

def test_three_tasks_make_three_commits_on_the_spec_branch(project: SpecProject, git: Git,
                                                           tmp_path: Path) -> None:
    main = _repo_with_spec(project, git)
    report = tmp_path / "report.xml"
    res = project.run(".kiro/specs/demo", "--git", "--junitxml", str(report))
    res.assert_passed()
    assert "seqharness/demo" in res.output
    assert git.branch() == "seqharness/demo"
    assert git.sha("main") == main, "the default branch moved"
    commits = git.commits("main..seqharness/demo")
    assert len(commits) == 3
    assert git.sha("seqharness/demo^^^") == main
    titles = ["Create the model", "Add the view", "Document it"]
    for number, (sha, title) in enumerate(zip(commits, titles, strict=True), start=1):
        body = git.body(sha)
        assert body.splitlines()[:2] == [f"demo {number}: {title}", ""], body
        trailers = git.trailers(sha)
        assert trailers["Seqharness-Task"] == str(number)
        assert trailers["Seqharness-Attempts"] == "1"
        assert trailers["Seqharness-Backend"].startswith("cmd:") and "fake_agent.py" in trailers[
            "Seqharness-Backend"]
        assert "Seqharness-Verify" not in trailers
        # No identity configured anywhere: seqharness's own.
        assert git("log", "-1", "--format=%an <%ae>", sha) == "seqharness <seqharness@localhost>"
    tasks = ".kiro/specs/demo/tasks.md"
    assert git.changed(commits[0]) == {"src/model.py", tasks}
    assert git.changed(commits[1]) == {"src/view.py", tasks}
    assert git.changed(commits[2]) == {tasks}
    assert "- [x] 1. Create the model" in git.show(commits[0], tasks)
    assert "- [ ] 2. Add the view" in git.show(commits[0], tasks)
    assert "- [x] 3. Document it" in git.show(commits[2], tasks)
    # The state files are not ignored here: left out of every commit, still on disk.
    final = git.files("seqharness/demo")
    assert not [f for f in final if "SEQUENTIAL_" in f or "/.seqharness/" in f], final
    assert (project.specs_dir / "SEQUENTIAL_STATE.json").exists()
    _only_state_files_untracked(git)
    # The state and the JUnit facts name each task's commit.
    state = project.spec_state("demo")
    assert [state["tasks"][str(n)]["commit"] for n in (1, 2, 3)] == commits
    root = ET.parse(report).getroot()
    out = {case.get("name"): case.findtext("system-out") or "" for case in root.iter("testcase")}
    for number, sha in enumerate(commits, start=1):
        assert f"commit: {sha}" in out[str(number)], out


def test_without_git_nothing_is_committed(project: SpecProject, git: Git) -> None:
    main = _repo_with_spec(project, git)
    project.run(".kiro/specs/demo").assert_passed()
    assert git.branch() == "main" and git.sha("HEAD") == main
    assert not git.ok("rev-parse", "--verify", "-q", "seqharness/demo")


def test_a_failed_attempt_is_kept_on_a_ref_and_the_retry_starts_clean(project: SpecProject, git: Git,
                                                                      tmp_path: Path) -> None:
    main = _repo_with_spec(project, git, "- [ ] 1. Build the model\n")
    backend = _flaky_backend(project, tmp_path)
    res = project.run(".kiro/specs/demo", "--git", "--retries", "1", backend=backend)
    res.assert_passed()
    first, second = _seen(tmp_path)
    assert (first["junk"], first["staged"]) == (False, False)
    assert (second["junk"], second["staged"], second["readme"]) == (False, False, "# Project\n"), second
    ref = "refs/seqharness/demo/failed-1-1"
    assert ref in res.output
    # The failed attempt's work, kept whole, on top of the branch head it started from.
    assert git.sha(f"{ref}^") == main
    assert git.show(ref, "junk.txt") == "half-done work\n"
    assert git.show(ref, "staged.txt") == "staged by the agent\n"
    assert "broken edit" in git.show(ref, "README.md")
    assert "Seqharness-Task: 1" in git.body(ref)
    # The passing attempt's commit holds only its own work.
    (commit,) = git.commits("main..seqharness/demo")
    assert git.changed(commit) == {"src/good.py", ".kiro/specs/demo/tasks.md"}
    assert git.trailers(commit)["Seqharness-Attempts"] == "2"
    assert git.sha("main") == main
    assert not (project.root / "junk.txt").exists() and not (project.root / "staged.txt").exists()
    assert (project.root / "README.md").read_text() == "# Project\n"
    _only_state_files_untracked(git)


def test_an_agent_commit_in_a_failed_attempt_leaves_the_branch(project: SpecProject, git: Git,
                                                              tmp_path: Path) -> None:
    main = _repo_with_spec(project, git, "- [ ] 1. Build the model\n")
    backend = _flaky_backend(project, tmp_path)
    project.env["AGENT_COMMITS"] = "1"
    res = project.run(".kiro/specs/demo", "--git", "--retries", "1", backend=backend)
    res.assert_passed()
    ref = "refs/seqharness/demo/failed-1-1"
    assert git.body(f"{ref}^").startswith("agent commit")       # kept, under the failed ref
    assert git.sha(f"{ref}^^") == main
    (commit,) = git.commits("main..seqharness/demo")
    assert git.sha(f"{commit}^") == main
    assert "staged.txt" not in git.files(commit) and "junk.txt" not in git.files(commit)


def test_git_failed_stash_puts_a_failed_attempt_in_the_stash(project: SpecProject, git: Git,
                                                             tmp_path: Path) -> None:
    _repo_with_spec(project, git, "- [ ] 1. Build the model\n")
    backend = _flaky_backend(project, tmp_path)
    res = project.run(".kiro/specs/demo", "--git", "--git-failed", "stash", "--retries", "1",
                      backend=backend)
    res.assert_passed()
    assert _seen(tmp_path)[1]["junk"] is False
    stashes = git("stash", "list").splitlines()
    assert len(stashes) == 1 and "seqharness" in stashes[0] and "demo 1" in stashes[0], stashes
    assert git.show("stash@{0}^3", "junk.txt") == "half-done work\n"     # untracked files: ^3
    assert "broken edit" in git.show("stash@{0}", "README.md")
    assert not git("for-each-ref", "refs/seqharness/")
    (commit,) = git.commits("main..seqharness/demo")
    assert git.changed(commit) == {"src/good.py", ".kiro/specs/demo/tasks.md"}
    _only_state_files_untracked(git)


def test_git_failed_reset_discards_a_failed_attempt(project: SpecProject, git: Git,
                                                     tmp_path: Path) -> None:
    _repo_with_spec(project, git, "- [ ] 1. Build the model\n")
    backend = _flaky_backend(project, tmp_path)
    res = project.run(".kiro/specs/demo", "--git", "--git-failed", "reset", "--retries", "1",
                      backend=backend)
    res.assert_passed()
    assert _seen(tmp_path)[1]["junk"] is False
    assert not git("stash", "list") and not git("for-each-ref", "refs/seqharness/")
    (commit,) = git.commits("main..seqharness/demo")
    assert git.changed(commit) == {"src/good.py", ".kiro/specs/demo/tasks.md"}
    _only_state_files_untracked(git)


def test_a_resumed_run_continues_on_the_branch(project: SpecProject, git: Git) -> None:
    tasks = TASKS.replace("- [ ] 2. Add the view\n  - fake-agent: write=src/view.py\n",
                          "- [ ] 2. Add the view\n  - fake-agent: flaky=1\n")
    main = _repo_with_spec(project, git, tasks, ignore_state=True)
    git("config", "user.name", "Dev")
    git("config", "user.email", "dev@example.com")
    first = project.run(".kiro/specs/demo", "--git")
    first.assert_failed(1)                                  # task 2 fails once
    (one,) = git.commits("main..seqharness/demo")
    assert git.body(one).startswith("demo 1: Create the model")
    assert not git("for-each-ref", "refs/seqharness/")     # the failure changed nothing to keep
    git("checkout", "-q", "main")                           # the user looks elsewhere meanwhile
    assert "- [ ] 1." in project.tasks_md("demo")
    second = project.run(".kiro/specs/demo", "--git")
    second.assert_passed()
    assert git.branch() == "seqharness/demo" and git.sha("main") == main
    commits = git.commits("main..seqharness/demo")
    assert len(commits) == 3 and commits[0] == one
    assert [git.trailers(c)["Seqharness-Task"] for c in commits] == ["1", "2", "3"]
    assert git.trailers(commits[1])["Seqharness-Attempts"] == "2"     # one in each run
    assert git("log", "-1", "--format=%an <%ae>", commits[2]) == "Dev <dev@example.com>"
    assert [c["task"] for c in project.agent_calls()] == ["1", "2", "2", "3"]
    assert "- [x] 1." in project.tasks_md("demo") and "- [x] 3." in project.tasks_md("demo")
    assert git.status() == []                               # state files ignored: all clean


def test_verify_summary_is_a_trailer(project: SpecProject, git: Git) -> None:
    _repo_with_spec(project, git, "- [ ] 1. Create the model\n  - fake-agent: write=src/model.py\n")
    check = f"{shlex.quote(sys.executable)} -c pass"
    res = project.run(".kiro/specs/demo", "--git", "--verify", check)
    res.assert_passed()
    (commit,) = git.commits("main..seqharness/demo")
    verify = git.trailers(commit)["Seqharness-Verify"]
    assert verify.startswith(f"{sys.executable} -c pass: passed, exit 0 in "), verify


def test_git_branch_names_the_branch(project: SpecProject, git: Git) -> None:
    main = _repo_with_spec(project, git, "- [ ] 1. One\n")
    res = project.run(".kiro/specs/demo", "--git", "--git-branch", "agent/{spec}-work")
    res.assert_passed()
    assert git.branch() == "agent/demo-work"
    assert len(git.commits("main..agent/demo-work")) == 1 and git.sha("main") == main


def test_dirty_work_tree_is_refused_unless_allowed(project: SpecProject, git: Git) -> None:
    main = _repo_with_spec(project, git, "- [ ] 1. Create the model\n  - fake-agent: write=src/model.py\n")
    (project.root / "README.md").write_text("# Project\nmy unfinished edit\n")
    (project.root / "notes.txt").write_text("mine\n")
    res = project.run(".kiro/specs/demo", "--git")
    res.assert_failed(4)
    assert "uncommitted changes" in res.output and "--git-allow-dirty" in res.output
    assert "Traceback" not in res.output
    assert project.agent_calls() == [] and git.branch() == "main"
    res = project.run(".kiro/specs/demo", "--git", "--git-allow-dirty")
    res.assert_passed()
    carried, task = git.commits("main..seqharness/demo")
    assert git.changed(carried) == {"README.md", "notes.txt"}
    assert git.changed(task) == {"src/model.py", ".kiro/specs/demo/tasks.md"}
    assert git.body(task).startswith("demo 1: Create the model")
    assert git.sha("main") == main


@pytest.mark.parametrize(("setup", "args", "message"), [
    ("none", ["--git"], "not in a git repository"),
    ("empty", ["--git"], "no commit yet"),
    ("repo", ["--git", "--git-branch", "main"], "default branch"),
    ("repo", ["--git", "--git-branch", "master"], "default branch"),
    ("repo", ["--git", "--git-branch", "bad..name"], "not a valid branch name"),
    ("repo", ["--git-branch", "mine"], "--git-branch needs --git"),
    ("repo", ["--git-failed", "stash"], "--git-failed needs --git"),
], ids=["not-a-repo", "no-commit", "main", "master", "bad-name", "branch-without-git",
        "failed-without-git"])
def test_usage_errors(project: SpecProject, git: Git, setup: str, args: list[str], message: str) -> None:
    if setup == "repo":
        _repo_with_spec(project, git)
    else:
        if setup == "empty":
            git.init(commit=False)
        project.spec("demo", TASKS)
    res = project.run(".kiro/specs/demo", *args)
    res.assert_failed(4)
    lines = [line for line in res.output.splitlines() if message in line]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    assert project.agent_calls() == []
    if setup == "repo":
        assert git.branch() == "main"


def test_two_specs_in_one_git_run_are_refused(project: SpecProject, git: Git) -> None:
    _repo_with_spec(project, git)
    project.spec("other", "- [ ] 1. Other\n")
    git.commit_all("another spec")
    res = project.run(".kiro/specs/demo", ".kiro/specs/other", "--git")
    res.assert_failed(4)
    assert "one spec at a time" in res.output
    assert project.agent_calls() == [] and git.branch() == "main"


def test_a_second_git_run_on_the_same_work_tree_is_refused(project: SpecProject, git: Git) -> None:
    _repo_with_spec(project, git)
    from seqharness.lock import RunLock

    held = RunLock(project.root / ".git" / "seqharness-git.lock")
    held.acquire()  # as another --git run would hold it
    try:
        res = project.run(".kiro/specs/demo", "--git")
    finally:
        held.release()
    res.assert_failed(4)
    assert f"another seqharness --git run (pid {os.getpid()}) is using the work tree of" in res.output
    assert project.agent_calls() == [] and git.branch() == "main"


def test_an_interrupted_attempt_is_kept_aside(project: SpecProject, git: Git, tmp_path: Path) -> None:
    main = _repo_with_spec(project, git, "- [ ] 1. Slow work\n")
    agent = tmp_path / "slow_agent.py"
    agent.write_text(SLOW_AGENT)
    backend = f"cmd:{shlex.quote(sys.executable)} {shlex.quote(str(agent))} --prompt-file {{prompt_file}}"
    argv = project.argv(".kiro/specs/demo", "--git", backend=backend)
    proc = subprocess.Popen(argv, cwd=project.root, env=project.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (project.root / "partial.txt").exists():
            assert time.monotonic() < deadline, "the agent never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, out
    ref = "refs/seqharness/demo/interrupted-1-1"
    assert ref in out, out
    assert git.show(ref, "partial.txt") == "work in progress\n"
    assert not (project.root / "partial.txt").exists()
    assert git.branch() == "seqharness/demo" and not git.commits("main..seqharness/demo")
    assert git.sha("main") == main
    _only_state_files_untracked(git)


def test_a_killed_runs_leftovers_are_kept_aside_on_resume(project: SpecProject, git: Git,
                                                        tmp_path: Path) -> None:
    main = _repo_with_spec(project, git, "- [ ] 1. Slow work\n")
    agent = tmp_path / "slow_agent.py"
    agent.write_text(SLOW_AGENT)
    backend = f"cmd:{shlex.quote(sys.executable)} {shlex.quote(str(agent))} --prompt-file {{prompt_file}}"
    argv = project.argv(".kiro/specs/demo", "--git", backend=backend)
    proc = subprocess.Popen(argv, cwd=project.root, env=project.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (project.root / "partial.txt").exists():
            assert time.monotonic() < deadline, "the agent never started"
            time.sleep(0.1)
        time.sleep(0.3)                                     # the attempt is recorded as running
    finally:
        proc.kill()                                         # kill -9: nothing is cleaned up
        proc.wait()
    assert project.spec_state("demo")["running"] is not None
    res = project.run(".kiro/specs/demo", "--git")          # the fake agent: passes, writes nothing
    res.assert_passed()
    ref = "refs/seqharness/demo/interrupted-1-1"
    assert ref in res.output, res.output
    assert git.show(ref, "partial.txt") == "work in progress\n"
    (commit,) = git.commits("main..seqharness/demo")
    assert git.changed(commit) == {".kiro/specs/demo/tasks.md"}
    assert git.sha("main") == main and not (project.root / "partial.txt").exists()
    _only_state_files_untracked(git)


def test_git_is_a_plugin_that_can_be_turned_off(project: SpecProject, git: Git) -> None:
    main = _repo_with_spec(project, git, "- [ ] 1. One\n")
    project.run(".kiro/specs/demo", "-p", "no:seqharness.git").assert_passed()
    assert git.branch() == "main" and git.sha("HEAD") == main


# -- the template ----------------------------------------------------------------------------

def test_git_checkpoint_template_commits_each_passed_task(project: SpecProject, git: Git) -> None:
    git.init()
    project.spec("demo", TASKS)
    shutil.copy(REPO / "conftest_templates" / "git_checkpoint.py", project.root / "conftest.py")
    main = git.commit_all("add the spec and the conftest")
    git("checkout", "-q", "-b", "feature")
    res = project.run(".kiro/specs/demo")
    res.assert_passed()
    assert git.branch() == "feature" and git.sha("main") == main
    commits = git.commits("main..feature")
    assert [git.body(c).splitlines()[0] for c in commits] == [
        "demo 1: Create the model", "demo 2: Add the view", "demo 3: Document it"]
    assert git.changed(commits[0]) == {"src/model.py", ".kiro/specs/demo/tasks.md"}
    assert not [f for f in git.files("feature") if "SEQUENTIAL_" in f or "/.seqharness/" in f]
    assert os.path.exists(project.specs_dir / "SEQUENTIAL_STATE.json")
