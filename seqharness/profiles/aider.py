"""aider (``aider --message-file``): the profile that runs it non-interactively
and reads its plain-text output (aider has no JSON stream) for the done/halt
tag, the litellm errors it reports with exit 0, tokens and cost.  The traps it
handles: docs/session.md, "Profiles" > "aider".
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from seqharness.backends import BackendContext
from seqharness.limits import Limit, limit_from_text, one_line
from seqharness.outcome import AttemptResult
from seqharness.profiles.base import CliProfile
from seqharness.profiles.readers import LineReader, TextReader

# aider prints str(err) of litellm's exceptions: "litellm.AuthenticationError: ...".
# Only that prefix counts: a model explaining "ValueError: ..." is not an API error.
_ERROR_RE = re.compile(r"^litellm\.(?P<name>\w+)\s*:\s*(?P<text>.*)$")
_FRIENDLY = (
    "The API provider is not able to authenticate you",
    "The API provider has rate limited you",
    "The API provider's servers are down or overloaded",
    "The API provider timed out",
    "The API provider has refused the request",
    "OpenRouter or the upstream API provider is down",
)
_RETRY_RE = re.compile(r"^Retrying in [\d.]+ seconds", re.IGNORECASE)
_TOKENS_RE = re.compile(
    r"^Tokens:\s*(?P<sent>[\d.,]+[kKmM]?)\s+sent(?:,\s*(?P<cache>[\d.,]+[kKmM]?)\s+cache \w+)*"
    r".*?(?P<received>[\d.,]+[kKmM]?)\s+received\.?"
    r"(?:\s*Cost:\s*\$(?P<msg>[\d.]+)\s+message,\s*\$(?P<session>[\d.]+)\s+session)?"
)
_APPLIED_RE = re.compile(r"^Applied edit to\s+\S")
# aider's own status lines (banner, token report, edits), not the model's words
_STATUS_RE = re.compile(
    r"^(?:Aider v\d|Model:\s|Main model:|Weak model:|Editor model:|Git repo:|Repo-map:|Tokens:\s|Cost:\s"
    r"|Applied edit to\s|Added .+ to the chat|Warning:|Use /help|https://aider\.chat/)"
)


def _count(text: str) -> float:
    text = text.replace(",", "")
    scale = {"k": 1e3, "m": 1e6}.get(text[-1:].lower(), 1.0)
    if scale != 1.0:
        text = text[:-1]
    try:
        return float(text) * scale
    except ValueError:
        return 0.0


class AiderReader(TextReader):
    """Reads aider's plain output: errors, retries, edits, tokens and cost."""

    def __init__(self, ctx: BackendContext, **kwargs: Any) -> None:
        super().__init__(ctx, (), **kwargs)
        self.pending_error: str | None = None   # an error not (yet) followed by a retry
        self.pending_name: str | None = None
        self.retried = 0

    def handle_text(self, line: str) -> None:
        if not line:
            return
        match = _ERROR_RE.match(line)
        if match:
            self.pending_error = line[:4000]
            self.pending_name = match.group("name")
            self.add_error(line)
            return
        if self.pending_error is not None and line.startswith(_FRIENDLY):
            self.pending_error = (self.pending_error + "\n" + line)[:4000]
            return
        if _RETRY_RE.match(line):
            self.retried += 1
            self.pending_error = None
            self.pending_name = None
            return
        tokens = _TOKENS_RE.match(line)
        if tokens:
            self.add_usage("tokens_sent", _count(tokens.group("sent")))
            self.add_usage("tokens_received", _count(tokens.group("received")))
            if tokens.group("session"):
                self.usage["cost_usd_session"] = float(tokens.group("session"))
                self.add_usage("cost_usd", float(tokens.group("msg")))
            return
        if _APPLIED_RE.match(line):
            self.tool_calls += 1

    def is_status(self, line: str) -> bool:
        return bool(_STATUS_RE.match(line)) or _RETRY_RE.match(line) is not None

    def finish(self) -> None:
        if self.pending_error is not None:
            self.fatal = f"aider: API error: {one_line(self.pending_error, 300)}"


class AiderBackend(CliProfile):
    """``--backend aider`` (extra arguments: ``--backend "aider:--model openai/gpt-4o"``)."""

    name = "aider"
    default_program = "aider"

    def base_argv(self, ctx: BackendContext) -> list[str]:
        return [self.program(), "--message-file", ctx.prompt_file, "--yes-always", "--no-pretty",
                "--no-fancy-input", "--no-check-update", "--no-show-release-notes", "--no-analytics",
                "--no-show-model-warnings", "--no-auto-commits"]

    def prompt_argv(self, ctx: BackendContext) -> list[str]:
        return []

    def forced_env(self) -> dict[str, str]:
        return {"BROWSER": "true"}

    def reader(self, ctx: BackendContext) -> AiderReader:
        return AiderReader(ctx)

    def find_limit(self, result: AttemptResult, reader: LineReader) -> Limit | None:
        if not isinstance(reader, AiderReader) or reader.pending_error is None:
            return None
        return limit_from_text(reader.pending_error, datetime.now().astimezone(), who="aider")


__all__ = ["AiderBackend", "AiderReader"]
