"""Built-in backend profiles: claude, codex, opencode, gemini, aider, kiro-cli.

Each profile is a :class:`~seqharness.backends.Backend` that knows one agent
CLI: its headless argv and environment, how to read its output stream as it
arrives (final message, tool calls, tokens and cost, errors, denials, usage
limits, first-run dialogs) and how to turn an attempt into pass / fail / halt /
limited.  :func:`register_builtin_profiles` puts them in the backend registry
under their names, so ``--backend claude`` or ``--backend "claude:--model
sonnet"`` (text after the colon: extra arguments) select them.

The registered factories are lazy: a profile's module is imported only when
that backend is built.  So ``seqharness.backends`` can register them at the
end of its own import whichever module is imported first (the profile
modules import ``seqharness.backends`` themselves), and a run that uses
``cmd:`` imports none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqharness.backends import Backend

_BUILTINS: dict[str, tuple[str, str]] = {
    "claude": ("seqharness.profiles.claude", "ClaudeBackend"),
    "codex": ("seqharness.profiles.codex", "CodexBackend"),
    "opencode": ("seqharness.profiles.opencode", "OpencodeBackend"),
    "gemini": ("seqharness.profiles.gemini", "GeminiBackend"),
    "aider": ("seqharness.profiles.aider", "AiderBackend"),
    "kiro-cli": ("seqharness.profiles.kirocli", "KiroCliBackend"),
}
BUILTIN_NAMES = tuple(_BUILTINS)


class LazyFactory:
    """A backend factory that imports its profile class on first use."""

    def __init__(self, module: str, attr: str) -> None:
        self.module = module
        self.attr = attr

    def load(self) -> type[Backend]:
        return getattr(importlib.import_module(self.module), self.attr)

    def __call__(self, rest: str) -> Backend:
        return self.load()(rest)

    def __repr__(self) -> str:
        return f"LazyFactory({self.module}.{self.attr})"


def builtin_factories() -> dict[str, Callable[[str], Backend]]:
    """Name -> factory (taking the text after ``NAME:``) of every built-in profile."""
    return {name: LazyFactory(module, attr) for name, (module, attr) in _BUILTINS.items()}


def builtin_classes() -> dict[str, type[Backend]]:
    """Name -> profile class (imports every profile module)."""
    return {name: LazyFactory(module, attr).load() for name, (module, attr) in _BUILTINS.items()}


def register_builtin_profiles() -> None:
    """Register every built-in profile (idempotent; a name registered later,
    e.g. from a conftest.py, replaces the built-in one)."""
    from seqharness.backends import register_backend, registered_backends

    present = set(registered_backends())
    for name, factory in builtin_factories().items():
        if name not in present:
            register_backend(name, factory)


__all__ = ["BUILTIN_NAMES", "LazyFactory", "builtin_classes", "builtin_factories", "register_builtin_profiles"]
