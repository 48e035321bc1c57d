"""The ``seqharness`` command: a thin layer over ``pytest -p seqharness.plugin``.

``seqharness PATH... [options]`` runs pytest with the plugin on those paths,
so everything pytest offers (``-k``, ``-x``, ``--co``, ``--lf``,
``--junitxml``, ``-v``/``-q``, conftest.py, other plugins) works because it
*is* pytest.  This module only

* accepts the original script's spellings: ``--spec PATH``, ``--timeout``,
  ``--retries`` (registered by the plugin as ``--task-timeout`` and
  ``--task-retries``, because pytest-timeout and pytest-retry own the short
  names), and
* asks the plugin (``--strict-spec-paths``) to check that every path is a
  spec, so a typo gets one clear line and exit 4 instead of pytest's generic
  collection messages, and
* roots the run at the folder above ``.kiro`` so node ids read
  ``.kiro/specs/<feature>/tasks.md::2.1``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from seqharness.collect import check_spec_path
from seqharness.errors import EXIT_USAGE

__all__ = ["check_spec_path", "main", "translate_args"]

_RENAMED = {"--timeout": "--task-timeout", "--retries": "--task-retries"}


def translate_args(argv: list[str]) -> list[str]:
    """Map the original script's flags onto the plugin's option names."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name == "--spec":
            if eq:
                out.append(value)
            elif i + 1 < len(argv):
                out.append(argv[i + 1])
                i += 1
            else:
                raise SystemExit(_usage("--spec needs a path"))
        elif name in _RENAMED:
            out.append(_RENAMED[name] + (eq + value if eq else ""))
        elif arg == "--":
            out.extend(argv[i:])
            break
        else:
            out.append(arg)
        i += 1
    return out


def _usage(message: str) -> int:
    print(f"seqharness: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _kiro_root(arg: str) -> Path | None:
    """The folder above ``.kiro`` for an existing spec path, so node ids read
    ``.kiro/specs/<feature>/tasks.md::2.1`` wherever seqharness is started."""
    if arg.startswith("-"):
        return None
    path = Path(arg.split("::")[0])
    if ".kiro" not in path.parts and ".kiro" not in path.resolve().parts:
        return None
    try:
        if not path.exists():
            return None
    except OSError:
        return None
    path = path.resolve()
    for parent in [path, *path.parents]:
        if parent.name == ".kiro":
            return parent.parent
    return None


def main(argv: list[str] | None = None) -> int:
    import pytest

    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["init"]:
        from seqharness import scaffold

        return scaffold.main(given[1:])
    args = translate_args(given)
    if "-h" not in args and "--help" not in args and "--version" not in args:
        # The plugin checks every positional path (pytest has parsed them by then).
        args = ["--strict-spec-paths", *args]
        if not any(a == "--rootdir" or a.startswith("--rootdir=") for a in args):
            root = next((r for r in map(_kiro_root, args) if r is not None), None)
            if root is not None:
                args = [f"--rootdir={root}", *args]
    if "-p" not in args or "seqharness.plugin" not in args:
        args = ["-p", "seqharness.plugin", *args]
    problem = _unreadable_folder(args)
    if problem:
        return _usage(problem)
    from seqharness import interrupts

    try:
        code = int(pytest.main(args))
    except OSError as exc:  # pytest reading its configuration (before any hook of ours)
        where = f"{exc.filename}: " if exc.filename else ""
        return _usage(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        # Another Ctrl-C after pytest had handled the first and put the
        # handlers back: the run was already interrupted and recorded.
        code = int(pytest.ExitCode.INTERRUPTED)
    if interrupts.was_stopped():
        interrupts.ignore_until_exit()
    return code


def _unreadable_folder(args: list[str]) -> str | None:
    """pytest looks for its config files inside a folder given as an argument
    before any plugin hook runs; an unreadable spec folder would end in its
    traceback, so it is checked here."""
    for arg in args:
        if arg.startswith("-"):
            continue
        path = Path(arg.split("::")[0])
        try:
            if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
                return f"{path}: permission denied"
        except OSError as exc:
            return f"{path}: {exc.strerror or exc}"
    return None


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
