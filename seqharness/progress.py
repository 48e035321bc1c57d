"""The human log: ``.kiro/specs/SEQUENTIAL_PROGRESS.md``.

One Markdown entry per attempt, appended as soon as the attempt ends (step 4
of :mod:`seqharness.record`, on ``pytest_seqharness_attempt_logreport``), so a
crash costs at most the entry being written.  The file is shared by every
spec in the repository; each entry names its spec.  Plugin
``seqharness.progress``; ``-p no:seqharness.progress`` turns it off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seqharness.harness import RunPlugin

if TYPE_CHECKING:
    from seqharness.attempt import Attempt
    from seqharness.outcome import Outcome

PROGRESS_NAME = "SEQUENTIAL_PROGRESS.md"


@dataclass
class ProgressEntry:
    spec: str
    iteration: int
    task: str
    title: str
    outcome: str        # PASSED | FAILED | HALTED | INTERRUPTED
    started_at: str
    duration: float
    exit_code: int | None
    message: str
    transcript: str
    attempt: int
    backend: str
    details: str = ""   # e.g. the failed verification's output tail


    def render(self) -> str:
        title = " ".join(self.title.split())[:200]
        message = " ".join(self.message.split())[:500]
        return (
            f"## {self.started_at} · {self.spec} · task {self.task} · {self.outcome}\n\n"
            f"- title: {title}\n"
            f"- iteration: {self.iteration} (attempt {self.attempt})\n"
            f"- backend: {self.backend}\n"
            f"- duration: {self.duration:.1f}s\n"
            f"- exit code: {self.exit_code if self.exit_code is not None else '-'}\n"
            f"- message: {message}\n"
            f"- transcript: {self.transcript}\n\n"
        ) + (self._details() if self.details.strip() else "")

    def _details(self) -> str:
        lines = self.details.rstrip().splitlines()[-20:]
        return "```\n" + "\n".join(line.replace("```", "` ` `") for line in lines) + "\n```\n\n"


class ProgressLog:
    def __init__(self, specs_dir: str | os.PathLike[str]) -> None:
        self.path = Path(specs_dir) / PROGRESS_NAME

    def append(self, entry: ProgressEntry) -> None:
        """Append one entry with a single O_APPEND write.

        No fsync: the write is in the kernel as soon as it returns, so a killed
        harness loses nothing; only a power loss can cost the last entries,
        and the state file (fsync'd) is the record the next run trusts.
        """
        new = not self.path.exists()
        text = entry.render()
        if new:
            text = "# Sequential progress\n\n" + text
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, text.encode("utf-8", "replace"))
        finally:
            os.close(fd)


class ProgressPlugin(RunPlugin):
    """Appends one entry per attempt; a log that cannot be written is said once."""

    def pytest_seqharness_attempt_logreport(self, attempt: Attempt, outcome: Outcome) -> None:
        spec, unit = attempt.spec, attempt.unit
        log = ProgressLog(spec.specs_dir)
        result = attempt.result
        try:
            log.append(ProgressEntry(
                spec=spec.name, iteration=attempt.iteration, task=unit.name, title=unit.title,
                outcome=outcome.kind.upper(), started_at=attempt.started_at, duration=attempt.elapsed,
                exit_code=result.exit_status if result is not None else None, message=outcome.reason,
                transcript=spec.rel(attempt.transcript), attempt=attempt.number,
                backend=attempt.backend.describe(), details=outcome.details or "",
            ))
        except OSError as exc:
            self.h.say_once(f"progress:{log.path}",
                          f"seqharness: cannot write the progress log {log.path}: "
                          f"{exc.strerror or exc} (the state file still records every attempt)")
