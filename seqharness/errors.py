"""Errors that end a run with a one-line message and a documented exit code.

Bad input must never produce a traceback: anything the user can fix (a
missing spec, a malformed ``tasks.md``, an unknown backend) is raised as
:class:`SpecError` or :class:`pytest.UsageError` and printed as a single line
naming the file and, where there is one, the line.  Exit code 4, as pytest
uses for usage errors.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1          # tasks failed, or the iteration budget was spent
EXIT_HALTED = 2          # an agent asked for a human (pytest: interrupted)
EXIT_INTERNAL = 3
EXIT_USAGE = 4
EXIT_NO_TASKS = 5        # pytest's "no tests collected" (e.g. -k matched nothing)


class SpecError(Exception):
    """A problem with the user's spec, reported as ``path:line: message``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(path, line, message)
        self.path = str(path)
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"
