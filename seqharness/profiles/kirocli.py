"""Kiro CLI (``kiro-cli chat --no-interactive``).  **UNVERIFIED.**

kiro-cli could not be installed on the machine this was built on, so this
profile follows Kiro's documentation only (kiro.dev/docs/cli/headless,
kiro.dev/docs/cli/reference/exit-codes) and has never run a real kiro-cli:

    kiro-cli chat --no-interactive --trust-all-tools [EXTRA] PROMPT

What the documentation says and this profile relies on:

* ``--no-interactive`` with the prompt as a positional argument runs one
  turn and exits; headless mode authenticates with ``KIRO_API_KEY`` in the
  environment (set it yourself; seqharness does not manage keys).
* ``--trust-all-tools`` approves every tool for the session (nobody is there
  to answer "Allow this action? [y/n/t]").  If that prompt shows up anyway
  it is answered once with ``t`` (trust for the session), Enter.
* Output is a plain human transcript; there is no JSON event stream, so the
  done/halt signal is read from the whole output with the session's echo
  rules, as for any plain-text agent.
* Exit codes: 0 success, 1 failure (auth, invalid arguments, operation
  failed), 3 an MCP server failed to start (only with
  ``--require-mcp-startup``).  "Kiro is having trouble responding right now"
  is reported as an error even if the exit code were 0.
* Usage limits are looked for only in the last lines of a failed run.

Check this profile against a real kiro-cli before trusting it; a recording
of its output in ``fixtures/streams/kiro-cli-*.txt`` would let the unit tests
pin its behaviour.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from seqharness.backends import BackendContext
from seqharness.limits import Limit, limit_from_text
from seqharness.profiles.base import CliProfile, Dialog, LineReader, TextReader, prompt_argument
from seqharness.session import AttemptResult

DIALOGS = (Dialog("kiro-cli: allow this action", ("Allow this action?", "[y/n/t]"), b"t\r"),)
_TROUBLE_RE = re.compile(r"Kiro is having trouble responding", re.IGNORECASE)
EXIT_REASONS = {3: "kiro-cli: an MCP server failed to start (exit 3)"}


class KiroReader(TextReader):
    """Plain text: remembers kiro's "trouble responding" error line."""

    def __init__(self, ctx: BackendContext, **kwargs: Any) -> None:
        super().__init__(ctx, DIALOGS, **kwargs)

    def handle_text(self, line: str) -> None:
        if _TROUBLE_RE.search(line):
            self.add_error(line)
            self.fatal = f"kiro-cli: {line[:300]}"


class KiroCliBackend(CliProfile):
    """``--backend kiro-cli`` (extra arguments: ``--backend "kiro-cli:--agent dev"``).  Unverified."""

    name = "kiro-cli"
    default_program = "kiro-cli"
    dialogs = DIALOGS

    def base_argv(self, ctx: BackendContext) -> list[str]:
        return [self.program(), "chat", "--no-interactive", "--trust-all-tools"]

    def prompt_argv(self, ctx: BackendContext) -> list[str]:
        prompt = prompt_argument(ctx)
        return ["--", prompt] if prompt.startswith("-") else [prompt]

    def reader(self, ctx: BackendContext) -> KiroReader:
        return KiroReader(ctx)

    def error_reason(self, result: AttemptResult, reader: LineReader) -> str | None:
        if reader.fatal:
            return reader.fatal
        code = result.exit_status
        if code in EXIT_REASONS:
            return EXIT_REASONS[code]
        return None

    def find_limit(self, result: AttemptResult, reader: LineReader) -> Limit | None:
        if result.exit_status == 0 and reader.fatal is None:
            return None
        tail = "\n".join(list(reader.noise)[-8:])
        return limit_from_text(tail, datetime.now().astimezone(), who="kiro-cli") if tail else None


__all__ = ["DIALOGS", "KiroCliBackend", "KiroReader"]
