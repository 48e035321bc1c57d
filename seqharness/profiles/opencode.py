"""opencode (``opencode run --format json``): the profile that hands opencode the
prompt on stdin (its command line mangles it), reads its JSON events (text
parts, step costs, API errors) and judges the attempt.  The traps it handles:
docs/session.md, "Profiles" > "opencode".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from seqharness.backends import BackendContext
from seqharness.limits import Limit, detect_limit, one_line, parse_reset, parse_retry_after
from seqharness.outcome import AttemptResult
from seqharness.profiles.base import CliProfile
from seqharness.profiles.readers import JsonLineReader, LineReader, TextTail

# The prompt goes to opencode's stdin from the prompt file; "$1" and "$@" are
# never parsed as shell text, so nothing of the prompt can reach the shell.
STDIN_WRAPPER = ("/bin/sh", "-c", 'p=$1; shift; exec "$@" <"$p"', "opencode-prompt")


class OpencodeReader(JsonLineReader):
    """Reads ``opencode run --format json`` events."""

    def __init__(self, ctx: BackendContext, **kwargs: Any) -> None:
        super().__init__(ctx, (), **kwargs)
        self.step = TextTail()
        self.error_name: str | None = None
        self.error_status: int | None = None
        self.error_message = ""
        self.error_text = ""            # message + response body, for limit parsing
        self.retry_after: str | None = None

    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        part = event.get("part")
        part = part if isinstance(part, dict) else {}
        if kind == "step_start":
            self.step = TextTail()
        elif kind == "text":
            text = part.get("text")
            if isinstance(text, str) and text:
                if self.step:
                    self.step.append("\n")
                self.step.append(text)
                self.final = self.step
        elif kind == "tool_use":
            self.tool_calls += 1
            state = part.get("state")
            if isinstance(state, dict):
                self.note_tool_output(state.get("output"))
                if state.get("status") == "error":
                    self.add_error(f"tool {part.get('tool')} failed: {state.get('error')}")
        elif kind == "step_finish":
            tokens = part.get("tokens")
            if isinstance(tokens, dict):
                for key in ("input", "output", "reasoning", "total"):
                    self.add_usage(f"{key}_tokens", tokens.get(key))
                cache = tokens.get("cache")
                if isinstance(cache, dict):
                    self.add_usage("cache_read_tokens", cache.get("read"))
                    self.add_usage("cache_write_tokens", cache.get("write"))
            self.add_usage("cost_usd", part.get("cost"))
        elif kind == "error":
            self._error(event.get("error"))

    def _error(self, error: Any) -> None:
        if not isinstance(error, dict):
            error = {"name": "Error", "data": {"message": str(error)}}
        data = error.get("data")
        data = data if isinstance(data, dict) else {}
        name = str(error.get("name") or "Error")
        message = str(data.get("message") or error.get("message") or name)
        status = data.get("statusCode")
        self.error_name = name
        self.error_status = status if isinstance(status, int) and not isinstance(status, bool) else None
        self.error_message = message[:4000]
        body = data.get("responseBody")
        self.error_text = (message + "\n" + body if isinstance(body, str) else message)[:8000]
        headers = data.get("responseHeaders")
        if isinstance(headers, dict):
            for key, value in headers.items():
                if str(key).lower() == "retry-after":
                    self.retry_after = str(value)
        http = f" (HTTP {self.error_status})" if self.error_status else ""
        self.add_error(f"{name}{http}: {message}")
        self.fatal = f"opencode error: {name}{http}: {one_line(message, 300)}"


class OpencodeBackend(CliProfile):
    """``--backend opencode`` (extra arguments: ``--backend "opencode:-m mock/mock-model"``)."""

    name = "opencode"
    default_program = "opencode"

    def base_argv(self, ctx: BackendContext) -> list[str]:
        return [*STDIN_WRAPPER, ctx.prompt_file, self.program(), "run", "--format", "json", "--auto"]

    def prompt_argv(self, ctx: BackendContext) -> list[str]:
        return []  # on stdin, from the prompt file (see STDIN_WRAPPER)

    def reader(self, ctx: BackendContext) -> OpencodeReader:
        return OpencodeReader(ctx)

    def find_limit(self, result: AttemptResult, reader: LineReader) -> Limit | None:
        if not isinstance(reader, OpencodeReader) or reader.error_name is None:
            return None
        if reader.error_status != 429 and not detect_limit(reader.error_text):
            return None
        now = datetime.now().astimezone()
        resume = parse_retry_after(reader.retry_after, now) if reader.retry_after else None
        if resume is None:
            resume = parse_reset(reader.error_text, now)
        http = f" (HTTP {reader.error_status})" if reader.error_status else ""
        return Limit(f"opencode: usage limit{http}: {one_line(reader.error_message, 200)}", resume)


__all__ = ["STDIN_WRAPPER", "OpencodeBackend", "OpencodeReader"]
