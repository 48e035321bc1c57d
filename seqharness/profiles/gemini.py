"""Gemini CLI (``gemini -o stream-json``): the profile that runs it headless in
``--yolo`` mode, assembles the agent's text from its streamed deltas and reads
API errors from its exit code and stderr.  The traps it handles:
docs/session.md, "Profiles" > "gemini".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from seqharness.backends import BackendContext
from seqharness.limits import Limit, limit_from_text, one_line, parse_reset
from seqharness.outcome import AttemptResult
from seqharness.profiles.base import CliProfile, prompt_argument
from seqharness.profiles.readers import Dialog, JsonLineReader, LineReader, TextTail

DIALOGS = (
    Dialog("gemini: trust this folder", ("Do you trust the files in this folder?",), b"\r"),
    Dialog("gemini: use the detected API key", ("How would you like to authenticate", "Existing API key detected"), b"\r"),
    Dialog("gemini: confirm the API key", ("Enter Gemini API Key",), b"\r"),
)

EXIT_REASONS = {
    41: "gemini: authentication failed (exit 41); with a custom GOOGLE_GEMINI_BASE_URL set "
        "security.auth.selectedType = \"gemini-api-key\" in ~/.gemini/settings.json",
    42: "gemini: the authentication method was cleared (exit 42)",
    44: "gemini: sandbox error (exit 44)",
    52: "gemini: configuration error (exit 52)",
    53: "gemini: the session turn limit was reached (exit 53)",
    54: "gemini: a tool failed fatally (exit 54)",
    55: "gemini: the folder is not trusted (exit 55); pass --skip-trust or set GEMINI_CLI_TRUST_WORKSPACE=true",
    130: "gemini: the operation was cancelled (exit 130)",
}


def http_status(code: int | None) -> int | None:
    """The HTTP status behind a gemini exit code (status mod 256), if any."""
    if code is not None and 144 <= code <= 255:
        return code + 256
    return None


class GeminiReader(JsonLineReader):
    """Reads ``gemini -o stream-json`` events."""

    def __init__(self, ctx: BackendContext, **kwargs: Any) -> None:
        super().__init__(ctx, DIALOGS, **kwargs)
        self.new_segment = True
        self.result_status: str | None = None
        self.result_error = ""
        self.error_events: list[str] = []
        self.model: str | None = None

    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "message":
            if event.get("role") != "assistant":
                return  # the echoed prompt (role "user") is never the agent's words
            content = event.get("content")
            if not isinstance(content, str):
                return
            if self.new_segment:
                if not content:
                    return
                self.final = TextTail()  # the previous segment stays final until now
                self.new_segment = False
            if event.get("delta"):
                self.final.append(content)
            else:
                self.final.set(content)
        elif kind == "tool_use":
            self.tool_calls += 1
            self.new_segment = True
        elif kind == "tool_result":
            self.new_segment = True
            self.note_tool_output(event.get("output"))
            if event.get("status") == "error":
                error = event.get("error")
                detail = error.get("message") if isinstance(error, dict) else error
                self.add_error(f"tool failed: {detail or event.get('output') or ''}")
        elif kind == "error":
            message = str(event.get("message") or "")
            self.add_error(message)
            self.error_events = (self.error_events + [message[:2000]])[-5:]
        elif kind == "result":
            self._result(event)
        elif kind == "init":
            model = event.get("model")
            self.model = model if isinstance(model, str) else None

    def _result(self, event: dict[str, Any]) -> None:
        status = event.get("status")
        self.result_status = status if isinstance(status, str) else None
        stats = event.get("stats")
        if isinstance(stats, dict):
            for key in ("total_tokens", "input_tokens", "output_tokens", "cached", "duration_ms", "tool_calls"):
                self.add_usage(key, stats.get(key))
        if self.result_status == "error":
            error = event.get("error")
            if isinstance(error, dict):
                text = f"{error.get('type') or 'Error'}: {error.get('message') or ''}"
            else:
                text = str(error or "error")
            self.result_error = text[:4000]
            self.add_error(text)
            self.fatal = f"gemini error: {one_line(text, 300)}"


class GeminiBackend(CliProfile):
    """``--backend gemini`` (extra arguments: ``--backend "gemini:-m gemini-2.5-flash"``)."""

    name = "gemini"
    default_program = "gemini"
    dialogs = DIALOGS

    def base_argv(self, ctx: BackendContext) -> list[str]:
        return [self.program(), "--skip-trust", "--yolo", "-o", "stream-json"]

    def prompt_argv(self, ctx: BackendContext) -> list[str]:
        return ["--prompt=" + prompt_argument(ctx)]

    def reader(self, ctx: BackendContext) -> GeminiReader:
        return GeminiReader(ctx)

    def _stderr(self, reader: LineReader) -> str:
        """The last lines that were not events (gemini's stderr error text)."""
        return "\n".join(list(reader.noise)[-12:])

    def _detail(self, reader: LineReader) -> str:
        for line in reversed(reader.noise):
            if "error" in line.lower() or "message" in line.lower():
                return one_line(line, 200)
        return one_line(reader.noise[-1], 200) if reader.noise else ""

    def error_reason(self, result: AttemptResult, reader: LineReader) -> str | None:
        code = result.exit_status
        status = http_status(code)
        if reader.fatal:
            if status is None:
                return reader.fatal
            return f"gemini: API error HTTP {status} (exit {code}): " + reader.fatal.removeprefix("gemini error: ")
        if code in EXIT_REASONS:
            detail = self._detail(reader)
            return EXIT_REASONS[code] + (f": {detail}" if detail else "")
        if status is not None:
            detail = self._detail(reader)
            return f"gemini: API error HTTP {status} (exit {code})" + (f": {detail}" if detail else "")
        return None

    def find_limit(self, result: AttemptResult, reader: LineReader) -> Limit | None:
        if not isinstance(reader, GeminiReader):
            return reader.limit
        code = result.exit_status
        if code == 0 and reader.result_status != "error":
            return None  # gemini retried or fell back by itself and finished
        now = datetime.now().astimezone()
        stderr = self._stderr(reader)
        for text in (reader.result_error, *reversed(reader.error_events), stderr):
            found = limit_from_text(text, now, who="gemini") if text else None
            if found is not None:
                return found
        if http_status(code) == 429:
            return Limit(f"gemini: rate limited (HTTP 429, exit {code})",
                         parse_reset(reader.result_error + "\n" + stderr, now))
        return None


__all__ = ["DIALOGS", "GeminiBackend", "GeminiReader", "http_status"]
