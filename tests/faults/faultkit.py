"""Helpers of the fault-injection suite: real runs of the ``seqharness`` command,
and the checks every fault must pass afterwards.

Every process a test starts carries ``FAULT_MARK=<unique>`` in its
environment (inherited by the harness, its agents and their children), so
"no orphan agent process" is checked by scanning ``/proc`` for that mark -
independently of the token seqharness itself uses to find its leftovers.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from repokit import SCHEMA, fake_agent_env, fake_backend  # tests/repokit.py

from seqharness.taskscan import parse
from seqharness.testing import kill_tmux_server, seqharness_command

CHECKBOX_CHARS = b" x-"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "INTERNALERROR")


@dataclass
class Stats:
    """Figures the suite reports at the end (see conftest.pytest_terminal_summary)."""

    kill_points: set[str] = field(default_factory=set)
    reruns: int = 0
    corrupt_files: int = 0
    orphans: int = 0
    orphans_reaped: int = 0
    hostile_inputs: set[str] = field(default_factory=set)
    tracebacks: int = 0
    signals: int = 0


@dataclass
class Run:
    ret: int
    stdout: str
    stderr: str
    duration: float = 0.0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def has_traceback(self) -> bool:
        return any(m in self.output for m in TRACEBACK_MARKERS)


@dataclass
class FaultProject:
    root: Path
    env: dict[str, str]
    mark: str
    tmux_socket: str | None = None

    # ------------------------------------------------------------------ setup
    def spec(self, name: str, tasks: str | bytes) -> Path:
        folder = self.root / ".kiro" / "specs" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "requirements.md").write_text("# Requirements\n", encoding="utf-8")
        data = tasks if isinstance(tasks, bytes) else textwrap.dedent(tasks).lstrip("\n").encode("utf-8")
        (folder / "tasks.md").write_bytes(data)
        return folder

    def argv(self, *args: str, backend: str | None = "fake") -> list[str]:
        argv = [*seqharness_command(), *args]
        if backend == "fake":
            argv += ["--backend", fake_backend()]
        elif backend is not None:
            argv += ["--backend", backend]
        return argv

    def full_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        full = dict(self.env)
        if env:
            full.update(env)
        return {k: v for k, v in full.items() if v is not None}

    # ------------------------------------------------------------------ running
    def run(self, *args: str, backend: str | None = "fake", env: dict[str, str] | None = None,
            timeout: float = 120, preexec_fn: Callable[[], None] | None = None,
            cwd: Path | None = None) -> Run:
        start = time.monotonic()
        proc = subprocess.run(self.argv(*args, backend=backend), cwd=cwd or self.root,
                              env=self.full_env(env), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=timeout, preexec_fn=preexec_fn)
        return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def start(self, *args: str, backend: str | None = "fake", env: dict[str, str] | None = None,
              preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args, backend=backend), cwd=self.root, env=self.full_env(env),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", preexec_fn=preexec_fn)

    # ------------------------------------------------------------------ reading
    def agent_calls(self) -> list[dict]:
        log = Path(self.env["FAKE_AGENT_LOG"])
        if not log.exists():
            return []
        calls = []
        for line in log.read_text(errors="replace").splitlines():
            try:
                calls.append(json.loads(line))
            except ValueError:
                pass  # a line cut short by a kill
        return calls

    @property
    def state_path(self) -> Path:
        return self.root / ".kiro" / "specs" / "SEQUENTIAL_STATE.json"

    def state(self) -> dict:
        return json.loads(self.state_path.read_text(encoding="utf-8"))

    def spec_state(self, name: str) -> dict:
        return self.state()["specs"][name]

    def tasks_path(self, name: str) -> Path:
        return self.root / ".kiro" / "specs" / name / "tasks.md"

    def tmux_out(self, *args: str) -> str:
        assert self.tmux_socket
        return subprocess.run(["tmux", "-L", self.tmux_socket, *args], capture_output=True, text=True,
                              errors="replace", timeout=10).stdout


def new_project(tmp_path: Path, *, tmux: bool = False) -> FaultProject:
    root = tmp_path / "repo"
    root.mkdir(parents=True)
    env = fake_agent_env(tmp_path)
    mark = uuid.uuid4().hex
    env["FAULT_MARK"] = mark
    socket = None
    if tmux:
        socket = f"shfault-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        env["SEQHARNESS_TMUX_SOCKET"] = socket
    else:
        env["CODEAGENT_NO_TMUX"] = "1"
    return FaultProject(root=root, env=env, mark=mark, tmux_socket=socket)


def kill_tmux(project: FaultProject) -> None:
    """Kill the test's private tmux server and remove its socket file (tmux 3.3
    leaves it behind on kill-server)."""
    if project.tmux_socket:
        kill_tmux_server(project.tmux_socket, project.env)


# ---------------------------------------------------------------------- checks
def tasks_intact(original: bytes, current: bytes, allowed: bytes = CHECKBOX_CHARS) -> str | None:
    """None if *current* is *original* apart from checkbox characters, else why not."""
    if len(current) != len(original):
        return f"length changed: {len(original)} -> {len(current)} bytes"
    cells = {t.cell_start for t in parse(original).tasks if t.cell_end - t.cell_start == 1}
    for offset, (a, b) in enumerate(zip(original, current, strict=True)):
        if a == b:
            continue
        if offset not in cells:
            return f"byte {offset} changed outside a checkbox: {bytes([a])!r} -> {bytes([b])!r}"
        if b not in allowed:
            return f"checkbox at byte {offset} became {bytes([b])!r}"
    try:
        if len(parse(current).tasks) != len(parse(original).tasks):
            return "a different number of tasks parses"
    except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt file
        return f"does not parse: {exc}"
    return None


def state_problem(project: FaultProject, spec: str) -> str | None:
    """None if the state file is absent or valid, else why it is not."""
    if not project.state_path.exists():
        return None
    try:
        doc = project.state()
    except ValueError as exc:
        return f"state file is not valid JSON: {exc}"
    entry = doc.get("specs", {}).get(spec)
    if entry is None:
        return None
    if not isinstance(entry.get("completed"), list) or not isinstance(entry.get("tasks"), dict):
        return f"state entry malformed: {entry!r}"[:300]
    return None


def temp_files(project: FaultProject) -> list[Path]:
    specs = project.root / ".kiro" / "specs"
    return sorted(p for p in specs.rglob(".*.tmp") if ".seqharness" not in p.parts)


def validate_junit(path: Path) -> None:
    import xmlschema

    xmlschema.XMLSchema(str(SCHEMA)).validate(str(path))


# ---------------------------------------------------------------------- processes
def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def marked_processes(mark: str, *, include_viewers: bool = False) -> list[int]:
    """Live processes carrying FAULT_MARK=*mark* (our harness runs and their agents).

    tmux's server and its ``tail`` viewer windows inherit the mark too, but
    they are not agent processes (tail exits by itself once the harness is
    gone; the server is killed at teardown), so they are left out.
    """
    needle = f"\0FAULT_MARK={mark}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == os.getpid():
            continue
        if needle not in b"\0" + _environ(pid) + b"\0":
            continue
        if not include_viewers and _comm(pid).startswith(("tmux", "tail")):
            continue
        found.append(pid)
    return found


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def alive(pid: int) -> bool:
    """True while *pid* exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def kill_marked(mark: str) -> None:
    """Teardown safety net: SIGKILL whatever a failed test left behind (ours only).
    Kill a test's tmux server with :func:`kill_tmux` first: SIGKILL would leave its
    socket file behind."""
    for pid in marked_processes(mark, include_viewers=True):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ---------------------------------------------------------------------- privileges
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2


def drop_file_override() -> None:
    """preexec_fn: as root, give up the right to ignore file permissions.

    Dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set
    before exec means the new program runs without them, so chmod 000 and
    read-only folders stop it as they stop any user.  No-op when not root.
    """
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def permissions_enforced(tmp_path: Path) -> bool:
    """Can a run started with :func:`drop_file_override` be stopped by chmod?"""
    probe = tmp_path / "perm-probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        proc = subprocess.run([sys.executable, "-c", f"open({str(probe)!r}).read()"],
                              preexec_fn=drop_file_override, capture_output=True, timeout=30)
    except OSError:
        return False
    finally:
        probe.chmod(0o644)
    return proc.returncode != 0
