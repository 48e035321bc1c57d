"""OpenAI Codex CLI (``codex exec --json``): the profile that runs it headless
without its sandbox, reads its JSONL events (last agent message, failed turns,
usage limits) and stops an attempt stuck reconnecting to an unreachable server.
The traps it handles: docs/session.md, "Profiles" > "codex".
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from seqharness.backends import BackendContext
from seqharness.limits import Limit, limit_from_text, one_line
from seqharness.outcome import AttemptResult
from seqharness.profiles.base import CliProfile, prompt_argument
from seqharness.profiles.readers import Dialog, JsonLineReader, LineReader

DIALOGS = (Dialog("codex: trust this folder", ("Trust this folder?", "Trust and continue"), b"\r"),)
DEFAULT_MAX_RECONNECT = 120.0
_TOOL_ITEMS = frozenset({"command_execution", "file_change", "mcp_tool_call", "web_search", "local_shell_call"})
_RECONNECT_RE = re.compile(r"^\s*re-?connecting\b", re.IGNORECASE)


class CodexReader(JsonLineReader):
    """Reads ``codex exec --json`` events."""

    def __init__(self, ctx: BackendContext, max_reconnect_seconds: float = DEFAULT_MAX_RECONNECT,
                 **kwargs: Any) -> None:
        super().__init__(ctx, DIALOGS, **kwargs)
        self.max_reconnect_seconds = max_reconnect_seconds
        self.reconnect_since: float | None = None
        self.reconnects = 0
        self.last_reconnect = ""
        self.turn_failed: str | None = None
        self.error_events: list[str] = []  # bounded: last few top-level error messages
        self.thread_id: str | None = None

    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "error":
            message = str(event.get("message") or "")
            if _RECONNECT_RE.match(message):
                if self.reconnect_since is None:
                    self.reconnect_since = self.clock()
                self.reconnects += 1
                self.last_reconnect = one_line(message, 300)
                return
            self.add_error(message)
            self.error_events = (self.error_events + [message[:2000]])[-5:]
            return
        if kind == "turn.failed":
            error = event.get("error")
            failure = error.get("message") if isinstance(error, dict) else error
            self.turn_failed = str(failure or "turn failed")[:4000]
            self.add_error(self.turn_failed)
            self.fatal = f"codex turn failed: {one_line(self.turn_failed, 300)}"
            return
        self.reconnect_since = None  # anything else means the server answered
        if kind == "thread.started":
            thread = event.get("thread_id")
            self.thread_id = thread if isinstance(thread, str) else None
        elif kind == "turn.completed":
            usage = event.get("usage")
            if isinstance(usage, dict):
                for key, value in usage.items():
                    self.add_usage(key, value)
        elif kind.startswith("item."):
            item = event.get("item")
            if isinstance(item, dict) and kind == "item.completed":
                self._item(item)

    def _item(self, item: dict[str, Any]) -> None:
        kind = item.get("type") or item.get("item_type")
        if kind in ("agent_message", "assistant_message"):
            text = item.get("text")
            if isinstance(text, str):
                self.final.set(text)
        elif kind in _TOOL_ITEMS:
            self.tool_calls += 1
            self.note_tool_output(item.get("aggregated_output"))
        elif kind == "error":
            self.add_error(str(item.get("message") or "error item"))

    @property
    def stop_requested(self) -> str | None:
        since = self.reconnect_since
        if since is None:
            return None
        waited = self.clock() - since
        if waited < self.max_reconnect_seconds:
            return None
        return (f"codex could not reach the model server: still reconnecting after {waited:.0f}s "
                f"(limit {self.max_reconnect_seconds:.0f}s, SEQHARNESS_CODEX_MAX_RECONNECT); "
                f"last: {self.last_reconnect}")


class CodexBackend(CliProfile):
    """``--backend codex`` (extra arguments: ``--backend "codex:-m gpt-5.5"``)."""

    name = "codex"
    default_program = "codex"
    dialogs = DIALOGS

    def __init__(self, extra: str = "", **kwargs: Any) -> None:
        super().__init__(extra, **kwargs)
        raw = self.environ.get("SEQHARNESS_CODEX_MAX_RECONNECT", "").strip()
        try:
            self.max_reconnect_seconds = float(raw) if raw else DEFAULT_MAX_RECONNECT
        except ValueError:
            self.max_reconnect_seconds = DEFAULT_MAX_RECONNECT

    def base_argv(self, ctx: BackendContext) -> list[str]:
        return [self.program(), "exec", "--json", "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox"]

    def prompt_argv(self, ctx: BackendContext) -> list[str]:
        return ["--", prompt_argument(ctx)]

    def reader(self, ctx: BackendContext) -> CodexReader:
        return CodexReader(ctx, self.max_reconnect_seconds)

    def find_limit(self, result: AttemptResult, reader: LineReader) -> Limit | None:
        if not isinstance(reader, CodexReader):
            return reader.limit
        if reader.turn_failed is None and result.exit_status == 0:
            return None  # the turn completed: an error event on the way was not fatal
        now = datetime.now().astimezone()
        texts = [reader.turn_failed or "", *reversed(reader.error_events)]
        if reader.turn_failed is None:
            texts.append("\n".join(list(reader.noise)[-5:]))
        for text in texts:
            found = limit_from_text(text, now, who="codex") if text else None
            if found is not None:
                return found
        return None


__all__ = ["DEFAULT_MAX_RECONNECT", "DIALOGS", "CodexBackend", "CodexReader"]
