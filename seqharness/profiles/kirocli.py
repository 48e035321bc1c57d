"""Kiro CLI (``kiro-cli chat --no-interactive``), **UNVERIFIED**: a profile
written from Kiro's documentation only, never run against a real kiro-cli, that
reads its plain-text output for the done/halt tag and known errors.  What it
relies on: docs/session.md, "Profiles" > "kiro-cli".
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from seqharness.backends import BackendContext
from seqharness.limits import Limit, limit_from_text
from seqharness.outcome import AttemptResult
from seqharness.profiles.base import CliProfile, prompt_argument
from seqharness.profiles.readers import Dialog, LineReader, TextReader

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
