"""The objects one run shares between its items and plugins.

:class:`Harness` (one per pytest session) holds what is run-wide: settings,
the backends, the iteration budget, the hook relay and the flags every unit
consults (halted, budget spent).  :class:`SpecRun` (one per collected
``tasks.md``) holds that spec's parsed file, units, state, lock and paths.
Views (tmux, live, progress, JUnit) are plugins with their own state, not
fields here.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from seqharness.backends import Backend, BackendRegistry
from seqharness.faults import fault
from seqharness.lock import RunLock
from seqharness.options import Settings
from seqharness.state import SpecState, StateStore
from seqharness.taskfile import TaskFile
from seqharness.units import Unit

if TYPE_CHECKING:
    from pluggy import HookRelay

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(text: str, limit: int = 60) -> str:
    """A file-name fragment from untrusted text: no separators, no dot-files."""
    name = _SAFE.sub("_", text).strip("._")[:limit]
    return name or "task"


def find_workdir(spec_dir: Path, fallback: Path) -> Path:
    """The repo root above ``.kiro/`` (the original's default), else *fallback*."""
    for parent in spec_dir.parents:
        if parent.name == ".kiro":
            return parent.parent
    return fallback


@dataclass(eq=False)
class SpecRun:
    """Everything about one spec folder during a run."""

    spec_dir: Path
    tasks_path: Path
    taskfile: TaskFile
    units: list[Unit]
    workdir: Path
    settings: Settings                 # the run's, with the spec folder's seqharness.toml over them
    store: StateStore
    lock: RunLock
    run_dir: Path                      # <spec>/.seqharness
    status: dict[str, str] = field(default_factory=dict)   # unit name -> outcome this run
    prepared: bool = False
    backend: Backend | None = None     # its own default backend (seqharness.toml), if any

    @property
    def name(self) -> str:
        return self.spec_dir.name

    @property
    def state(self) -> SpecState:
        return self.store.state

    @property
    def specs_dir(self) -> Path:
        """``.kiro/specs``: where the shared state file and progress log live."""
        return self.spec_dir.parent

    @property
    def transcripts_dir(self) -> Path:
        return self.run_dir / "transcripts"

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.workdir))
        except ValueError:
            return str(path)


class Budget:
    """``--max-iterations``: every attempt spends one iteration."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit


@dataclass(eq=False)
class Harness:
    """What one run shares: settings, backends, budget, hooks, run-wide flags."""

    settings: Settings
    budget: Budget
    say: Callable[[str], None]
    hook: HookRelay
    backends: BackendRegistry = field(default_factory=BackendRegistry)
    backend: Backend | None = None      # --backend, resolved when the run starts
    specs: dict[Path, SpecRun] = field(default_factory=dict)
    halted: tuple[SpecRun, Unit, str] | None = None
    budget_spent_at: str | None = None
    attempts_run: int = 0
    failures: int = 0
    _said: set[str] = field(default_factory=set)

    def say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.say(message)

    def pause(self, seconds: float) -> None:
        """Sleep between attempts; Ctrl-C interrupts it (KeyboardInterrupt propagates)."""
        if seconds <= 0:
            return
        end = time.monotonic() + seconds
        fault("delay")
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.25))


def stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%dT%H%M%S")


HARNESS = pytest.StashKey[Harness]()


class RunPlugin:
    """Base of the built-in plugins that need the run's :class:`Harness`.

    They are registered as soon as ``seqharness.plugin`` is, before any
    conftest.py (as pytest registers its own plugins first), so a conftest's
    ``tryfirst`` implementation comes before theirs; they get the harness
    when pytest configures them, after ``seqharness.plugin`` made it.
    """

    h: Harness
    config: pytest.Config

    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config
        self.h = config.stash[HARNESS]
        self.setup()

    def setup(self) -> None:
        """Read what the plugin needs from the settings or the ini file."""
