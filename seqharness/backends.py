"""Backends: how to start one agent CLI for one prompt and read its result.

A backend is data plus a little code (:class:`Backend`): the argv and
environment for a prompt, and how to read an attempt's result as an
:class:`~seqharness.outcome.Outcome`.  Backends are looked up by name in the
run's :class:`BackendRegistry`, which plugins fill through the
``pytest_seqharness_add_backends`` hook: the built-in profiles and ``cmd:``
here, a ``conftest.py``'s own CLI the same way.

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
from typing import TYPE_CHECKING

import pytest

from seqharness.outcome import FAILED, Outcome, interpret

if TYPE_CHECKING:
    from seqharness.attempt import Attempt
    from seqharness.outcome import AttemptResult


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


class BackendRegistry:
    """The backends a run knows, by name: filled by ``pytest_seqharness_add_backends``.

    One registry per run (no module-level state), so two runs in one process
    (a test kit, pytester) never see each other's conftest backends.  Built
    backends are cached per ``--backend`` value: a profile reads its
    environment once per run, and routing the same value to many units
    builds it once.
    """

    def __init__(self) -> None:
        self._factories: dict[str, BackendFactory] = {}
        self._built: dict[str, Backend] = {}

    def add(self, name: str, factory: BackendFactory) -> None:
        """Make ``--backend NAME`` (or ``NAME:EXTRA``) build a backend with
        ``factory(EXTRA)``; a later ``add`` of the same name replaces it."""
        self._factories[name] = factory
        self._built.clear()

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def resolve(self, spec: str) -> Backend:
        """The backend a ``--backend`` value names; :class:`BackendError` if the
        name is unknown or the value unusable.  Call its ``check()`` before use."""
        if spec in self._built:
            return self._built[spec]
        name, sep, rest = spec.partition(":")
        factory = self._factories.get(name.strip())
        if factory is None:
            known = ", ".join(["cmd:COMMAND", *(n for n in self.names() if n != "cmd")])
            raise BackendError(f"unknown backend {spec!r} (known: {known})")
        backend = factory(rest if sep else "")
        self._built[spec] = backend
        return backend


def add_builtin_backends(backends: BackendRegistry) -> None:
    """``cmd:`` and the built-in CLI profiles (each imported only when used)."""
    from seqharness.profiles import builtin_factories

    backends.add("cmd", CommandBackend)
    for name, factory in builtin_factories().items():
        backends.add(name, factory)


def builtin_registry() -> BackendRegistry:
    """A registry holding only the built-in backends (outside a run: tools, tests)."""
    registry = BackendRegistry()
    add_builtin_backends(registry)
    return registry


@pytest.hookimpl(tryfirst=True)
def pytest_seqharness_add_backends(backends: BackendRegistry) -> None:
    add_builtin_backends(backends)


class BackendVerdict:
    """Plugin ``seqharness.outcome``: the backend's own reading of an attempt
    (done tag, exit code, its CLI's error events), the ``trylast`` answer of
    ``pytest_seqharness_decide_outcome``."""

    trust_exit_code = False

    def pytest_configure(self, config: pytest.Config) -> None:
        self.trust_exit_code = bool(config.option.sh_trust_exit)

    @pytest.hookimpl(trylast=True)
    def pytest_seqharness_decide_outcome(self, attempt: Attempt, result: AttemptResult) -> Outcome:
        if result.reason == "stopped" and attempt.stop_reason is not None:
            return Outcome(FAILED, f"stopped: {attempt.stop_reason}")
        return attempt.backend.interpret(result, attempt.reader, trust_exit_code=self.trust_exit_code)
