"""Configuration files: ``[tool.seqharness]`` in pyproject.toml, ``seqharness.toml`` per spec.

A team keeps its run settings (backend, verify command, retries, timeouts)
in the repository rather than in every command line, and one spec may need
another backend or check than the rest.  Keys are the long option names
(``max-iterations`` or ``max_iterations``; ``retries`` and ``timeout`` also
as ``task-retries``, ``task-timeout``), values typed in TOML.  Precedence:
command line, then the spec folder's ``seqharness.toml``, then
``[tool.seqharness]``, then the pytest ini keys, then the defaults.  A bad
file is one line naming the file (and the line for a syntax error), exit 4.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

SPEC_CONFIG = "seqharness.toml"

STR, INT, FLOAT, BOOL = "a string", "an integer", "a number", "true or false"
_STR, _INT, _FLOAT, _BOOL = STR, INT, FLOAT, BOOL

#: Settings field -> kind, for every option a project file may set.
PROJECT_KEYS: dict[str, str] = {
    "backend": _STR, "delay": _FLOAT, "max_iterations": _INT, "retries": _INT, "timeout": _FLOAT,
    "idle_timeout": _FLOAT, "question_idle": _FLOAT, "granularity": _STR, "include_optional": _BOOL,
    "trust_exit_code": _BOOL, "update_tasks": _BOOL, "leave_failed": _BOOL, "workdir": _STR,
    "tmux": _BOOL, "tmux_session": _STR, "tmux_socket": _STR, "tmux_keep": _INT, "wait_lock": _FLOAT,
    "live": _STR, "limit_wait_max": _FLOAT, "limit_wait_default": _FLOAT, "assign_backend": _STR,
    "assign_opencode_agent": _STR, "assign_map": _STR, "assign_timeout": _FLOAT, "verify": _STR,
    "verify_timeout": _FLOAT,
}

#: What one spec may set for itself (run-wide settings such as tmux stay project-wide).
SPEC_KEYS: dict[str, str] = {key: PROJECT_KEYS[key] for key in (
    "backend", "delay", "retries", "timeout", "idle_timeout", "question_idle", "include_optional",
    "trust_exit_code", "leave_failed", "limit_wait_max", "limit_wait_default", "verify",
    "verify_timeout")}

_ALIASES = {"task_retries": "retries", "task_timeout": "timeout"}


def read_settings(path: Path, *, table: tuple[str, ...] | None,
                  allowed: dict[str, str]) -> dict[str, Any] | None:
    """Settings fields from *path* (its *table*, or the whole file); None if
    there is no such file or table.  pytest.UsageError on a bad file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise pytest.UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        doc: Any = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise pytest.UsageError(f"{path}: not valid TOML: {exc}") from None
    where = f"[{'.'.join(table)}]" if table else SPEC_CONFIG
    for name in table or ():
        doc = doc.get(name) if isinstance(doc, dict) else None
        if doc is None:
            return None
    if not isinstance(doc, dict):
        raise pytest.UsageError(f"{path}: {where} must be a table")
    values: dict[str, Any] = {}
    for key, value in doc.items():
        name = _ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
        kind = allowed.get(name)
        if kind is None:
            known = ", ".join(sorted(k.replace("_", "-") for k in allowed))
            raise pytest.UsageError(f"{path}: unknown key {key!r} in {where} (known: {known})")
        values[name] = _checked(path, key, value, kind)
    return values


def _checked(path: Path, key: str, value: object, kind: str) -> object:
    ok = {
        _STR: isinstance(value, str),
        _BOOL: isinstance(value, bool),
        _INT: isinstance(value, int) and not isinstance(value, bool),
        _FLOAT: isinstance(value, (int, float)) and not isinstance(value, bool),
    }[kind]
    if not ok:
        raise pytest.UsageError(f"{path}: {key} must be {kind}, got {value!r}")
    return float(value) if kind == _FLOAT and isinstance(value, int) else value
