"""OpenAI Codex CLI (``codex exec --json``).

Command::

    codex exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox [EXTRA] -- PROMPT

Traps this profile handles (measured with codex 0.169.0, see ``notes/agent-clis.md``):

* ``codex exec`` never asks for approval, but its default sandbox is
  read-only: a write fails *inside* the turn and goes back to the model as tool
  output.  ``--dangerously-bypass-approvals-and-sandbox`` lifts it (the
  harness runs the agent in the project on purpose).  ``--full-auto`` no longer
  exists (exit 2).  ``--skip-git-repo-check`` lets it run outside a git repo.
* A piped stdin is read to EOF and appended to the prompt; under the PTY stdin
  is a terminal and is left alone.
* **It never exits when the model server is unreachable**: it loops on
  ``{"type":"error","message":"Reconnecting... ..."}`` for minutes, whatever its
  retry settings.  The reader notes when the loop started and, after
  ``max_reconnect_seconds`` (default 120, ``SEQHARNESS_CODEX_MAX_RECONNECT``),
  asks the session to stop the attempt (:attr:`CodexReader.stop_requested`).
* HTTP 400/401/500 end in ``turn.failed`` with a message and exit 1.
  Top-level ``error`` events are *not* all fatal (an unknown model slug gives
  one and the turn still completes), so they fail the task only together with
  ``turn.failed`` or a non-zero exit.
* Usage limits arrive as error text: "You've hit your usage limit ... Try again
  at 2:51 PM." (or "at Nov 30th, 2025 2:51 PM", or older "try again in 2 days
  17 hours"), read only from ``turn.failed`` / error events of a failed run.
* Dialogs: "Trust this folder?" / "Trust and continue" (Enter), only in the
  interactive TUI inside a git repo; ``exec`` shows none.

The final text is the last ``agent_message`` item.  Older versions name the
item kind ``item_type`` instead of ``type``; both are read.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from seqharness.backends import BackendContext
from seqharness.limits import Limit, limit_from_text, one_line
from seqharness.profiles.base import CliProfile, Dialog, JsonLineReader, LineReader, prompt_argument
from seqharness.session import AttemptResult

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
            message = error.get("message") if isinstance(error, dict) else error
            self.turn_failed = str(message or "turn failed")[:4000]
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
