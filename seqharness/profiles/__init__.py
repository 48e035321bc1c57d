"""The built-in backend profiles (claude, codex, opencode, gemini, aider,
kiro-cli), one module per agent CLI, listed by name with factories that import
a profile's module only when that backend is built: the backend registry can
list them without an import cycle, and a ``cmd:`` run imports none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqharness.backends import Backend
    from seqharness.profiles.base import CliProfile

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

    def load(self) -> type[CliProfile]:
        cls: type[CliProfile] = getattr(importlib.import_module(self.module), self.attr)
        return cls

    def __call__(self, rest: str) -> Backend:
        return self.load()(rest)

    def __repr__(self) -> str:
        return f"LazyFactory({self.module}.{self.attr})"


def builtin_factories() -> dict[str, Callable[[str], Backend]]:
    """Name -> factory (taking the text after ``NAME:``) of every built-in profile."""
    return {name: LazyFactory(module, attr) for name, (module, attr) in _BUILTINS.items()}


def builtin_classes() -> dict[str, type[CliProfile]]:
    """Name -> profile class (imports every profile module)."""
    return {name: LazyFactory(module, attr).load() for name, (module, attr) in _BUILTINS.items()}


__all__ = ["BUILTIN_NAMES", "LazyFactory", "builtin_classes", "builtin_factories"]
