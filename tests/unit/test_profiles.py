"""Built-in backend profiles: argv/env, and readers fed synthetic streams.

The streams follow ``notes/agent-clis.md`` (event shapes measured on the real
CLIs).  Every stream is fed in several chunkings (whole, byte by byte, odd
sizes, split inside a multi-byte UTF-8 character, 64 KiB), with CRLF line ends
and ANSI colour around lines, as a PTY delivers it.  Recordings of the real
CLIs in ``fixtures/streams/<cli>-<scenario>.txt`` are parsed too when present.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seqharness.backends import BackendContext, BackendError, builtin_registry
from seqharness.outcome import FAILED, HALTED, INTERRUPTED, LIMITED, PASSED, AttemptResult, Outcome
from seqharness.profiles import (
    BUILTIN_NAMES,
    builtin_classes,
)
from seqharness.profiles.aider import AiderBackend, AiderReader
from seqharness.profiles.base import ARGV_PROMPT_LIMIT, CliProfile
from seqharness.profiles.claude import ClaudeBackend
from seqharness.profiles.codex import CodexBackend, CodexReader
from seqharness.profiles.gemini import GeminiBackend, http_status
from seqharness.profiles.kirocli import KiroCliBackend
from seqharness.profiles.opencode import OpencodeBackend
from seqharness.profiles.readers import (
    FINAL_TEXT_CHARS,
    MAX_LINE,
    NOISE_LINES,
    LineReader,
    TextTail,
)

ROOT = Path(__file__).resolve().parents[2]
STREAMS = ROOT / "fixtures" / "streams"

PROMPT = (
    "You are implementing one task of the Kiro spec \"demo\".\n"
    "Task id: 1\n"
    "Task title: Write hello.txt — café ☕\n"
    "When the task is complete, print <promise>TASK_DONE</promise> on a line of its own.\n"
    "If you need a human decision, print <promise>HALT</promise> after your question.\n"
)
DONE = "<promise>TASK_DONE</promise>"
HALT = "<promise>HALT</promise>"
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/u"}


def make_ctx(prompt: str = PROMPT) -> BackendContext:
    return BackendContext(prompt=prompt, prompt_file="/tmp/spec/.seqharness/p.prompt.md", task_id="1",
                          workdir="/tmp/work", spec_dir="/tmp/spec")


def attempt(exit_status: int | None = 0, reason: str = "exited", term_signal: int | None = None) -> AttemptResult:
    return AttemptResult(exit_status=exit_status, term_signal=term_signal, signal=None, reason=reason,
                         duration=1.0, output_bytes=0, tail="", halt_context="", error=None)


# --------------------------------------------------------------------------- streams
def jsonl(*events: Any, noise: tuple[str, ...] = ()) -> bytes:
    """Events as a PTY shows them: CRLF, a coloured warning line first, one
    event wrapped in colour resets."""
    lines = [f"\x1b[33m{line}\x1b[0m" for line in noise]
    for index, event in enumerate(events):
        text = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
        lines.append(f"\x1b[0m{text}\x1b[0m" if index == 1 else text)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _chunks(data: bytes, mode: str) -> Iterator[bytes]:
    if mode == "whole":
        yield data
    elif mode == "bytes":
        for i in range(len(data)):
            yield data[i:i + 1]
    elif mode == "sevens":
        for i in range(0, len(data), 7):
            yield data[i:i + 7]
    elif mode == "utf8split":
        cut = next((i + 1 for i, b in enumerate(data) if b >= 0xC0), len(data) // 2)  # inside a character
        yield data[:cut]
        yield data[cut:]
    elif mode == "64k":
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]
    else:  # pragma: no cover
        raise ValueError(mode)


CHUNKINGS = ("whole", "bytes", "sevens", "utf8split", "64k")


def run(backend: CliProfile, data: bytes, mode: str = "whole", *, exit_status: int | None = 0,
        reason: str = "exited", trust: bool = False, ctx: BackendContext | None = None,
        reader: LineReader | None = None) -> tuple[Outcome, LineReader, list[bytes]]:
    ctx = ctx or make_ctx()
    reader = reader or backend.reader(ctx)
    replies = []
    for chunk in _chunks(data, mode):
        reply = reader.feed(chunk)
        if reply:
            replies.append(reply)
    reader.close()
    outcome = backend.interpret(attempt(exit_status, reason), reader, trust_exit_code=trust)
    return outcome, reader, replies


def claude() -> ClaudeBackend:
    return ClaudeBackend("", environ=ENV)


# --------------------------------------------------------------------------- registry
def test_builtin_registry_makes_every_name_resolvable() -> None:
    registry = builtin_registry()
    classes = builtin_classes()
    assert sorted(classes) == sorted(BUILTIN_NAMES)
    assert set(registry.names()) == {"cmd", *BUILTIN_NAMES}
    for name in BUILTIN_NAMES:
        backend = registry.resolve(name)
        assert type(backend) is classes[name]
        assert backend.describe() == name
    assert registry.resolve("claude:--model sonnet").describe() == "claude:--model sonnet"
    assert registry.resolve("claude") is registry.resolve("claude")  # built once per run
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        registry.resolve("nope")


def test_a_later_add_replaces_a_builtin() -> None:
    registry = builtin_registry()
    registry.resolve("codex")
    registry.add("codex", lambda rest: ClaudeBackend(rest))
    assert isinstance(registry.resolve("codex"), ClaudeBackend)


def test_registration_imports_no_profile_module() -> None:
    import subprocess
    import sys

    code = ("import sys; from seqharness.backends import builtin_registry; builtin_registry(); "
            "print(sorted(m for m in sys.modules if m.startswith('seqharness.profiles.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    # and any profile module may be imported first (no import cycle with seqharness.backends)
    for module in ("seqharness.profiles.claude", "seqharness.profiles.kirocli", "seqharness.profiles.base",
                   "seqharness.profiles.readers"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=ROOT)


# --------------------------------------------------------------------------- argv and env
def test_claude_argv_non_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    inv = claude().invocation(make_ctx())
    assert inv.argv == ["claude", "-p", "--output-format", "stream-json", "--verbose",
                        "--dangerously-skip-permissions", "--", PROMPT]
    assert inv.env == {**ENV, "CLAUDE_CODE_MAX_RETRIES": "3"}
    assert inv.stdin_text is None


@pytest.mark.parametrize("extra", ["--permission-mode default", "--permission-mode=acceptEdits"])
def test_claude_with_a_permission_mode_leaves_the_bypass_flag_out(extra: str) -> None:
    inv = ClaudeBackend(extra, environ=ENV).invocation(make_ctx())
    assert inv.argv == ["claude", "-p", "--output-format", "stream-json", "--verbose",
                        *extra.split(), "--", PROMPT]
    inv = ClaudeBackend("", environ={**ENV, "SEQHARNESS_CLAUDE_ARGS": extra}).invocation(make_ctx())
    assert "--dangerously-skip-permissions" not in inv.argv


def test_claude_env_as_root_sets_is_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    env = ClaudeBackend("", environ={**ENV, "IS_SANDBOX": "0", "CLAUDE_CODE_MAX_RETRIES": "7"}).invocation(make_ctx()).env
    assert env is not None
    assert env["IS_SANDBOX"] == "1"                # forced: bypass mode is refused as root otherwise
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "7"   # the user's own setting wins over the default


def test_extra_args_from_backend_spec_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    environ = {**ENV, "SEQHARNESS_CLAUDE_ARGS": "--model opus", "SEQHARNESS_CLAUDE_BIN": "/opt/cli/claude",
               "SEQHARNESS_CLAUDE_ENV": "ANTHROPIC_BASE_URL=http://127.0.0.1:9 'X=a b' CLAUDE_CODE_MAX_RETRIES=0"}
    backend = ClaudeBackend("--model sonnet --allowedTools Bash Edit", environ=environ)
    inv = backend.invocation(make_ctx())
    assert inv.argv[0] == "/opt/cli/claude" and backend.program() == "/opt/cli/claude"
    assert inv.argv[6:] == ["--model", "opus", "--model", "sonnet", "--allowedTools", "Bash", "Edit", "--", PROMPT]
    assert inv.env is not None
    assert inv.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9" and inv.env["X"] == "a b"
    assert inv.env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert backend.describe() == "claude:--model sonnet --allowedTools Bash Edit"


def test_kiro_cli_environment_variable_names() -> None:
    backend = KiroCliBackend("", environ={"SEQHARNESS_KIRO_CLI_ARGS": "--agent dev"})
    assert backend.invocation(make_ctx()).argv[:6] == ["kiro-cli", "chat", "--no-interactive", "--trust-all-tools",
                                                        "--agent", "dev"]


@pytest.mark.parametrize("extra, environ, message", [
    ("--model 'unbalanced", {}, "cannot split"),
    ("", {"SEQHARNESS_CODEX_ENV": "NOEQUALS"}, "KEY=VALUE"),
])
def test_bad_extra_configuration_is_a_usage_error(extra: str, environ: dict[str, str], message: str) -> None:
    with pytest.raises(BackendError, match=message):
        CodexBackend(extra, environ=environ)


def test_check_reports_a_missing_program(tmp_path: Path) -> None:
    backend = GeminiBackend("", environ={"SEQHARNESS_GEMINI_BIN": str(tmp_path / "nope")})
    with pytest.raises(BackendError, match="not found"):
        backend.check()


def test_codex_argv() -> None:
    inv = CodexBackend("-m gpt-5.5", environ=ENV).invocation(make_ctx())
    assert inv.argv == ["codex", "exec", "--json", "--skip-git-repo-check",
                        "--dangerously-bypass-approvals-and-sandbox", "-m", "gpt-5.5", "--", PROMPT]
    assert inv.env == ENV  # exactly the given environment, nothing added
    assert CodexBackend("").invocation(make_ctx()).env is None  # inherits the harness's own


def test_gemini_argv_keeps_a_leading_dash_prompt_as_the_option_value() -> None:
    inv = GeminiBackend("", environ=ENV).invocation(make_ctx("-rf everything"))
    assert inv.argv == ["gemini", "--skip-trust", "--yolo", "-o", "stream-json", "--prompt=-rf everything"]


def test_aider_argv_uses_the_prompt_file_and_forces_a_harmless_browser() -> None:
    inv = AiderBackend("--model openai/mock", environ={**ENV, "BROWSER": "firefox"}).invocation(make_ctx())
    assert inv.argv[:3] == ["aider", "--message-file", "/tmp/spec/.seqharness/p.prompt.md"]
    assert "--yes-always" in inv.argv and "--no-pretty" in inv.argv and "--no-auto-commits" in inv.argv
    assert inv.argv[-2:] == ["--model", "openai/mock"]
    assert PROMPT not in inv.argv
    assert inv.env is not None and inv.env["BROWSER"] == "true"


def test_kiro_argv() -> None:
    assert KiroCliBackend("", environ=ENV).invocation(make_ctx()).argv == [
        "kiro-cli", "chat", "--no-interactive", "--trust-all-tools", PROMPT]
    assert KiroCliBackend("", environ=ENV).invocation(make_ctx("-x")).argv[-2:] == ["--", "-x"]


def test_opencode_reads_the_prompt_from_the_prompt_file_on_stdin(tmp_path: Path) -> None:
    """opencode quotes argv words with spaces and turns numeric words ("1.") into
    numbers (and crashes): the prompt goes to its stdin from the prompt file."""
    inv = OpencodeBackend("--model m/x", environ=ENV).invocation(make_ctx(PROMPT))
    assert inv.argv == ["/bin/sh", "-c", 'p=$1; shift; exec "$@" <"$p"', "opencode-prompt",
                        "/tmp/spec/.seqharness/p.prompt.md",
                        "opencode", "run", "--format", "json", "--auto", "--model", "m/x"]
    assert all(PROMPT not in arg for arg in inv.argv)
    # the wrapper really hands over the file as stdin and the words as argv, unparsed
    prompt_file = tmp_path / "it's $(x) `y`.md"
    prompt_file.write_text('- [ ] 1. say "hi"  $HOME\n')
    argv = [*inv.argv[:4], str(prompt_file), "sh", "-c", 'cat; printf "<%s>" "$@"', "sh", "a b", "$c"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert out == '- [ ] 1. say "hi"  $HOME\n<a b><$c>'


def test_an_oversized_prompt_is_passed_as_a_pointer_to_the_prompt_file() -> None:
    big = make_ctx("x" * (ARGV_PROMPT_LIMIT + 1))
    for backend in (claude(), CodexBackend("", environ=ENV), GeminiBackend("", environ=ENV),
                    KiroCliBackend("", environ=ENV)):
        argv = backend.invocation(big).argv
        assert all(len(arg) < 1000 for arg in argv)
        assert any(big.prompt_file in arg for arg in argv)
    assert all(len(arg) < 1000 for arg in OpencodeBackend("", environ=ENV).invocation(big).argv)


def test_reader_final_text_is_what_the_assignment_reads() -> None:
    """assign.py reads ``reader.final_text``: the agent's answer, not the escaped
    JSON string inside the CLI's event (which parse_answer cannot read)."""
    from seqharness.assign import parse_answer

    answer = '{"task": "1", "type": "ui", "owner": "gemini"}'
    stream = jsonl({"type": "thread.started", "thread_id": "t"},
                   {"type": "item.completed", "item": {"id": "i", "type": "agent_message", "text": answer}},
                   {"type": "turn.completed", "usage": {"input_tokens": 1}})
    reader = CodexBackend("", environ=ENV).reader(make_ctx())
    reader.feed(stream)
    reader.close()
    assert reader.final_text == answer
    assert parse_answer(reader.final_text) == {"type": "ui", "owner": "gemini"}
    assert parse_answer(stream.decode()) is None   # what it read before


# --------------------------------------------------------------------------- claude
CLAUDE_INIT = {"type": "system", "subtype": "init", "cwd": "/tmp/work", "session_id": "s1",
               "tools": ["Task", "Bash"], "model": "claude-opus-4-8[1m]", "permissionMode": "bypassPermissions"}
CLAUDE_ALLOWED = {"type": "rate_limit_event",
                  "rate_limit_info": {"status": "allowed", "resetsAt": 1900000000, "rateLimitType": "five_hour"}}


def claude_tool_use(name: str = "Bash") -> dict[str, Any]:
    return {"type": "assistant", "message": {"model": "claude-opus-4-8", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": name, "input": {"command": "echo hi > out.txt"}}]}}


def claude_tool_result(text: str = "(Bash completed with no output)") -> dict[str, Any]:
    return {"type": "user", "message": {"role": "user", "content": [
        {"tool_use_id": "toolu_1", "type": "tool_result", "content": text, "is_error": False}]},
        "tool_use_result": {"stdout": text, "stderr": ""}}


def claude_text(text: str) -> dict[str, Any]:
    return {"type": "assistant", "message": {"model": "claude-opus-4-8", "content": [{"type": "text", "text": text}]}}


def claude_result(text: str, *, is_error: bool = False, denials: list[str] | None = None,
                  status: int | None = None, subtype: str = "success") -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "result", "subtype": subtype, "is_error": is_error, "num_turns": 2, "result": text,
        "stop_reason": "end_turn", "session_id": "s1", "total_cost_usd": 0.0015,
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 5},
        "permission_denials": [{"tool_name": n, "tool_use_id": "t", "tool_input": {}} for n in denials or []],
        "terminal_reason": "completed",
    }
    if status is not None:
        event["api_error_status"] = status
    return event


@pytest.mark.parametrize("mode", CHUNKINGS)
def test_claude_tool_call_then_done(mode: str) -> None:
    final = f"Tool ran — café ☕. {DONE}"
    data = jsonl(CLAUDE_INIT, claude_tool_use(), claude_tool_result(), claude_text(final), CLAUDE_ALLOWED,
                 claude_result(final), noise=("Warning: something harmless",))
    outcome, reader, replies = run(claude(), data, mode)
    assert outcome.kind == PASSED, outcome.reason
    assert reader.final.text() == final
    assert reader.tool_calls == 1
    assert reader.usage == {"cost_usd": 0.0015, "num_turns": 2, "input_tokens": 100, "output_tokens": 20,
                            "cache_read_input_tokens": 5}
    assert reader.limit is None and replies == []
    assert list(reader.noise) == ["Warning: something harmless"]


def test_claude_plain_success() -> None:
    outcome, _, _ = run(claude(), jsonl(CLAUDE_INIT, claude_text(f"Mock reply. {DONE}"), claude_result(f"Mock reply. {DONE}")))
    assert outcome.kind == PASSED


def test_claude_done_tag_only_in_tool_output_does_not_pass() -> None:
    data = jsonl(CLAUDE_INIT, claude_tool_use(), claude_tool_result(f"grep found: {DONE}"),
                 claude_text("I looked at the file."), claude_result("I looked at the file."))
    outcome, reader, _ = run(claude(), data, "sevens")
    assert outcome.kind == FAILED
    assert "only in tool output" in outcome.reason and reader.tag_in_tool_output


def test_claude_echoing_the_protocol_line_does_not_pass() -> None:
    parrot = "When the task is complete, print <promise>TASK_DONE</promise> on a line of its own."
    outcome, _, _ = run(claude(), jsonl(claude_text(parrot), claude_result(parrot)))
    assert outcome.kind == FAILED


def test_claude_is_error_with_subtype_success_fails_with_the_api_status() -> None:
    text = 'Failed to authenticate. API Error: 401 {"type":"error","error":{"type":"authentication_error"}}'
    synthetic = {"type": "assistant", "message": {"model": "<synthetic>", "content": [{"type": "text", "text": text}]},
                 "error": "authentication_failed"}
    data = jsonl(CLAUDE_INIT, synthetic, claude_result(text, is_error=True, status=401))
    outcome, _, _ = run(claude(), data, "bytes", exit_status=1)
    assert outcome.kind == FAILED
    assert outcome.reason.startswith("claude reported an API error (HTTP 401): Failed to authenticate")
    # even an exit 0 (claude -p has been seen exiting 0 on API errors) does not pass
    outcome, _, _ = run(claude(), data, exit_status=0)
    assert outcome.kind == FAILED and "HTTP 401" in outcome.reason


def test_claude_permission_denials_fail_even_with_the_done_tag() -> None:
    final = f"I could not run it, but {DONE}"
    data = jsonl(CLAUDE_INIT, claude_tool_use("Bash"), claude_tool_result("Permission denied"),
                 claude_tool_use("Write"), claude_text(final), claude_result(final, denials=["Bash", "Write", "Bash"]))
    outcome, _, _ = run(claude(), data)
    assert outcome.kind == FAILED
    assert outcome.reason.startswith("claude: tools were denied: Bash, Write")


def test_claude_rate_limit_allowed_is_ignored() -> None:
    warning = {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed_warning", "resetsAt": 1900000000}}
    outcome, reader, _ = run(claude(), jsonl(CLAUDE_ALLOWED, warning, claude_text(DONE), claude_result(DONE)))
    assert outcome.kind == PASSED and reader.limit is None


@pytest.mark.parametrize("mode", ("whole", "bytes"))
def test_claude_rate_limit_rejected_is_limited_until_resets_at(mode: str) -> None:
    resets = int(time.time()) + 7200
    rejected = {"type": "rate_limit_event", "rate_limit_info": {
        "status": "rejected", "resetsAt": resets, "rateLimitType": "five_hour",
        "overageStatus": "rejected", "isUsingOverage": False}}
    text = "You've hit your limit · resets 5pm (Europe/Paris)"
    synthetic = {"type": "assistant", "message": {"model": "<synthetic>", "content": [{"type": "text", "text": text}]},
                 "error": "rate_limit"}
    data = jsonl(CLAUDE_INIT, rejected, synthetic, claude_result(text, is_error=True))
    outcome, _, _ = run(claude(), data, mode, exit_status=1)
    assert outcome.kind == LIMITED
    assert outcome.resume_at == resets
    assert "hit your limit" in outcome.reason


def test_claude_rejected_event_alone_is_a_limit_with_its_reset() -> None:
    resets = int(time.time()) + 600
    rejected = {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": resets,
                                                                 "rateLimitType": "seven_day"}}
    outcome, _, _ = run(claude(), jsonl(CLAUDE_INIT, rejected), exit_status=1)
    assert outcome == Outcome(LIMITED, "claude: usage limit reached (seven_day)", resume_at=resets)


def test_claude_rejected_but_served_from_overage_is_not_a_limit() -> None:
    overage = {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": 1900000000,
                                                                "isUsingOverage": True, "overageStatus": "allowed"}}
    outcome, _, _ = run(claude(), jsonl(overage, claude_text(DONE), claude_result(DONE)))
    assert outcome.kind == PASSED


def test_claude_old_text_limit_with_epoch() -> None:
    resets = int(time.time()) + 3600
    text = f"Claude AI usage limit reached|{resets}"
    outcome, _, _ = run(claude(), jsonl(claude_result(text, is_error=True)), exit_status=1)
    assert outcome.kind == LIMITED and outcome.resume_at == resets


def test_claude_limit_message_is_never_success() -> None:
    # claude -p has been seen to exit 0 on API errors: the limit text is not agent text
    text = "You've hit your limit · resets 5pm (Europe/Paris)"
    outcome, _, _ = run(claude(), jsonl(claude_result(text, is_error=True)), exit_status=0, trust=True)
    assert outcome.kind == LIMITED
    assert outcome.resume_at is not None and outcome.resume_at > time.time()


def test_claude_timeout_is_never_a_limit() -> None:
    rejected = {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": 1900000000}}
    for reason in ("timeout", "idle"):
        outcome, _, _ = run(claude(), jsonl(rejected), exit_status=None, reason=reason)
        assert outcome.kind == FAILED and outcome.reason.startswith(reason)


def test_claude_halt_question_is_the_final_text_without_the_tag() -> None:
    final = f"Which database should I use, Postgres or SQLite?\n{HALT}"
    outcome, _, _ = run(claude(), jsonl(claude_text(final), claude_result(final)))
    assert outcome.kind == HALTED
    assert outcome.question == "Which database should I use, Postgres or SQLite?"


def test_claude_error_result_subtypes() -> None:
    outcome, _, _ = run(claude(), jsonl(claude_result("", is_error=True, subtype="error_max_turns")), exit_status=1)
    assert outcome.kind == FAILED and "error_max_turns" in outcome.reason


def test_claude_root_refusal_is_reported_from_its_stderr_line() -> None:
    data = b"--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons\r\n"
    outcome, _, _ = run(claude(), data, exit_status=1)
    assert outcome.kind == FAILED
    assert outcome.reason == ("claude exited with code 1: --dangerously-skip-permissions cannot be used "
                              "with root/sudo privileges for security reasons")


def test_claude_stream_cut_before_the_result_uses_the_last_turn() -> None:
    outcome, _, _ = run(claude(), jsonl(claude_text("done here"), claude_text(DONE)))
    assert outcome.kind == PASSED


def test_claude_event_injected_mid_line_is_recovered() -> None:
    # anthropics/claude-code#49640: an event written into the middle of another line
    resets = int(time.time()) + 900
    inner = json.dumps({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": resets}})
    broken = '{"type":"assistant","message":{"content":[{"type":"text","text":"partial ' + inner
    data = jsonl(CLAUDE_INIT, broken, '..."}]}}', claude_result("x", is_error=True))
    outcome, reader, _ = run(claude(), data, exit_status=1)
    assert outcome.kind == LIMITED and outcome.resume_at == resets
    assert '..."}]}}' in reader.noise


@pytest.mark.parametrize("screen, keys, name", [
    (("\x1b[2J\x1b[HAccessing workspace: /tmp/work\r\n\x1b[3;1HQuick safety check: Is this a project you created"
     " or one you trust?\r\n\x1b[5;1H\x1b[36m❯\x1b[39m 1. Yes,\x1b[1CI\x1b[1Ctrust this folder\r\n   2. No, exit"),
     b"\r", "claude: trust this folder"),
    (("Detected a custom API key in your environment\r\nANTHROPIC_API_KEY: sk-ant-...xyz\r\n"
     "Do you want to use this API key?\r\n  1. Yes\r\n\x1b[1m❯ 2. No (recommended)\x1b[0m"), b"1",
     "claude: use this API key"),
    ("│ WARNING: Claude Code running in Bypass Permissions mode │\r\n│ ❯ 1. No, exit │\r\n│   2. Yes, I accept │",
     b"2", "claude: bypass permissions warning"),
])
def test_claude_dialogs_are_answered_once(screen: str, keys: bytes, name: str) -> None:
    reader = claude().reader(make_ctx())
    replies = [r for r in (reader.feed(c) for c in _chunks(screen.encode(), "sevens")) if r]
    assert replies == [keys]
    assert reader.dialogs_answered == [name]
    assert all(reader.feed(c) is None for c in _chunks(screen.encode(), "whole"))  # the redraw is not answered again


def test_text_readers_stop_watching_for_dialogs_after_the_start() -> None:
    screen = b"Allow this action? [y/n/t]: "
    late = kiro().reader(make_ctx())
    late.feed(b"x" * (2 * 1024 * 1024) + b"\r\n")
    assert late.feed(screen) is None
    early = kiro().reader(make_ctx())
    assert early.feed(b"thinking...\r\n" + screen) == b"t\r"


def test_dialog_text_inside_the_event_stream_is_not_answered() -> None:
    reader = claude().reader(make_ctx())
    data = jsonl(CLAUDE_INIT, claude_tool_result("Do you want to use this API key?\n1. Yes\nYes, I trust this folder"))
    assert [r for r in (reader.feed(c) for c in _chunks(data, "bytes")) if r] == []


# --------------------------------------------------------------------------- codex
CODEX_TOOL_TURN = (
    {"type": "thread.started", "thread_id": "01a213e9"},
    {"type": "turn.started"},
    {"type": "item.started", "item": {"id": "item_0", "type": "command_execution",
                                      "command": "/bin/bash -lc 'echo hi-codex > out.txt'", "aggregated_output": "",
                                      "exit_code": None, "status": "in_progress"}},
    {"type": "item.completed", "item": {"id": "item_0", "type": "command_execution",
                                        "command": "/bin/bash -lc 'echo hi-codex > out.txt'", "aggregated_output": "",
                                        "exit_code": 0, "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": f"Tool ran. {DONE}"}},
    {"type": "turn.completed", "usage": {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 20,
                                         "reasoning_output_tokens": 0}},
)


def codex() -> CodexBackend:
    return CodexBackend("", environ=ENV)


@pytest.mark.parametrize("mode", CHUNKINGS)
def test_codex_tool_call_then_done(mode: str) -> None:
    warning = "WARNING: proceeding, even though we could not create PATH aliases"
    outcome, reader, _ = run(codex(), jsonl(*CODEX_TOOL_TURN, noise=(warning,)), mode)
    assert outcome.kind == PASSED, outcome.reason
    assert reader.tool_calls == 1
    assert reader.usage["input_tokens"] == 100 and reader.usage["output_tokens"] == 20
    assert isinstance(reader, CodexReader) and reader.thread_id == "01a213e9"


def test_codex_harmless_error_event_does_not_fail_a_completed_turn() -> None:
    note = {"type": "error", "message": "Model metadata for `mock-model` not found. Defaulting to fallback."}
    outcome, reader, _ = run(codex(), jsonl(CODEX_TOOL_TURN[0], note, *CODEX_TOOL_TURN[1:]))
    assert outcome.kind == PASSED and reader.errors


def test_codex_turn_failed() -> None:
    failed = {"type": "turn.failed", "error": {"message": "unexpected status 401 Unauthorized: invalid key"}}
    outcome, _, _ = run(codex(), jsonl(*CODEX_TOOL_TURN[:2], failed), exit_status=1)
    assert outcome == Outcome(FAILED, "codex turn failed: unexpected status 401 Unauthorized: invalid key")


def test_codex_done_only_in_command_output_does_not_pass() -> None:
    item = {"type": "item.completed", "item": {"id": "i", "type": "command_execution", "command": "cat p.md",
                                               "aggregated_output": f"print {DONE} when done", "exit_code": 0}}
    message = {"type": "item.completed", "item": {"id": "j", "type": "agent_message", "text": "Looked at it."}}
    outcome, _, _ = run(codex(), jsonl(item, message, CODEX_TOOL_TURN[-1]))
    assert outcome.kind == FAILED and "tool output" in outcome.reason


def test_codex_usage_limit_try_again_in() -> None:
    text = ("You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro) or try again "
            "in 2 days 17 hours.")
    before = time.time()
    data = jsonl(CODEX_TOOL_TURN[0], {"type": "error", "message": text},
                 {"type": "turn.failed", "error": {"message": text}})
    outcome, _, _ = run(codex(), data, exit_status=1)
    assert outcome.kind == LIMITED and outcome.reason.startswith("codex: usage limit: You've hit your usage limit.")
    assert outcome.resume_at is not None
    assert before + 65 * 3600 - 5 <= outcome.resume_at <= time.time() + 65 * 3600 + 5


def test_codex_usage_limit_try_again_at_clock_time() -> None:
    text = "You've hit your usage limit. Try again at 2:51 PM."
    data = jsonl({"type": "turn.failed", "error": {"message": text}})
    outcome, _, _ = run(codex(), data, exit_status=1)
    assert outcome.kind == LIMITED
    assert outcome.resume_at is not None and 0 < outcome.resume_at - time.time() <= 86400


def test_codex_reconnecting_loop_requests_a_stop() -> None:
    now = [1000.0]
    reader = CodexReader(make_ctx(), max_reconnect_seconds=60, clock=lambda: now[0])
    reader.feed(jsonl(CODEX_TOOL_TURN[0], CODEX_TOOL_TURN[1]))
    for attempt_no in range(1, 6):
        reader.feed(jsonl({"type": "error", "message": f"Reconnecting... {attempt_no}/5 (stream disconnected)"}))
        now[0] += 10
    assert reader.stop_requested is None  # 50 s so far
    now[0] += 15
    reason = reader.stop_requested
    assert reason is not None and reason.startswith("codex could not reach the model server: still reconnecting after 65s")
    assert "Reconnecting... 5/5" in reason
    reader.close()
    backend = CodexBackend("", environ={"SEQHARNESS_CODEX_MAX_RECONNECT": "60"})
    assert backend.max_reconnect_seconds == 60
    for session_reason in ("stopped", "idle", "timeout"):
        outcome = backend.interpret(attempt(None, session_reason, 15), reader)
        assert outcome == Outcome(FAILED, reason)
    # the server came back: the clock resets
    reader2 = CodexReader(make_ctx(), max_reconnect_seconds=60, clock=lambda: now[0])
    reader2.feed(jsonl({"type": "error", "message": "Reconnecting... 1/5"}))
    now[0] += 100
    reader2.feed(jsonl(CODEX_TOOL_TURN[4]))
    assert reader2.stop_requested is None


def test_codex_exit_code_without_events() -> None:
    outcome, _, _ = run(codex(), b"error: unexpected argument '--full-auto' found\r\n", exit_status=2)
    assert outcome == Outcome(FAILED, "codex exited with code 2: error: unexpected argument '--full-auto' found")


# --------------------------------------------------------------------------- opencode
def oc(kind: str, **part: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": 1764000000000, "sessionID": "ses_1", "part": part}


OPENCODE_TOOL_TURN = (
    oc("step_start", type="step-start"),
    oc("tool_use", type="tool", tool="bash", callID="call_1",
       state={"status": "completed", "input": {"command": "echo hi > out.txt"}, "output": "(no output)",
              "metadata": {"exit": 0}}),
    oc("step_finish", type="step-finish", reason="tool-calls",
       tokens={"input": 50, "output": 10, "reasoning": 0, "cache": {"read": 0, "write": 0}}, cost=0.001),
    oc("step_start", type="step-start"),
    oc("text", type="text", text=f"Tool ran. {DONE}", time={"start": 1, "end": 2}),
    oc("step_finish", type="step-finish", reason="stop",
       tokens={"input": 60, "output": 12, "reasoning": 0, "cache": {"read": 5, "write": 0}}, cost=0.002),
)


def opencode() -> OpencodeBackend:
    return OpencodeBackend("", environ=ENV)


@pytest.mark.parametrize("mode", CHUNKINGS)
def test_opencode_tool_call_then_done(mode: str) -> None:
    outcome, reader, _ = run(opencode(), jsonl(*OPENCODE_TOOL_TURN), mode)
    assert outcome.kind == PASSED, outcome.reason
    assert reader.tool_calls == 1
    assert reader.usage["input_tokens"] == 110 and reader.usage["cache_read_tokens"] == 5
    assert reader.usage["cost_usd"] == pytest.approx(0.003)


def test_opencode_final_text_is_the_last_step_with_text() -> None:
    data = jsonl(oc("step_start"), oc("text", text=f"Plan: I will print {DONE} later"), oc("tool_use", tool="bash",
                 state={"status": "completed", "output": "ok"}), oc("step_start"), oc("text", text="Finished, no tag."))
    outcome, reader, _ = run(opencode(), data)
    assert reader.final.text() == "Finished, no tag."
    assert outcome.kind == FAILED


def test_opencode_error_event_401() -> None:
    error = {"type": "error", "timestamp": 1, "sessionID": "ses_1", "error": {"name": "APIError", "data": {
        "message": "Unauthorized: invalid api key", "statusCode": 401, "isRetryable": False}}}
    outcome, _, _ = run(opencode(), jsonl(oc("step_start"), error), "bytes", exit_status=1)
    assert outcome == Outcome(FAILED, "opencode error: APIError (HTTP 401): Unauthorized: invalid api key")


def test_opencode_429_with_retry_after_is_limited() -> None:
    error = {"type": "error", "error": {"name": "APIError", "data": {
        "message": "Too Many Requests", "statusCode": 429, "isRetryable": True,
        "responseHeaders": {"Retry-After": "30", "content-type": "application/json"}}}}
    outcome, _, _ = run(opencode(), jsonl(error), exit_status=1)
    assert outcome.kind == LIMITED and "HTTP 429" in outcome.reason
    assert outcome.resume_at == pytest.approx(time.time() + 30, abs=5)


def test_opencode_done_only_in_tool_output_does_not_pass() -> None:
    data = jsonl(oc("step_start"), oc("tool_use", tool="read", state={"status": "completed", "output": DONE}),
                 oc("step_finish", reason="stop"))
    outcome, _, _ = run(opencode(), data)
    assert outcome.kind == FAILED and "tool output" in outcome.reason


def test_opencode_tool_error_is_not_fatal() -> None:
    failing = oc("tool_use", tool="bash", state={"status": "error", "error": "exit 1"})
    outcome, reader, _ = run(opencode(), jsonl(oc("step_start"), failing, oc("step_start"), oc("text", text=DONE)))
    assert outcome.kind == PASSED
    assert list(reader.errors) == ["tool bash failed: exit 1"]


# --------------------------------------------------------------------------- gemini
GEMINI_INIT = {"type": "init", "timestamp": "2026-11-25T14:00:00Z", "session_id": "g1", "model": "auto"}


def gemini() -> GeminiBackend:
    return GeminiBackend("", environ=ENV)


def gem_text(content: str, delta: bool = True) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": content, "delta": delta}


@pytest.mark.parametrize("mode", CHUNKINGS)
def test_gemini_deltas_are_assembled(mode: str) -> None:
    data = jsonl(
        GEMINI_INIT,
        {"type": "message", "role": "user", "content": "RUN: echo hi-gemini > out.txt"},
        {"type": "tool_use", "tool_name": "run_shell_command", "tool_id": "run_1",
         "parameters": {"command": "echo hi-gemini > out.txt"}},
        {"type": "tool_result", "tool_id": "run_1", "status": "success", "output": ""},
        gem_text("Tool ran — "), gem_text("café. <promise>TASK_"), gem_text("DONE</promise>"),
        {"type": "result", "status": "success", "stats": {"total_tokens": 180, "input_tokens": 150,
                                                          "output_tokens": 30, "tool_calls": 1}},
        noise=("Warning: 256-color support not detected.", "Ripgrep is not available. Falling back to GrepTool."),
    )
    outcome, reader, _ = run(gemini(), data, mode)
    assert outcome.kind == PASSED, outcome.reason
    assert reader.final.text() == f"Tool ran — café. {DONE}"
    assert reader.usage == {"total_tokens": 180, "input_tokens": 150, "output_tokens": 30, "tool_calls": 1}
    assert reader.tool_calls == 1


def test_gemini_echoed_prompt_with_the_tag_does_not_pass() -> None:
    data = jsonl(GEMINI_INIT, {"type": "message", "role": "user", "content": PROMPT + f"\n{DONE}"},
                 gem_text("I have not started yet."), {"type": "result", "status": "success", "stats": {}})
    outcome, reader, _ = run(gemini(), data, "bytes")
    assert outcome.kind == FAILED
    assert "<promise>" not in reader.final.text()


def test_gemini_final_text_is_the_last_segment() -> None:
    data = jsonl(gem_text(f"I will say {DONE} at the end"),
                 {"type": "tool_use", "tool_name": "x", "tool_id": "1", "parameters": {}},
                 {"type": "tool_result", "tool_id": "1", "status": "success", "output": DONE},
                 gem_text("All written."), {"type": "result", "status": "success"})
    outcome, reader, _ = run(gemini(), data)
    assert reader.final.text() == "All written."
    assert outcome.kind == FAILED and "tool output" in outcome.reason


@pytest.mark.parametrize("code, status", [(144, 400), (145, 401), (173, 429), (244, 500), (1, None), (55, None)])
def test_gemini_http_status_mod_256(code: int, status: int | None) -> None:
    assert http_status(code) == status


def test_gemini_exit_145_is_http_401() -> None:
    stderr = ('{\r\n  "error": {\r\n    "type": "ApiError",\r\n    "message": "API key not valid",\r\n'
              '    "code": 401\r\n  }\r\n}\r\n')
    data = jsonl(GEMINI_INIT, {"type": "message", "role": "user", "content": "x"}) + stderr.encode()
    outcome, _, _ = run(gemini(), data, "sevens", exit_status=145)
    assert outcome.kind == FAILED
    assert outcome.reason.startswith("gemini: API error HTTP 401 (exit 145)")
    assert "API key not valid" in outcome.reason


def test_gemini_result_error_event_keeps_the_status() -> None:
    result = {"type": "result", "status": "error", "error": {"type": "ApiError", "message": "[401] Unauthorized"}}
    outcome, _, _ = run(gemini(), jsonl(GEMINI_INIT, result), exit_status=145)
    assert outcome == Outcome(FAILED, "gemini: API error HTTP 401 (exit 145): ApiError: [401] Unauthorized")
    outcome, _, _ = run(gemini(), jsonl(GEMINI_INIT, result), exit_status=1)
    assert outcome == Outcome(FAILED, "gemini error: ApiError: [401] Unauthorized")


def test_gemini_exit_41_and_55() -> None:
    outcome, _, _ = run(gemini(), b"Invalid auth method selected.\r\n", exit_status=41)
    assert outcome.kind == FAILED and outcome.reason.startswith("gemini: authentication failed (exit 41)")
    assert "selectedType" in outcome.reason and "Invalid auth method selected." in outcome.reason
    text = (b"Gemini CLI is not running in a trusted directory. To proceed, either use --skip-trust, set the "
            b"GEMINI_CLI_TRUST_WORKSPACE=true environment variable, or trust this directory in interactive mode.\r\n")
    outcome, _, _ = run(gemini(), text, exit_status=55)
    assert outcome.kind == FAILED and outcome.reason.startswith("gemini: the folder is not trusted (exit 55)")


def test_gemini_resource_exhausted_is_limited() -> None:
    message = ('[{"error":{"code":429,"message":"Quota exceeded. Please retry in 37s.",'
               '"status":"RESOURCE_EXHAUSTED"}}]')
    result = {"type": "result", "status": "error", "error": {"type": "ApiError", "message": message}}
    outcome, _, _ = run(gemini(), jsonl(GEMINI_INIT, result), exit_status=173)
    assert outcome.kind == LIMITED and "RESOURCE_EXHAUSTED" in outcome.reason
    assert outcome.resume_at == pytest.approx(time.time() + 37, abs=5)


def test_gemini_exit_173_alone_is_limited() -> None:
    outcome, _, _ = run(gemini(), jsonl(GEMINI_INIT), exit_status=173)
    assert outcome == Outcome(LIMITED, "gemini: rate limited (HTTP 429, exit 173)", resume_at=None)


def test_gemini_recovered_quota_error_is_not_a_limit() -> None:
    warning = {"type": "error", "severity": "warning", "message": "RESOURCE_EXHAUSTED: falling back to flash"}
    data = jsonl(GEMINI_INIT, warning, gem_text(DONE), {"type": "result", "status": "success"})
    outcome, _, _ = run(gemini(), data)
    assert outcome.kind == PASSED


def test_gemini_trust_dialog_answered_with_enter_once() -> None:
    screen = ("\x1b[?25l╭──────╮\r\n│ Do you trust the files in this folder? │\r\n│ ● 1. Trust folder (/tmp/work) │\r\n"
              "│   2. Trust parent folder (/tmp) │\r\n│   3. Don't trust │\r\n╰──────╯").encode()
    reader = gemini().reader(make_ctx())
    assert [r for r in (reader.feed(c) for c in _chunks(screen, "bytes")) if r] == [b"\r"]
    assert reader.feed(screen) is None


# --------------------------------------------------------------------------- aider
AIDER_BANNER = ("Aider v0.86.2\r\nModel: openai/mock-model with whole edit format\r\nGit repo: none\r\n"
                "Repo-map: disabled\r\n")


def aider() -> AiderBackend:
    return AiderBackend("", environ=ENV)


@pytest.mark.parametrize("mode", CHUNKINGS)
def test_aider_success(mode: str) -> None:
    data = (AIDER_BANNER + "I wrote the file — café.\r\n\r\nhello.txt\r\n```\r\nhello\r\n```\r\n"
            f"{DONE}\r\nApplied edit to hello.txt\r\n"
            "Tokens: 1.2k sent, 50 received. Cost: $0.0012 message, $0.0034 session.\r\n").encode()
    outcome, reader, _ = run(aider(), data, mode)
    assert outcome.kind == PASSED, outcome.reason
    assert reader.tool_calls == 1
    assert reader.usage == {"tokens_sent": 1200.0, "tokens_received": 50.0, "cost_usd_session": 0.0034,
                            "cost_usd": 0.0012}


def test_aider_api_error_with_exit_0_fails() -> None:
    data = (AIDER_BANNER + "litellm.AuthenticationError: AuthenticationError: OpenAIException - Error code: 401 - "
            "{'error': {'message': 'Incorrect API key provided'}}\r\n"
            "The API provider is not able to authenticate you. Check your API key.\r\n").encode()
    outcome, _, _ = run(aider(), data, "sevens", exit_status=0)
    assert outcome.kind == FAILED
    assert outcome.reason.startswith("aider: API error: litellm.AuthenticationError: AuthenticationError:")
    assert "not able to authenticate you" in outcome.reason


def test_aider_retried_error_then_success_passes() -> None:
    data = (AIDER_BANNER + "litellm.InternalServerError: InternalServerError: OpenAIException - 500\r\n"
            "The API provider's servers are down or overloaded.\r\nRetrying in 0.2 seconds...\r\n"
            f"Done now.\r\n{DONE}\r\n").encode()
    outcome, reader, _ = run(aider(), data)
    assert outcome.kind == PASSED
    assert isinstance(reader, AiderReader) and reader.retried == 1


def test_aider_rate_limit_is_limited() -> None:
    data = (AIDER_BANNER + "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached. "
            "Please try again in 20s.\r\nThe API provider has rate limited you. Try again later or check your quotas.\r\n"
            ).encode()
    outcome, _, _ = run(aider(), data)
    assert outcome.kind == LIMITED
    assert outcome.resume_at == pytest.approx(time.time() + 20, abs=5)


def test_aider_model_text_about_errors_is_not_an_api_error() -> None:
    data = (AIDER_BANNER + "AuthenticationError: raised when the key is wrong; I handled it.\r\n"
            f"{DONE}\r\n").encode()
    outcome, _, _ = run(aider(), data)
    assert outcome.kind == PASSED


def test_aider_echoed_protocol_line_and_halt() -> None:
    parrot = "When the task is complete, print <promise>TASK_DONE</promise> on a line of its own.\r\n"
    outcome, _, _ = run(aider(), (AIDER_BANNER + parrot).encode())
    assert outcome.kind == FAILED
    outcome, _, _ = run(aider(), (AIDER_BANNER + f"\r\nShould I delete the old table?\r\n{HALT}\r\n"
                                  "Tokens: 652 sent, 28 received.\r\n").encode())
    assert outcome.kind == HALTED and outcome.question == "Should I delete the old table?"  # no banner


# --------------------------------------------------------------------------- kiro-cli (unverified)
def kiro() -> KiroCliBackend:
    return KiroCliBackend("", environ=ENV)


def test_kiro_success_and_failures() -> None:
    outcome, _, _ = run(kiro(), f"\x1b[32m> \x1b[0mCreated hello.txt.\r\n{DONE}\r\n".encode(), "bytes")
    assert outcome.kind == PASSED
    outcome, _, _ = run(kiro(), b"Kiro is having trouble responding right now\r\n", exit_status=1)
    assert outcome == Outcome(FAILED, "kiro-cli: Kiro is having trouble responding right now")
    outcome, _, _ = run(kiro(), b"some output\r\n", exit_status=3)
    assert outcome.kind == FAILED and "MCP" in outcome.reason
    outcome, _, _ = run(kiro(), b"all good\r\n")
    assert outcome.kind == FAILED and "without <promise>TASK_DONE</promise>" in outcome.reason
    outcome, _, _ = run(kiro(), b"error: you have hit your usage limit, try again in 3 hours\r\n", exit_status=1)
    assert outcome.kind == LIMITED


# --------------------------------------------------------------------------- common rules
@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_interrupted_and_spawn_errors_are_reported_as_usual(name: str) -> None:
    backend = builtin_classes()[name]("")
    reader = backend.reader(make_ctx())
    assert backend.interpret(attempt(None, "interrupted"), reader).kind == INTERRUPTED
    spawn = AttemptResult(exit_status=None, term_signal=None, signal=None, reason="spawn-error", duration=0,
                          output_bytes=0, tail="", halt_context="", error="no such file")
    assert backend.interpret(spawn, reader) == Outcome(FAILED, "could not start the agent: no such file")


def test_trust_exit_code_passes_a_clean_exit_without_the_tag_but_not_an_error() -> None:
    outcome, _, _ = run(claude(), jsonl(claude_text("ok"), claude_result("ok")), trust=True)
    assert outcome.kind == PASSED and "--trust-exit-code" in outcome.reason
    failed = {"type": "turn.failed", "error": {"message": "boom"}}
    outcome, _, _ = run(codex(), jsonl(failed), exit_status=0, trust=True)
    assert outcome.kind == FAILED


def test_non_zero_exit_beats_the_done_tag() -> None:
    outcome, _, _ = run(codex(), jsonl(*CODEX_TOOL_TURN), exit_status=1)
    assert outcome.kind == FAILED and "exited with code 1" in outcome.reason and "done signal" in outcome.reason


def test_killed_by_a_signal() -> None:
    outcome, _, _ = run(codex(), jsonl(*CODEX_TOOL_TURN[:2]), exit_status=None)
    assert outcome == Outcome(FAILED, "the agent was killed by signal None")


def test_text_tail_keeps_the_end() -> None:
    tail = TextTail(limit=10)
    for _ in range(1000):
        tail.append("abc")
    assert tail.text() == ("abc" * 4)[-10:]
    assert tail.truncated and tail.size <= 20
    tail.set("x" * 50)
    assert tail.text() == "x" * 10


# --------------------------------------------------------------------------- memory
def _flood(unit: bytes, total: int, chunk: int = 65536) -> Iterator[bytes]:
    """*total* bytes of *unit* repeated, cut into *chunk*-byte pieces at arbitrary offsets."""
    big = unit * (chunk // len(unit) + 2)
    for index in range(total // chunk):
        start = (index * chunk) % len(unit)
        yield big[start:start + chunk]


def _assert_bounded(reader: LineReader) -> None:
    assert reader.buffered <= MAX_LINE
    assert reader.final.size <= 2 * FINAL_TEXT_CHARS and len(reader.final.text()) <= FINAL_TEXT_CHARS
    assert len(reader.noise) <= NOISE_LINES and all(len(line) <= 2000 for line in reader.noise)
    assert len(reader.errors) <= 20 and all(len(line) <= 1000 for line in reader.errors)
    assert len(reader.denials) < 1000


@pytest.mark.slow
def test_hundred_megabytes_of_events_keep_the_reader_bounded() -> None:
    event = (json.dumps(claude_tool_result("x" * 900)) + "\r\n").encode()
    noise = b"\x1b[31m" + b"w" * 5000 + b"\x1b[0m\r\n"
    reader = claude().reader(make_ctx())
    total = 0
    for chunk in _flood(event * 20 + noise, 100 * 1024 * 1024):
        reader.feed(chunk)
        total += len(chunk)
    _assert_bounded(reader)
    reader.feed(jsonl(claude_text(DONE), claude_result(DONE)))
    reader.close()
    assert total >= 100 * 1024 * 1024 - 65536
    assert reader.events > 40_000  # ~2 KB events, 20 per 45 KB
    assert claude().interpret(attempt(0), reader).kind == PASSED


@pytest.mark.slow
def test_hundred_megabytes_of_deltas_keep_only_the_final_tail() -> None:
    delta = (json.dumps(gem_text("y" * 4000)) + "\n").encode()
    reader = gemini().reader(make_ctx())
    for chunk in _flood(delta, 100 * 1024 * 1024):
        reader.feed(chunk)
    reader.feed(jsonl(gem_text(DONE), {"type": "result", "status": "success"}))
    reader.close()
    _assert_bounded(reader)
    assert reader.final.text().endswith(DONE)
    assert gemini().interpret(attempt(0), reader).kind == PASSED


@pytest.mark.slow
def test_one_endless_line_is_dropped_not_buffered() -> None:
    for backend in (codex(), aider()):
        reader = backend.reader(make_ctx())
        for chunk in _flood(b"z" * 4096, 100 * 1024 * 1024):
            reader.feed(chunk)
            assert reader.buffered <= MAX_LINE
        reader.feed(b"\r\n")
        assert reader.overlong_lines == 1
        reader.feed(jsonl(*CODEX_TOOL_TURN) if isinstance(backend, CodexBackend) else f"{DONE}\r\n".encode())
        reader.close()
        _assert_bounded(reader)
        assert backend.interpret(attempt(0), reader).kind == PASSED


def test_aider_text_flood_is_bounded() -> None:
    reader = aider().reader(make_ctx())
    for chunk in _flood(b"some aider output line with <tags> and words\r\n", 8 * 1024 * 1024):
        reader.feed(chunk)
    reader.close()
    _assert_bounded(reader)


# --------------------------------------------------------------------------- recordings of the real CLIs
# fixtures/streams/<cli>-<scenario>.txt is the raw PTY output of a real CLI run
# against the fake model server; <name>.meta.json has at least "cli",
# "scenario" and "exitstatus" (written by tests/realcli with
# SEQHARNESS_RECORD_STREAMS=1).
_RECORDINGS = sorted(STREAMS.glob("*.txt")) if STREAMS.is_dir() else []
_TEXT_PROFILES = ("aider", "kiro-cli")


def _facts(reader: LineReader) -> tuple[Any, ...]:
    return (reader.final.text(), reader.tool_calls, dict(reader.usage), list(reader.errors), reader.denials,
            reader.limit, reader.tag_in_tool_output, reader.events, list(reader.noise))


def _expected(scenario: str, exit_status: int | None) -> str | None:
    if scenario.startswith("tool-write") or scenario == "done":
        return PASSED
    if scenario.startswith("halt"):
        return HALTED
    if scenario.startswith("tool-output-tag"):
        return FAILED
    if scenario.startswith("http-429"):
        return PASSED if exit_status == 0 else LIMITED  # the CLI may retry past the reset by itself
    if scenario.startswith("usage-limit"):
        return LIMITED
    if scenario.startswith(("http-4", "http-5", "denied", "connection-refused")):
        return FAILED
    return None


@pytest.mark.skipif(not _RECORDINGS, reason="no recordings in fixtures/streams yet")
@pytest.mark.parametrize("path", _RECORDINGS, ids=[p.name for p in _RECORDINGS])
def test_recorded_streams_of_the_real_clis(path: Path) -> None:
    meta_path = path.with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    cli = meta.get("cli") or next((n for n in sorted(BUILTIN_NAMES, key=len, reverse=True)
                                   if path.name.startswith(n + "-")), None)
    if cli not in BUILTIN_NAMES:
        pytest.skip(f"no profile for {path.name}")
    profile = builtin_classes()[cli]
    data = path.read_bytes()
    facts, outcomes = [], []
    exit_status = meta.get("exitstatus")
    for mode in ("whole", "64k", "sevens", "utf8split") + (("bytes",) if len(data) < 200_000 else ()):
        backend = profile("", environ=ENV)
        outcome, reader, replies = run(backend, data, mode, exit_status=exit_status)
        assert replies == [], f"{path.name}: a dialog was answered in a headless run"
        facts.append(_facts(reader))
        outcomes.append(outcome)
    assert all(f == facts[0] for f in facts), f"{path.name}: chunking changed what was read"
    first = outcomes[0]
    for other in outcomes[1:]:  # resume_at is computed from the clock at each replay
        assert (other.kind, other.reason, other.question) == (first.kind, first.reason, first.question)
        assert (other.resume_at is None) == (first.resume_at is None)
        assert other.resume_at is None or other.resume_at == pytest.approx(first.resume_at, abs=5)
    if "exitstatus" not in meta:
        return
    outcome = outcomes[0]
    scenario = meta.get("scenario") or path.stem[len(cli) + 1:]
    expected = _expected(scenario, exit_status)
    if expected is None:
        return
    assert outcome.kind == expected, f"{path.name}: {outcome}"
    if expected == PASSED and scenario.startswith("tool-write") and cli not in _TEXT_PROFILES:
        assert facts[0][1] >= 1  # the tool call was seen
    if expected == HALTED:
        assert outcome.question and "<promise>" not in outcome.question and "Aider v" not in outcome.question
    if scenario.startswith("tool-output-tag") and cli not in _TEXT_PROFILES:
        assert "tool output" in outcome.reason
    if scenario.startswith("http-401"):
        assert "401" in outcome.reason or "authenticat" in outcome.reason.lower()
    if scenario.startswith("denied"):
        assert "tools were denied" in outcome.reason
    if expected == LIMITED and "reset" in str(meta.get("script", "")) and "Suggested retry" in data.decode(errors="replace"):
        assert outcome.resume_at is not None and outcome.resume_at > time.time()
