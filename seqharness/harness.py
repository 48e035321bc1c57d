"""The objects one run shares between its items.

:class:`Harness` (one per pytest session) holds the settings, the backend,
the iteration budget, the tmux view and the run-wide flags (halted, budget
spent).  :class:`SpecRun` (one per collected ``tasks.md``) holds that spec's
parsed file, units, state store, lock and paths.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqharness.backends import Backend
from seqharness.faults import fault
from seqharness.lock import RunLock
from seqharness.options import Settings
from seqharness.progress import ProgressLog
from seqharness.state import StateStore
from seqharness.taskfile import TaskFile
from seqharness.units import Unit

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
    state: StateStore
    progress: ProgressLog
    lock: RunLock
    run_dir: Path                      # <spec>/.seqharness
    status: dict[str, str] = field(default_factory=dict)   # unit name -> outcome this run
    prepared: bool = False

    @property
    def name(self) -> str:
        return self.spec_dir.name

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
    settings: Settings
    backend: Backend | None
    budget: Budget
    say: Callable[[str], None]
    hook: Any = None                    # pytest's hook relay (config.hook)
    routes: list[Any] = field(default_factory=list)        # seqharness.assign.Route
    assign_map: dict[str, str] = field(default_factory=dict)
    known_backends: list[str] = field(default_factory=list)
    backend_cache: dict[str, Backend] = field(default_factory=dict)
    specs: dict[Path, SpecRun] = field(default_factory=dict)
    tmux: object | None = None          # seqharness.tmux.TmuxView when enabled
    view: object | None = None          # live view (seqharness.live) when enabled
    halted: tuple[SpecRun, Unit, str] | None = None
    budget_spent_at: str | None = None
    attempts_run: int = 0
    interrupted: bool = False
    failures: int = 0
    _said: set[str] = field(default_factory=set)

    def say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.say(message)

    def pause(self, seconds: float, on_tick: Callable[[float], None] | None = None) -> None:
        """Sleep between attempts; Ctrl-C interrupts it (KeyboardInterrupt propagates)."""
        if seconds <= 0:
            return
        end = time.monotonic() + seconds
        fault("delay")
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if on_tick is not None:
                on_tick(left)
            time.sleep(min(left, 0.25))


def stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
