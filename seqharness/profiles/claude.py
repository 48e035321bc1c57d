"""Claude Code (``claude -p --output-format stream-json``): the profile that runs
it headless with the permission bypass, reads its JSON event stream (final
result, tool calls, cost, denied tools, rate-limit events) and judges the
attempt.  The traps it handles: docs/session.md, "Profiles" > "claude".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from seqharness.backends import BackendContext
from seqharness.limits import Limit, limit_from_text, one_line, parse_reset
from seqharness.outcome import AttemptResult
from seqharness.profiles.base import CliProfile, is_root, prompt_argument
from seqharness.profiles.readers import Dialog, JsonLineReader, LineReader, TextTail

DIALOGS = (
    Dialog("claude: trust this folder", ("Yes, I trust this folder",), b"\r"),
    Dialog("claude: use this API key", ("Do you want to use this API key?",), b"1"),
    Dialog("claude: bypass permissions warning", ("Bypass Permissions mode", "Yes, I accept"), b"2"),
)


def _blocks(message: Any) -> list[dict[str, Any]]:
    if not isinstance(message, dict):
        return []
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []


def _block_text(content: Any) -> str:
    """Text of a tool_result's content (a string or a list of text blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


class ClaudeReader(JsonLineReader):
    """Reads claude's ``stream-json`` events."""

    def __init__(self, ctx: BackendContext, **kwargs: Any) -> None:
        super().__init__(ctx, DIALOGS, **kwargs)
        self.turn = TextTail()          # text of the current assistant turn
        self.result_seen = False
        self.is_error = False
        self.subtype: str | None = None
        self.api_error_status: int | None = None
        self.result_text = ""           # result.result when it is an error (bounded)
        self.synthetic: tuple[str, str] | None = None  # (error kind, text) of an API-error message
        self.rate_limit: dict[str, Any] | None = None  # the last rejected rate_limit_info
        self.rate_limit_status: str | None = None
        self.model: str | None = None

    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "assistant":
            self._assistant(event)
        elif kind == "user":
            for block in _blocks(event.get("message")):
                if block.get("type") == "tool_result":
                    self.note_tool_output(_block_text(block.get("content")))
            self.turn.clear()  # tool results end a turn; the next text is a new one
        elif kind == "result":
            self._result(event)
        elif kind == "rate_limit_event":
            self._rate_limit(event)
        elif kind == "system" and event.get("subtype") == "init":
            model = event.get("model")
            self.model = model if isinstance(model, str) else None

    def _assistant(self, event: dict[str, Any]) -> None:
        message = event.get("message")
        blocks = _blocks(message)
        texts = [b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)]
        model = message.get("model") if isinstance(message, dict) else None
        error_kind = event.get("error")
        if error_kind or model == "<synthetic>":
            # claude's own error text dressed as an assistant message
            text = "\n".join(texts)
            self.synthetic = (str(error_kind or "error"), text[:4000])
            self.add_error(text or str(error_kind))
            return
        for block in blocks:
            if block.get("type") == "tool_use":
                self.tool_calls += 1
        for text in texts:
            if self.turn:
                self.turn.append("\n")
            self.turn.append(text)

    def _result(self, event: dict[str, Any]) -> None:
        self.result_seen = True
        self.is_error = bool(event.get("is_error"))
        subtype = event.get("subtype")
        self.subtype = subtype if isinstance(subtype, str) else None
        status = event.get("api_error_status")
        self.api_error_status = status if isinstance(status, int) and not isinstance(status, bool) else None
        text = event.get("result")
        text = text if isinstance(text, str) else ""
        if self.is_error:
            self.result_text = text[:4000]
            self.add_error(text or f"claude result {self.subtype}")
        else:
            self.final.set(text)
        denials = event.get("permission_denials")
        if isinstance(denials, list):
            for denial in denials:
                name = denial.get("tool_name") if isinstance(denial, dict) else None
                self.denials.append(str(name or "unknown tool"))
        self.add_usage("cost_usd", event.get("total_cost_usd"))
        self.add_usage("num_turns", event.get("num_turns"))
        self.add_usage("duration_ms", event.get("duration_ms"))
        usage = event.get("usage")
        if isinstance(usage, dict):
            for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
                self.add_usage(key, usage.get(key))

    def _rate_limit(self, event: dict[str, Any]) -> None:
        info = event.get("rate_limit_info")
        if not isinstance(info, dict):
            return
        status = info.get("status")
        self.rate_limit_status = status if isinstance(status, str) else None
        if status != "rejected":
            return  # "allowed" / "allowed_warning" appear in every session
        if info.get("isUsingOverage") and info.get("overageStatus") in ("allowed", "allowed_warning"):
            return  # served from overage: not blocked
        self.rate_limit = {k: info.get(k) for k in ("resetsAt", "rateLimitType", "overageStatus")}

    def finish(self) -> None:
        if not self.result_seen and self.turn:
            self.final.set(self.turn.text())  # the stream was cut before its result


class ClaudeBackend(CliProfile):
    """``--backend claude`` (extra arguments: ``--backend "claude:--model sonnet"``)."""

    name = "claude"
    default_program = "claude"
    dialogs = DIALOGS

    def bypass(self) -> bool:
        """Add ``--dangerously-skip-permissions``?  Not when the extra arguments
        choose a permission mode (the bypass flag would silently override it)."""
        return not any(arg == "--permission-mode" or arg.startswith("--permission-mode=")
                       for arg in self.extra_args)

    def base_argv(self, ctx: BackendContext) -> list[str]:
        argv = [self.program(), "-p", "--output-format", "stream-json", "--verbose"]
        return argv + ["--dangerously-skip-permissions"] if self.bypass() else argv

    def prompt_argv(self, ctx: BackendContext) -> list[str]:
        return ["--", prompt_argument(ctx)]

    def default_env(self) -> dict[str, str]:
        return {"CLAUDE_CODE_MAX_RETRIES": "3"}

    def forced_env(self) -> dict[str, str]:
        return {"IS_SANDBOX": "1"} if is_root() and self.bypass() else {}

    def reader(self, ctx: BackendContext) -> ClaudeReader:
        return ClaudeReader(ctx)

    def final_text(self, reader: LineReader) -> str:
        if isinstance(reader, ClaudeReader) and reader.is_error:
            return ""  # an error result is claude's text, not the agent's
        return reader.final.text()

    def error_reason(self, result: AttemptResult, reader: LineReader) -> str | None:
        if not isinstance(reader, ClaudeReader):
            return reader.fatal
        if reader.is_error:
            status = f" (HTTP {reader.api_error_status})" if reader.api_error_status else ""
            text = reader.result_text or (reader.synthetic[1] if reader.synthetic else "") or str(reader.subtype)
            if reader.subtype and reader.subtype.startswith("error_"):
                return f"claude stopped with {reader.subtype}{status}: {one_line(text, 200)}"
            return f"claude reported an API error{status}: {one_line(text, 200)}"
        if reader.subtype and reader.subtype != "success":
            return f"claude ended with {reader.subtype}"
        if not reader.result_seen and reader.synthetic and result.exit_status != 0:
            return f"claude reported an error ({reader.synthetic[0]}): {one_line(reader.synthetic[1], 200)}"
        return None

    def find_limit(self, result: AttemptResult, reader: LineReader) -> Limit | None:
        if not isinstance(reader, ClaudeReader):
            return reader.limit
        failed = reader.is_error or result.exit_status != 0 or not reader.result_seen
        if not failed:
            return None  # a served request: any limit applies to the next one
        resume: float | None = None
        kind = ""
        if reader.rate_limit is not None:
            resets = reader.rate_limit.get("resetsAt")
            if isinstance(resets, (int, float)) and not isinstance(resets, bool):
                resume = float(resets) / (1000.0 if resets > 1e11 else 1.0)
            kind = str(reader.rate_limit.get("rateLimitType") or "")
        texts = [reader.result_text]
        if reader.synthetic:
            texts.append(reader.synthetic[1])
        if not reader.result_seen:
            texts.append("\n".join(list(reader.noise)[-5:]))
        now = datetime.now().astimezone()
        for text in texts:
            if not text:
                continue
            found = limit_from_text(text, now, who="claude")
            if found is not None:
                return Limit(found.reason, resume if resume is not None else found.resume_at)
        if reader.api_error_status == 429 or (reader.synthetic and reader.synthetic[0] == "rate_limit"):
            text = reader.result_text or (reader.synthetic[1] if reader.synthetic else "")
            return Limit(f"claude: rate limited (HTTP 429): {one_line(text, 160)}",
                         resume if resume is not None else parse_reset(text, now))
        if reader.rate_limit is not None:
            label = f" ({kind})" if kind else ""
            return Limit(f"claude: usage limit reached{label}", resume)
        return None


__all__ = ["DIALOGS", "ClaudeBackend", "ClaudeReader"]
