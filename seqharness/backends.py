"""Backends: how to start one agent CLI for one prompt and read its result.

A backend is data plus a little code (:class:`Backend`): the argv and
environment for a prompt, and how to read an attempt's result as an
:class:`~seqharness.outcome.Outcome`.  Backends are looked up by name in a
registry that a ``conftest.py`` or plugin can extend with
:func:`register_backend`, without touching seqharness.

The generic command backend (``--backend "cmd:COMMAND LINE"``)
----------------------------------------------------------------
``COMMAND LINE`` is the user's own configuration (not task text); it is split
with :func:`shlex.split` into an argv list and run without a shell.  Each
argv element may contain these placeholders, replaced per attempt *inside*
that one element (so a prompt can never split into extra arguments):

``{prompt_file}``  path of a file holding the prompt
``{prompt}``       the prompt text itself
``{task_id}``      the unit's node name (``2.1``)
``{workdir}``      the agent's working directory
``{spec_dir}``     the spec folder

If neither ``{prompt}`` nor ``{prompt_file}`` appears, the prompt is appended
as the last argument.  ``{{`` and ``}}`` give literal braces.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from seqharness.outcome import Outcome, interpret
from seqharness.session import AttemptResult


class BackendError(Exception):
    """Unknown or unusable backend (a usage error, exit 4)."""


@dataclass
class BackendContext:
    prompt: str
    prompt_file: str
    task_id: str
    workdir: str
    spec_dir: str


@dataclass
class Invocation:
    argv: list[str]
    env: dict[str, str] | None = None   # None: inherit the harness's environment
    stdin_text: str | None = None


class StreamReader:
    """A backend's incremental reader of one attempt's output.

    :meth:`feed` gets every chunk of bytes as it arrives (any chunking) and may
    return bytes to type into the agent's terminal, e.g. the key that answers a
    known first-run dialog.  It must keep its memory bounded whatever the agent
    prints.  Structured backends parse their CLI's event stream here (final
    message, tool activity, tokens, errors, usage limits) for
    :meth:`Backend.interpret`.
    """

    def feed(self, data: bytes) -> bytes | None:
        return None

    def close(self) -> None:
        """The attempt ended: flush any partial line."""

    @property
    def stop_requested(self) -> str | None:
        """A reason to end the attempt now (e.g. codex reconnecting forever), else None."""
        return None


class Backend:
    """Base class; subclasses override :meth:`invocation`, and structured
    backends also :meth:`reader` and :meth:`interpret`."""

    name = "backend"

    def program(self) -> str:
        """The executable this backend starts, checked before any task runs."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`BackendError` if the program cannot be found."""
        prog = self.program()
        if os.sep in prog:
            if not (os.path.isfile(prog) and os.access(prog, os.X_OK)):
                raise BackendError(f"backend {self.name!r}: program {prog!r} not found or not executable")
        elif shutil.which(prog) is None:
            raise BackendError(f"backend {self.name!r}: program {prog!r} not found on PATH")

    def invocation(self, ctx: BackendContext) -> Invocation:
        raise NotImplementedError

    def reader(self, ctx: BackendContext) -> StreamReader | None:
        """A fresh reader for one attempt, or None to rely on plain-text signals."""
        return None

    def interpret(self, result: AttemptResult, reader: StreamReader | None = None, *,
                  trust_exit_code: bool = False) -> Outcome:
        """pass / fail / halt / limited for one attempt (default: plain-text signals)."""
        return interpret(result, trust_exit_code=trust_exit_code)

    def describe(self) -> str:
        return self.name


_PLACEHOLDERS = ("prompt_file", "prompt", "task_id", "workdir", "spec_dir")


def _expand(element: str, values: dict[str, str]) -> str:
    out: list[str] = []
    i = 0
    n = len(element)
    while i < n:
        ch = element[i]
        if ch == "{" and element.startswith("{{", i):
            out.append("{")
            i += 2
            continue
        if ch == "}" and element.startswith("}}", i):
            out.append("}")
            i += 2
            continue
        if ch == "{":
            end = element.find("}", i)
            key = element[i + 1:end] if end != -1 else ""
            if key in values:
                out.append(values[key])
                i = end + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


class CommandBackend(Backend):
    """``cmd:COMMAND LINE``: any program, prompt passed by placeholder or last argument."""

    def __init__(self, command_line: str) -> None:
        try:
            self.template = shlex.split(command_line)
        except ValueError as exc:
            raise BackendError(f"backend 'cmd:{command_line}': cannot split the command line: {exc}") from None
        if not self.template:
            raise BackendError("backend 'cmd:' needs a command, e.g. --backend \"cmd:my-agent --prompt-file {prompt_file}\"")
        self.command_line = command_line
        self.name = f"cmd:{command_line}"
        joined = " ".join(self.template)
        self._prompt_given = "{prompt}" in joined or "{prompt_file}" in joined

    def program(self) -> str:
        return self.template[0]

    def invocation(self, ctx: BackendContext) -> Invocation:
        values = {
            "prompt_file": ctx.prompt_file,
            "prompt": ctx.prompt,
            "task_id": ctx.task_id,
            "workdir": ctx.workdir,
            "spec_dir": ctx.spec_dir,
        }
        argv = [_expand(part, values) for part in self.template]
        if not self._prompt_given:
            argv.append(ctx.prompt)
        return Invocation(argv=argv)


BackendFactory = Callable[[str], Backend]
_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``--backend NAME`` (or ``NAME:ARGS``) build a backend with *factory*.

    *factory* receives the text after ``NAME:`` (empty when none).  A
    ``conftest.py`` may call this to add a CLI that seqharness does not ship.
    """
    _REGISTRY[name] = factory


def registered_backends() -> list[str]:
    return sorted(_REGISTRY)


def resolve_backend(spec: str) -> Backend:
    """Build the backend named by a ``--backend`` value."""
    name, sep, rest = spec.partition(":")
    name = name.strip()
    if name in _REGISTRY:
        return _REGISTRY[name](rest if sep else "")
    known = ", ".join(["cmd:COMMAND", *registered_backends()])
    raise BackendError(f"unknown backend {spec!r} (known: {known})")


register_backend("cmd", CommandBackend)

# The built-in CLI profiles (claude, codex, opencode, gemini, aider, kiro-cli),
# registered lazily: a profile module is imported only when it is used.
from seqharness.profiles import register_builtin_profiles

register_builtin_profiles()
