"""What the hooks are told about an attempt, a unit's result and a wait.

These are the typed values passed between the runner and the plugins
(:mod:`seqharness.hookspec`): one :class:`Attempt` per agent run, filled in as
it becomes known (pid once spawned, the tmux window once opened, the raw
result once the agent ended, the outcome once decided), and a
:class:`UnitResult` per dispatch unit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from seqharness.backends import Backend, StreamReader
    from seqharness.harness import SpecRun
    from seqharness.outcome import AttemptResult, Outcome
    from seqharness.units import Unit


@dataclass(eq=False)
class Attempt:
    """One run of an agent on one unit."""

    spec: SpecRun
    unit: Unit
    number: int                     # 1 for the first attempt, 2 for the first retry, ...
    iteration: int                  # the run's attempt count, this one included
    backend: Backend
    transcript: Path                # the agent's raw output
    prompt_file: Path
    prompt: str
    token: str                      # SEQHARNESS_AGENT_TOKEN: how a later run finds its leftovers
    previous_failure: str | None = None
    original_cell: str = " "        # the head task's checkbox before the attempt
    started_at: str = ""            # ISO time the agent was spawned
    pid: int | None = None          # the agent's pid (== its process group)
    window: str | None = None       # tmux window id, when the tmux view shows it
    reader: StreamReader | None = None  # the backend's reader of this attempt's output
    result: AttemptResult | None = None
    outcome: Outcome | None = None
    _started: float = field(default_factory=time.monotonic)
    _stop_reason: str | None = None

    def request_stop(self, reason: str) -> None:
        """End the attempt now (its group gets SIGTERM, then SIGKILL); the outcome
        is decided as for any attempt the backend stopped."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    @property
    def elapsed(self) -> float:
        """Seconds since the attempt began (its duration once it ended)."""
        if self.result is not None:
            return self.result.duration
        return time.monotonic() - self._started


@dataclass
class UnitResult:
    """Every attempt of one unit and the outcome that counts."""

    outcome: Outcome
    attempts: list[Attempt] = field(default_factory=list)
    backend: Backend | None = None

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


@dataclass(frozen=True)
class Wait:
    """A sleep before an attempt."""

    kind: Literal["delay", "usage-limit"]
    until: float                    # epoch seconds
    reason: str
