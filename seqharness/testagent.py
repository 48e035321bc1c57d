"""A tiny scripted coding agent, the default backend of :mod:`seqharness.testing`.

Tests of a seqharness set-up (a ``conftest.py`` hook, a routing rule) need an
agent that is fast, free and does what the test says, so this one only reads
its prompt and answers as scripted::

    python -m seqharness.testagent --prompt-file FILE [--outcome TASK=OUTCOME]...
                                   [--default OUTCOME] [--sleep SECONDS] [PROMPT...]

OUTCOME is ``done`` (prints ``<promise>TASK_DONE</promise>``, exit 0),
``halt[:QUESTION]`` (prints the question, then ``<promise>HALT</promise>``),
``fail[:CODE]`` (exit CODE, default 1) or ``silent`` (exit 0 without a tag).
The same options may come from ``$SEQHARNESS_TESTAGENT`` (shell words; the
command line wins).  Per task, the first of: ``--outcome`` for its id, a
``testagent: OUTCOME`` line in the prompt (a detail line of the task), the
default (``done``).  The task id is the prompt's ``Task id: X`` line.

With ``$SEQHARNESS_TESTAGENT_LOG`` set, each call first appends one JSON line
``{"task", "outcome", "argv", "cwd", "pid", "time"}`` to that file.
Standard library only; stdin is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time

from seqharness.signals import DONE_TAG, HALT_TAG

DEFAULT_QUESTION = "Which database should I use, PostgreSQL or SQLite?"
SCRIPT_ENV = "SEQHARNESS_TESTAGENT"
LOG_ENV = "SEQHARNESS_TESTAGENT_LOG"

_TASK_ID = re.compile(r"^[ \t>*-]*Task id:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_DIRECTIVE = re.compile(r"testagent:\s*(\S.*?)\s*$", re.IGNORECASE | re.MULTILINE)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m seqharness.testagent", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt-file", help="read the prompt from this file")
    p.add_argument("--outcome", action="append", default=[], metavar="TASK=OUTCOME",
                   help="what to do for one task id (repeatable)")
    p.add_argument("--default", default="done", metavar="OUTCOME",
                   help="what to do for other tasks (default: done)")
    p.add_argument("--sleep", type=float, default=0.0, metavar="SECONDS",
                   help="work this long before answering")
    p.add_argument("prompt", nargs="*", help="the prompt, when there is no --prompt-file")
    return p


def choose(args: argparse.Namespace, prompt: str, task: str) -> str:
    """The outcome for *task*: --outcome, else a ``testagent:`` line, else --default."""
    for item in reversed(args.outcome):  # the last one given wins
        key, _, value = item.partition("=")
        if key == task:
            return str(value)
    directive = _DIRECTIVE.search(prompt)
    return directive.group(1) if directive else str(args.default)


def answer(outcome: str, task: str) -> int:
    """Print the answer for *outcome* and return the exit code."""
    kind, _, arg = outcome.partition(":")
    kind = kind.strip().lower()
    print(f"testagent: working on task {task}")
    if kind == "done":
        print(DONE_TAG)
        return 0
    if kind == "halt":
        print(arg.strip() or DEFAULT_QUESTION)
        print(HALT_TAG)
        return 0
    if kind == "fail":
        print(f"testagent: task {task} failed (scripted)")
        return int(arg or "1")
    if kind == "silent":
        print("testagent: changed some files, no signal")
        return 0
    print(f"testagent: unknown outcome {outcome!r}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    words = shlex.split(os.environ.get(SCRIPT_ENV, ""))
    args = _parser().parse_args([*words, *(sys.argv[1:] if argv is None else argv)])
    if args.prompt_file:
        with open(args.prompt_file, encoding="utf-8", errors="replace") as fh:
            prompt = fh.read()
    else:
        prompt = " ".join(args.prompt)
    match = _TASK_ID.search(prompt)
    task = match.group(1) if match else "unknown"
    outcome = choose(args, prompt, task)
    log = os.environ.get(LOG_ENV)
    if log:
        record = {"task": task, "outcome": outcome, "argv": sys.argv, "cwd": os.getcwd(),
                  "pid": os.getpid(), "time": time.time()}
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    if args.sleep > 0:
        time.sleep(args.sleep)
    code = answer(outcome, task)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
