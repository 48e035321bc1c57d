"""Pure text helpers for :mod:`seqharness.tmux`, kept apart so they can be read and
tested without a tmux server: reducing untrusted task text to safe session and window
names, parsing ``list-windows`` output, and splitting and escaping the argv lists sent
to tmux.  Nothing here runs a process.  Why names are sanitised and windows are
targeted by id: ``docs/tmux.md``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "DEFAULT_SESSION_NAME",
    "DEFAULT_WINDOW_NAME",
    "LIST_WINDOWS_FORMAT",
    "MAX_NAME",
    "PLACEHOLDER_ROLE",
    "ROLE_OPTION",
    "SESSION_ID",
    "WINDOW_ID",
    "escape_trailing_semicolon",
    "reports_gone",
    "sanitize_session_name",
    "sanitize_window_name",
    "split_commands",
    "task_windows",
]

#: Longest name we hand to tmux (session and window names).
MAX_NAME = 64

DEFAULT_SESSION_NAME = "seqharness"
DEFAULT_WINDOW_NAME = "task"

#: Window user option marking the placeholder window, so a view re-attached to an
#: existing session can tell it apart from task windows.
ROLE_OPTION = "@seqharness_role"
PLACEHOLDER_ROLE = "placeholder"

#: ``list-windows -F`` format whose output :func:`task_windows` parses.
LIST_WINDOWS_FORMAT = f"#{{window_id}} #{{{ROLE_OPTION}}}"

#: A window id (``@7``) and a session id (``$3``) as tmux prints them.
WINDOW_ID = re.compile(r"@[0-9]+", re.ASCII)
SESSION_ID = re.compile(r"\$[0-9]+", re.ASCII)

# tmux error texts meaning "the thing is already gone" (tmux 3.x wording).
_GONE_MARKERS = ("can't find", "no such", "no server running", "error connecting", "no current target",
                 "lost server", "server exited unexpectedly")  # the last two: server shutting down

_SESSION_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+", re.ASCII)
_WINDOW_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+", re.ASCII)


def _sanitize(text: str, unsafe: re.Pattern[str], fallback: str) -> str:
    name = unsafe.sub("-", str(text)).strip("-")
    name = name[:MAX_NAME].rstrip("-")
    return name or fallback


def sanitize_session_name(text: str) -> str:
    """Return a tmux-safe session name derived from ``text``.

    Keeps ``[A-Za-z0-9_-]``; every run of other characters (``.``, ``:``,
    ``#``, ``$``, whitespace, control characters and ESC, non-ASCII, ...) becomes a
    single ``-``.  Leading/trailing ``-`` are dropped, the result is at most 64
    characters, and it is never empty (``"seqharness"``).
    """
    return _sanitize(text, _SESSION_UNSAFE, DEFAULT_SESSION_NAME)


def sanitize_window_name(text: str) -> str:
    """Return a tmux-safe window name derived from ``text``.

    Same rules as :func:`sanitize_session_name` except that ``.`` is kept, so
    ``task-1.1`` stays readable (harmless because windows are only ever
    targeted by id).  Never empty (``"task"``).
    """
    return _sanitize(text, _WINDOW_UNSAFE, DEFAULT_WINDOW_NAME)


def task_windows(listing: str) -> list[str]:
    """Task window ids, oldest first, from ``list-windows -F LIST_WINDOWS_FORMAT``
    output (the placeholder window is not a task window)."""
    ids = []
    for line in listing.splitlines():
        wid, _, role = line.partition(" ")
        if WINDOW_ID.fullmatch(wid) and role.strip() != PLACEHOLDER_ROLE:
            ids.append(wid)
    return sorted(ids, key=lambda w: int(w[1:]))


def split_commands(args: Sequence[str]) -> list[list[str]]:
    """``args`` cut at each lone ``";"`` argument into single commands."""
    commands: list[list[str]] = [[]]
    for arg in args:
        if arg == ";":
            commands.append([])
        else:
            commands[-1].append(arg)
    return [cmd for cmd in commands if cmd]


def escape_trailing_semicolon(arg: str) -> str:
    """Keep an argument ending in ``;`` whole on a tmux command line given as argv.

    tmux treats *any* argument ending in ``;`` as a command separator (``x;``
    is ``x`` then a new command) and turns a trailing ``\\;`` into ``;``; so
    ``x;`` is sent as ``x\\;`` and ``x\\;`` as ``x\\\\;``.  A lone ``";"`` stays
    the separator.
    """
    if arg.endswith(";") and arg != ";":
        return arg[:-1] + "\\;"
    return arg


def reports_gone(text: str) -> bool:
    """True when tmux's error ``text`` says the target (or the whole server) does not exist."""
    text = text.lower()
    return any(marker in text for marker in _GONE_MARKERS)
