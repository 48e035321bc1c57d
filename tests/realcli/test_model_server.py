"""The fake model server (fixtures/fake_model_server.py), and the real CLIs against it.

Part 1 talks to the server with urllib: every API streams valid SSE, text comes
in several deltas that split the completion tag, tool-call turns then done
turns, the error shapes, the 429 gate that opens after its reset, the request
log.  No CLI is needed.

Part 2 (marked ``realcli``) runs each installed real CLI headless in a PTY via
pexpect, as seqharness does, inside a loopback-only network namespace when
possible, against the server: a tool call that writes a file then says done, a
halt, an HTTP 401, a 429 that resets after 3 s, and the completion tag only in
a tool's output.  ``SEQHARNESS_RECORD_STREAMS=1`` writes each raw PTY output to
fixtures/streams/<cli>-<scenario>.txt.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from realcli_kit import (  # this folder's helpers (not a package: on sys.path)
    PINNED,
    SERVER_SCRIPT,
    TIMINGS,
    CliHome,
    PtyRun,
    installed_version,
    load_server_module,
    need_cli,
    record_stream,
    run_in_pty,
)

fms = load_server_module()
DONE = fms.DONE_TAG
HALT = fms.HALT_TAG


# --------------------------------------------------------------------------- HTTP helpers

def post(url: str, body: dict, headers: dict | None = None, timeout: float = 10):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def get(url: str, headers: dict | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def sse(raw: bytes) -> list[tuple[str | None, object]]:
    """Parse an SSE body strictly: each event is optional ``event:`` + one ``data:`` line."""
    text = raw.decode()
    assert text.endswith("\n\n"), "an SSE stream ends with a blank line"
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        name, data = None, None
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            assert field in ("event", "data"), f"unexpected SSE line {line!r}"
            if field == "event":
                name = value
            else:
                assert data is None, "one data line per event"
                data = value if value == "[DONE]" else json.loads(value)
        assert data is not None, f"event without data: {block!r}"
        events.append((name, data))
    return events


def task_prompt(script: str, task_id: str = "1") -> str:
    return (f"Task id: {task_id}\nTask title: Write a file\n\n- [ ] {task_id} Write a file\n"
            f"    - SCRIPT: {script}\n\nRules:\n- When the task is complete, print the "
            f"completion tag {DONE} as the last line of your answer.\n")


SHELL_SCHEMA = {"type": "object", "properties": {"command": {"type": "string"},
                                                 "description": {"type": "string"}},
                "required": ["command", "description"]}


# one request per API: (path, body builder(prompt, tool_results, stream))
def responses_body(prompt, tool_results=0, stream=True):
    inp = [{"type": "message", "role": "developer",
            "content": [{"type": "input_text", "text": "be brief"}]},
           {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": prompt}]}]
    for i in range(tool_results):
        inp += [{"type": "function_call", "call_id": f"c{i}", "name": "exec_command",
                 "arguments": "{}"},
                {"type": "function_call_output", "call_id": f"c{i}", "output": "ok"}]
    return {"model": "gpt-5.5", "stream": stream, "input": inp,
            "tools": [{"type": "function", "name": "exec_command",
                       "parameters": {"type": "object",
                                      "properties": {"cmd": {"type": "string"}},
                                      "required": ["cmd"]}}]}


def anthropic_body(prompt, tool_results=0, stream=True):
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
        {"type": "text", "text": prompt}]}]
    for i in range(tool_results):
        msgs += [{"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}",
                                                    "name": "Bash", "input": {}}]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}",
                                               "content": "ok"}]}]
    return {"model": "claude-opus-4-8", "stream": stream, "max_tokens": 64000,
            "messages": msgs, "tools": [{"name": "Bash", "input_schema": {
                "type": "object", "properties": {"command": {"type": "string"}},
                "required": ["command"]}}]}


def chat_body(prompt, tool_results=0, stream=True):
    msgs = [{"role": "system", "content": "You are opencode."},
            {"role": "user", "content": prompt}]
    for i in range(tool_results):
        msgs += [{"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function",
             "function": {"name": "bash", "arguments": "{}"}}]},
                 {"role": "tool", "tool_call_id": f"c{i}", "content": "ok"}]
    return {"model": "mock-model", "stream": stream,
            "stream_options": {"include_usage": True}, "messages": msgs,
            "tools": [{"type": "function", "function": {"name": "bash",
                                                         "parameters": SHELL_SCHEMA}}]}


def gemini_body(prompt, tool_results=0, stream=True):
    contents = [{"role": "user", "parts": [{"text": "This is the Gemini CLI context."}]},
                {"role": "user", "parts": [{"text": prompt}]}]
    for i in range(tool_results):
        contents += [{"role": "model", "parts": [{"functionCall": {
            "name": "run_shell_command", "args": {}}}]},
                     {"role": "user", "parts": [{"functionResponse": {
                         "name": "run_shell_command", "response": {"output": "ok"}}}]}]
    return {"contents": contents, "tools": [{"functionDeclarations": [
        {"name": "run_shell_command", "parametersJsonSchema": {
            "type": "object", "properties": {"command": {"type": "string"}},
            "required": ["command"]}}]}]}


def gemini_path(stream=True):
    return ("/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse" if stream
            else "/v1beta/models/gemini-3.8-flash:generateContent")


APIS = {
    "responses": ("/v1/responses", responses_body),
    "anthropic": ("/v1/messages?beta=true", anthropic_body),
    "chat": ("/v1/chat/completions", chat_body),
    "gemini": (gemini_path(), gemini_body),
}


def call(server, api: str, script: str, tool_results: int = 0, *, task_id: str = "1"):
    path, builder = APIS[api]
    return post(server.base_url + path, builder(task_prompt(script, task_id), tool_results))


def assemble(api: str, events) -> tuple[str, list[str], list[dict]]:
    """(full text, the text deltas, tool calls {name, args}) from one streamed reply."""
    deltas: list[str] = []
    calls: list[dict] = []
    if api == "responses":
        for name, data in events:
            assert name == data["type"]
            if name == "response.output_text.delta":
                deltas.append(data["delta"])
            elif name == "response.output_item.done" and data["item"]["type"] == "function_call":
                item = data["item"]
                assert item["call_id"] and item["name"]
                calls.append({"name": item["name"], "args": json.loads(item["arguments"])})
    elif api == "anthropic":
        partial: dict[int, str] = {}
        names: dict[int, str] = {}
        for name, data in events:
            assert name == data["type"]
            if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
                names[data["index"]] = data["content_block"]["name"]
                partial[data["index"]] = ""
            elif name == "content_block_delta":
                d = data["delta"]
                if d["type"] == "text_delta":
                    deltas.append(d["text"])
                else:
                    assert d["type"] == "input_json_delta"
                    partial[data["index"]] += d["partial_json"]
        calls = [{"name": names[i], "args": json.loads(partial[i])} for i in sorted(partial)]
    elif api == "chat":
        args: dict[int, list[str]] = {}
        names = {}
        for _, data in events:
            if data == "[DONE]":
                continue
            assert data["object"] == "chat.completion.chunk"
            for choice in data["choices"]:
                delta = choice["delta"]
                if delta.get("content"):
                    deltas.append(delta["content"])
                for tc in delta.get("tool_calls") or []:
                    if "id" in tc:
                        names[tc["index"]] = tc["function"]["name"]
                    args.setdefault(tc["index"], []).append(tc["function"].get("arguments", ""))
        calls = [{"name": names[i], "args": json.loads("".join(args[i]))} for i in sorted(args)]
    else:
        for _, data in events:
            for part in data["candidates"][0]["content"]["parts"]:
                if "text" in part:
                    deltas.append(part["text"])
                if "functionCall" in part:
                    calls.append({"name": part["functionCall"]["name"],
                                  "args": part["functionCall"]["args"]})
    return "".join(deltas), deltas, calls


# =========================================================================== Part 1: server

@pytest.mark.parametrize("api", list(APIS))
def test_done_streams_the_tag_split_across_several_deltas(fake_server, api):
    status, headers, raw = call(fake_server, api, "done Finished the work.")
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    events = sse(raw)
    text, deltas, calls = assemble(api, events)
    assert text == "Finished the work.\n" + DONE
    assert not calls
    assert len(deltas) >= 4
    assert not any(DONE in d for d in deltas), "no single delta holds the whole tag"
    # the API's framing
    if api == "responses":
        kinds = [n for n, _ in events]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert "response.output_item.added" in kinds and "response.output_item.done" in kinds
        assert events[-1][1]["response"]["usage"]["output_tokens"] > 0
    elif api == "anthropic":
        kinds = [n for n, _ in events]
        assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
        assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    elif api == "chat":
        assert events[-1][1] == "[DONE]"
        assert events[-2][1]["usage"]["total_tokens"] > 0 and events[-2][1]["choices"] == []
        assert events[-3][1]["choices"][0]["finish_reason"] == "stop"
    else:
        assert events[-1][1]["candidates"][0]["finishReason"] == "STOP"
        assert events[-1][1]["usageMetadata"]["totalTokenCount"] > 0


@pytest.mark.parametrize("api,tool,key", [("responses", "exec_command", "cmd"),
                                          ("anthropic", "Bash", "command"),
                                          ("chat", "bash", "command"),
                                          ("gemini", "run_shell_command", "command")])
def test_tool_write_is_a_tool_call_then_done(fake_server, api, tool, key, tmp_path):
    script = "tool-write 'notes dir/out.txt' \"it's \\\"quoted\\\" text\" then done Wrote it."
    status, _, raw = call(fake_server, api, script)
    assert status == 200
    text, _, calls = assemble(api, sse(raw))
    assert DONE not in text
    assert [c["name"] for c in calls] == [tool]
    args = calls[0]["args"]
    if api == "chat":   # opencode's schema requires a description too
        assert args["description"] == "Write notes dir/out.txt"
    # the command really writes the file when a shell runs it
    (tmp_path / "notes dir").mkdir()
    subprocess.run(["bash", "-c", args[key]], cwd=tmp_path, check=True, timeout=10)
    assert (tmp_path / "notes dir" / "out.txt").read_text() == "it's \"quoted\" text\n"
    # the request that carries the tool result gets the final answer
    status, _, raw = call(fake_server, api, script, tool_results=1)
    text, _, calls = assemble(api, sse(raw))
    assert (text, calls) == ("Wrote it.\n" + DONE, [])
    assert [(r["turn"], r["tool_results"]) for r in fake_server.requests()] == [(0, 0), (1, 1)]


def test_anthropic_tool_turn_stops_for_tool_use(fake_server):
    _, _, raw = call(fake_server, "anthropic", "tool-write a.txt x then done")
    events = sse(raw)
    assert [d["delta"]["stop_reason"] for n, d in events if n == "message_delta"] == ["tool_use"]
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["text", "tool_use"]


def test_chat_tool_turn_finishes_with_tool_calls(fake_server):
    _, _, raw = call(fake_server, "chat", "tool-write a.txt x then done")
    finishes = [c["finish_reason"] for _, d in sse(raw) if d != "[DONE]"
                for c in d["choices"] if c["finish_reason"]]
    assert finishes == ["tool_calls"]


@pytest.mark.parametrize("api", list(APIS))
def test_halt_asks_a_question_and_halts(fake_server, api):
    _, _, raw = call(fake_server, api, "halt Use PostgreSQL or SQLite?")
    text, _, _ = assemble(api, sse(raw))
    assert text == "Use PostgreSQL or SQLite?\n" + HALT


@pytest.mark.parametrize("api", list(APIS))
def test_tag_only_in_tool_output(fake_server, api):
    script = "say-done-in-tool-output-only"
    _, _, raw = call(fake_server, api, script)
    text, _, calls = assemble(api, sse(raw))
    assert len(calls) == 1 and DONE not in text
    cmd = next(iter(v for k, v in calls[0]["args"].items() if k in ("cmd", "command")))
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=10,
                         check=True).stdout
    assert out == DONE + "\n"
    _, _, raw = call(fake_server, api, script, tool_results=1)
    text, _, calls = assemble(api, sse(raw))
    assert calls == [] and DONE not in text and "not done" in text


def test_several_tool_steps_run_in_turn_order(fake_server):
    script = "tool-write a.txt 1 then tool-write b.txt 2 then halt Now what?"
    names = []
    for turn in range(4):
        _, _, raw = call(fake_server, "chat", script, tool_results=turn)
        text, _, calls = assemble("chat", sse(raw))
        names.append(calls[0]["args"]["command"] if calls else text)
    assert "a.txt" in names[0] and "b.txt" in names[1]
    assert names[2] == names[3] == "Now what?\n" + HALT


def test_without_tools_tool_write_becomes_a_whole_file_edit(fake_server):
    """aider offers no tools: every write is a whole-file block, then the final words."""
    body = chat_body(task_prompt("tool-write src/app.py print(1) then done Edited."))
    del body["tools"]
    status, _, raw = post(fake_server.base_url + "/v1/chat/completions", body)
    text, _, calls = assemble("chat", sse(raw))
    assert status == 200 and calls == []
    assert text == "src/app.py\n```\nprint(1)\n```\n\nEdited.\n" + DONE
    assert fake_server.requests()[0]["tools"] is False


@pytest.mark.parametrize("api", list(APIS))
def test_non_streamed_requests_get_one_json_document(fake_server, api):
    path, builder = APIS[api]
    if api == "gemini":
        path = gemini_path(stream=False)
    status, headers, raw = post(fake_server.base_url + path,
                                builder(task_prompt("done"), 0, False))
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(raw)
    text = {"responses": lambda d: d["output"][0]["content"][0]["text"],
            "anthropic": lambda d: d["content"][0]["text"],
            "chat": lambda d: d["choices"][0]["message"]["content"],
            "gemini": lambda d: d["candidates"][0]["content"]["parts"][0]["text"]}[api](doc)
    assert text == "All done.\n" + DONE


# ---- side calls

def test_claude_session_title_request_gets_json(fake_server):
    body = {"model": "claude-haiku", "stream": True, "max_tokens": 512,
            "system": [{"type": "text", "text": "Generate a session title."}],
            "messages": [{"role": "user", "content": task_prompt("tool-write a.txt x")}],
            "output_config": {"format": {"type": "json_schema", "schema": {
                "type": "object", "properties": {"title": {"type": "string"}},
                "required": ["title"], "additionalProperties": False}}}}
    status, _, raw = post(fake_server.base_url + "/v1/messages?beta=true", body)
    text, _, calls = assemble("anthropic", sse(raw))
    assert status == 200 and calls == []
    assert json.loads(text) == {"title": "Fake title"}
    assert fake_server.requests()[-1]["kind"] == "json-side"
    status, _, raw = post(fake_server.base_url + "/v1/messages/count_tokens?beta=true",
                          {"model": "m", "messages": []})
    assert status == 200 and json.loads(raw)["input_tokens"] > 0


def test_gemini_router_call_gets_valid_json(fake_server):
    body = {"contents": [{"role": "user", "parts": [{"text": task_prompt("done")}]}],
            "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {
                "type": "object", "properties": {
                    "complexity_reasoning": {"type": "string"},
                    "complexity_score": {"type": "integer", "minimum": 1, "maximum": 100}},
                "required": ["complexity_reasoning", "complexity_score"]}}}
    status, _, raw = post(fake_server.base_url +
                          "/v1beta/models/gemini-3.5-flash-lite:generateContent", body)
    answer = json.loads(json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"])
    assert status == 200
    assert isinstance(answer["complexity_reasoning"], str)
    assert answer["complexity_score"] == 50
    # the OpenAPI-subset form (responseSchema with upper-case types) and enums
    body["generationConfig"] = {"responseMimeType": "application/json", "responseSchema": {
        "type": "OBJECT", "properties": {"next_speaker": {"type": "STRING",
                                                          "enum": ["user", "model"]}}}}
    _, _, raw = post(fake_server.base_url + "/v1beta/models/x:generateContent", body)
    answer = json.loads(json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"])
    assert answer == {"next_speaker": "user"}
    status, _, raw = post(fake_server.base_url + "/v1beta/models/x:countTokens", body)
    assert status == 200 and json.loads(raw)["totalTokens"] > 0


def test_opencode_title_request_gets_a_title(fake_server):
    body = {"model": "mock-model", "stream": True, "messages": [
        {"role": "system", "content": "You are a title generator. You output ONLY a thread title."},
        {"role": "user", "content": task_prompt("tool-write a.txt x then done")}]}
    _, _, raw = post(fake_server.base_url + "/v1/chat/completions", body)
    text, _, calls = assemble("chat", sse(raw))
    assert (text, calls) == ("Fake task title", [])
    assert fake_server.requests()[-1]["kind"] == "title"


def test_assignment_request_gets_the_scripted_json(fake_server):
    prompt = ("Classify the task below. Answer with JSON only: "
              '{"type": "code|ui|review", "owner": "..."}\n\n'
              + task_prompt("done") + 'ASSIGN: {"type": "ui", "owner": "gemini"}\n')
    _, _, raw = post(fake_server.base_url + "/v1/responses", responses_body(prompt))
    text, _, calls = assemble("responses", sse(raw))
    assert json.loads(text) == {"type": "ui", "owner": "gemini"} and calls == []
    _, _, raw = post(fake_server.base_url + "/v1/responses",
                     responses_body("Classify this task and reply in JSON: write docs"))
    assert json.loads(assemble("responses", sse(raw))[0])["type"] == "code"
    assert [r["kind"] for r in fake_server.requests()] == ["assign", "assign"]


def test_assignment_reads_the_named_tasks_file_like_an_agent(fake_server, tmp_path):
    tasks = tmp_path / ".kiro" / "specs" / "demo" / "tasks.md"
    tasks.parent.mkdir(parents=True)
    tasks.write_text("# Tasks\n"
                     "- [ ] 1. Build the API\n"
                     '  - ASSIGN: {"type": "code", "owner": "claude"}\n'
                     "- [ ] 2. Style the page\n"
                     "  - SCRIPT: done\n"
                     "  - [ ] 2.1 Colours\n"
                     '    - ASSIGN: {"type": "ui", "owner": "gemini"}\n')
    answers = {}
    for task in ("1", "2", "2.1"):
        prompt = (f"Read {tasks} and find task {task}: Some title\n"
                  "Classify that task and choose the agent best suited to it.\n"
                  "Answer with one line of JSON and nothing else.")
        _, _, raw = post(fake_server.base_url + "/v1/chat/completions", chat_body(prompt))
        answers[task] = json.loads(assemble("chat", sse(raw))[0])
    assert answers["1"] == {"type": "code", "owner": "claude"}
    assert answers["2"]["owner"] == "codex"          # its own block has no ASSIGN line
    assert answers["2.1"] == {"type": "ui", "owner": "gemini"}
    assert {r["kind"] for r in fake_server.requests()} == {"assign"}


def test_get_probes_are_answered_harmlessly(fake_server):
    status, raw = get(fake_server.base_url + "/v1/models")
    assert status == 200 and json.loads(raw)["data"][0]["id"]
    status, raw = get(fake_server.base_url + "/v1beta/models")
    assert status == 200 and json.loads(raw)["models"]
    assert get(fake_server.base_url + "/")[0] == 200
    # a WebSocket attempt is refused at once, so a client falls back to HTTP
    status, _ = get(fake_server.base_url + "/v1/responses",
                    {"Upgrade": "websocket", "Connection": "Upgrade"})
    assert status == 404
    status, _, _ = post(fake_server.base_url + "/v2/nothing", {})
    assert status == 404


# ---- errors

@pytest.mark.parametrize("api", list(APIS))
def test_http_401_has_the_api_error_shape(fake_server, api):
    status, headers, raw = call(fake_server, api, "http-401")
    assert status == 401 and headers["Content-Type"] == "application/json"
    body = json.loads(raw)
    if api == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    elif api in ("responses", "chat"):
        assert body["error"]["code"] == "invalid_api_key"
        assert body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["code"] == 401 and body["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("api", list(APIS))
def test_http_429_has_retry_after_and_the_api_reset_fields(fake_server, api):
    before = time.time()
    status, headers, raw = call(fake_server, api, "http-429 reset-in 30")
    body = json.loads(raw)
    assert status == 429
    assert 29 <= int(headers["retry-after"]) <= 30
    if api == "anthropic":
        assert body["error"]["type"] == "rate_limit_error"
        assert headers["anthropic-ratelimit-unified-status"] == "rejected"
        reset = int(headers["anthropic-ratelimit-unified-reset"])
        assert before + 29 <= reset <= before + 32
    elif api in ("responses", "chat"):
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert headers["x-ratelimit-reset-requests"] in ("29s", "30s")
    else:
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
        delays = [d["retryDelay"] for d in body["error"]["details"] if "retryDelay" in d]
        assert delays in (["29s"], ["30s"])


def test_codex_usage_limit_variant(fake_server):
    status, _, raw = call(fake_server, "responses", "http-429 reset-in 120 usage-limit")
    err = json.loads(raw)["error"]
    assert status == 429 and err["type"] == "usage_limit_reached"
    assert 119 <= err["resets_in_seconds"] <= 120
    assert abs(err["resets_at"] - (time.time() + 120)) < 3


@pytest.mark.parametrize("api", list(APIS))
def test_429_reset_in_turns_into_success_after_the_reset(fake_server, api):
    script = "http-429 reset-in 0.8 then tool-write f.txt x then done"
    start = time.monotonic()
    assert call(fake_server, api, script)[0] == 429
    assert call(fake_server, api, script)[0] == 429          # still before the reset
    assert call(fake_server, api, script, task_id="2")[0] == 429   # its own clock
    time.sleep(max(0.0, 0.9 - (time.monotonic() - start)))
    status, _, raw = call(fake_server, api, script)
    assert status == 200
    _, _, calls = assemble(api, sse(raw))
    assert len(calls) == 1                                   # the steps after the gate
    status, _, raw = call(fake_server, api, script, tool_results=1)
    assert assemble(api, sse(raw))[0].endswith(DONE)
    assert [r["status"] for r in fake_server.requests()] == [429, 429, 429, 200, 200]


def test_permanent_errors_stay(fake_server):
    for _ in range(2):
        assert call(fake_server, "chat", "http-500")[0] == 500
        assert call(fake_server, "anthropic", "http-529")[0] == 529


# ---- log, timing, script grammar, entry points

def test_request_log_has_one_line_per_request(fake_server):
    call(fake_server, "anthropic", "tool-write a.txt x then done")
    call(fake_server, "anthropic", "tool-write a.txt x then done", tool_results=1)
    call(fake_server, "gemini", "http-401")
    get(fake_server.base_url + "/v1/models")
    lines = fake_server.log_path.read_text().splitlines()
    assert len(lines) == 4
    recs = [json.loads(line) for line in lines]
    first = recs[0]
    assert set(first) >= {"time", "method", "path", "api", "kind", "model", "tools",
                          "user_text", "script", "turn", "status"}
    assert first["method"] == "POST" and first["path"] == "/v1/messages?beta=true"
    assert (first["api"], first["kind"], first["model"]) == ("anthropic", "main",
                                                             "claude-opus-4-8")
    assert first["tools"] is True and first["script"] == "tool-write a.txt x then done"
    assert first["user_text"].startswith("Task id: 1\n")     # system-reminder removed
    assert len(first["user_text"]) <= 200
    assert recs[1]["turn"] == 1 and recs[2]["status"] == 401 and recs[2]["api"] == "gemini"
    assert recs[3]["method"] == "GET" and recs[3]["kind"] == "probe"
    assert abs(first["time"] - time.time()) < 60


def test_sleep_step_delays_the_answer(fake_server):
    start = time.monotonic()
    status, _, raw = call(fake_server, "chat", "sleep 0.4 then done")
    assert status == 200 and time.monotonic() - start >= 0.4
    assert assemble("chat", sse(raw))[0].endswith(DONE)


def test_hang_sends_headers_then_nothing(fake_server):
    path, builder = APIS["chat"]
    conn = http.client.HTTPConnection("127.0.0.1", fake_server.port, timeout=5)
    try:
        conn.request("POST", path, body=json.dumps(builder(task_prompt("hang"))),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        conn.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            resp.read(1)
    finally:
        conn.close()


@pytest.mark.parametrize("source,turns,gate", [
    ("done", [("done", [])], None),
    ("tool-write a.txt hello world then done Fine.",
     [("tool-write", ["a.txt", "hello", "world"]), ("done", ["Fine."])], None),
    ("tool-write 'my file.txt' \"two words\" then halt", [("tool-write", ["my file.txt",
                                                                      "two words"]),
                                                         ("halt", [])], None),
    ("http-429 reset-in 3", [("done", [])], ("http-429", ["reset-in", "3"])),
    ("http-401 then done", [("done", [])], ("http-401", [])),
    ("say it's \"open", [("say", ["it's", "open"])], None),   # unbalanced quote tolerated
    ('halt"', [("halt", [])], None),                          # opencode's trailing quote
    ("say-done-in-tool-output-only", [("tool-echo", [DONE]),
                                      ("say", ["The command printed the tag;",
                                               "the task itself is not done."])], None),
])
def test_script_grammar(source, turns, gate):
    script = fms.parse_script(source)
    assert [(s.verb, s.args) for _, s in script.turns] == turns
    assert (None if script.gate is None else (script.gate.verb, script.gate.args)) == gate


def test_directive_is_found_inside_a_task_detail_line():
    assert fms.find_directive("intro\n  - SCRIPT: halt Why?\nmore") == "halt Why?"
    assert fms.find_directive("no directive here") is None
    script = fms.parse_script("sleep 1.5 then hang")
    assert script.hang and script.turns[0][0] == 1.5


def test_fill_schema_handles_the_usual_shapes():
    schema = {"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "integer", "minimum": 60},
        "c": {"type": "boolean"}, "d": {"type": "array", "items": {"type": "string"},
                                        "minItems": 1},
        "e": {"anyOf": [{"type": "number", "maximum": 10}, {"type": "null"}]},
        "f": {"type": ["null", "string"]}, "g": {"const": 7}}}
    assert fms.fill_schema(schema) == {"a": "Fake a", "b": 60, "c": False, "d": ["Fake d"],
                                       "e": 10.0, "f": "Fake f", "g": 7}


def test_command_line_entry_point(tmp_path):
    port_file, log = tmp_path / "port", tmp_path / "log.jsonl"
    proc = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), "--port", "0", "--port-file",
                             str(port_file), "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.02)
        port = int(port_file.read_text())
        assert proc.stdout.readline().strip() == (
            f"fake_model_server listening on http://127.0.0.1:{port}")
        status, _, raw = post(f"http://127.0.0.1:{port}/v1/chat/completions",
                              chat_body(task_prompt("done")))
        assert status == 200 and assemble("chat", sse(raw))[0].endswith(DONE)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        proc.stdout.close()
        proc.stderr.close()
    assert json.loads(log.read_text())["status"] == 200


# =========================================================================== Part 2: real CLIs

SCENARIOS = {
    "tool-write": "tool-write hello.txt hello from {cli} then done Wrote hello.txt.",
    "halt": "halt Should the table live in PostgreSQL or SQLite?",
    "http-401": "http-401",
    "http-429": "http-429 reset-in 3 then done Done after the limit reset.",
    "tool-output-tag": "say-done-in-tool-output-only",
}
# exit status of each CLI for http-401 (gemini: the HTTP status modulo 256)
EXIT_401 = {"codex": 1, "claude": 1, "opencode": 1, "gemini": 145, "aider": 0}
# who retries a short 429 by itself (honouring retry-after) and then succeeds
RETRIES_429 = {"codex": False, "claude": False, "opencode": True, "gemini": True, "aider": True}
RUN_TIMEOUT = 90


def cli_prompt(script: str) -> str:
    """A prompt shaped like seqharness's own (prompt.py), with the script in the details."""
    return ("You are implementing one task of the Kiro spec \"realcli\".\n"
            "\n"
            "Task id: 1\n"
            "Task title: Write the greeting file\n"
            "\n"
            "The task as written in tasks.md (checked boxes are already done):\n"
            "- [ ] 1 Write the greeting file\n"
            f"    - SCRIPT: {script}\n"
            "\n"
            "Rules:\n"
            "- Work on this task and its subtasks only; do not start other tasks.\n"
            f"- When the task is complete, print the completion tag {DONE} as the last "
            "line of your answer.\n"
            "- If you cannot continue without a human decision, explain what you need and "
            f"then print {HALT} on a line of its own.\n")


def assistant_text(cli: str, run: PtyRun) -> str:
    """The model's own words as each CLI's stream reports them (deltas assembled)."""
    if cli == "aider":   # plain text: the reply sits between the banner and "Tokens: ..."
        lines = run.lines()
        start = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("Repo-map:")), 0)
        end = max((i for i, ln in enumerate(lines) if ln.startswith("Tokens: ")),
                  default=len(lines))
        return "\n".join(lines[start:end]).strip() + "\n"
    parts: list[str] = []
    for ev in run.json_lines():
        typ = ev.get("type")
        if cli == "codex" and typ == "item.completed" and \
                ev["item"].get("type") == "agent_message":
            parts.append(ev["item"]["text"] + "\n")
        elif cli == "claude" and typ == "assistant":
            parts += [b["text"] + "\n" for b in ev["message"]["content"] if b["type"] == "text"]
        elif cli == "opencode" and typ == "text":
            parts.append(ev["part"]["text"] + "\n")
        elif cli == "gemini" and typ == "message" and ev.get("role") == "assistant":
            parts.append(ev["content"])
    return "".join(parts)


def check_json_stream_is_clean(cli: str, run: PtyRun) -> None:
    """On a PTY, every JSON event is a whole line with no escape codes in or before it."""
    if cli == "aider":
        assert "\x1b[" not in run.text, "aider --no-pretty printed escape codes"
        return
    events = run.json_lines()
    assert events, run.describe()
    for line in run.lines():
        if '{"type"' in line:
            assert line.startswith("{") and line.rstrip().endswith("}"), (
                f"{cli}: JSON event line is not clean on a TTY: {line[:200]!r}")
            json.loads(line)
    if cli in ("codex", "opencode"):   # stdout carries nothing else
        stray = [ln for ln in run.lines() if ln.strip() and not ln.startswith("{")]
        assert stray == [], stray


def run_cli(cli: str, cli_home: CliHome, netns, script: str, *, drop: tuple[str, ...] = (),
            timeout: float = RUN_TIMEOUT) -> PtyRun:
    argv = [a for a in cli_home.argv(cli, cli_prompt(script)) if a not in drop]
    run = run_in_pty(netns.wrap(argv), env=cli_home.env(cli), cwd=cli_home.workdir,
                     timeout=timeout)
    TIMINGS.setdefault(cli, []).append(run.seconds)
    assert not run.timed_out, run.describe()
    return run


def record(cli: str, scenario: str, run: PtyRun, cli_home: CliHome, script: str,
           netns) -> None:
    record_stream(f"{cli}-{scenario}", run, {
        "cli": cli, "package": PINNED[cli][0], "version": installed_version(cli),
        "scenario": scenario, "script": script,
        "argv": [cli, *cli_home.argv(cli, "<PROMPT>")[1:]],
        "env": sorted(k for k in cli_home.env(cli) if k not in ("PATH", "HOME", "TMPDIR")),
        "network": "loopback-only namespace" if netns.isolated else "host network",
        "pty": "50x200, stdin/stdout/stderr all the PTY",
    })


def main_requests(server) -> list[dict]:
    return [r for r in server.requests() if r["kind"] == "main"]


CLIS = ["codex", "claude", "opencode", "gemini", "aider"]


@pytest.mark.realcli
@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("cli", CLIS)
def test_real_cli(cli, scenario, cli_paths, cli_home, model_server, netns):
    need_cli(cli_paths, cli)
    if cli == "aider" and scenario == "tool-output-tag":
        pytest.skip("aider has no tools: the tag cannot come from a tool's output")
    script = SCENARIOS[scenario].format(cli=cli)
    run = run_cli(cli, cli_home, netns, script)
    record(cli, scenario, run, cli_home, script, netns)
    check_json_stream_is_clean(cli, run)
    said = assistant_text(cli, run)
    statuses = [r["status"] for r in main_requests(model_server)]

    if scenario == "tool-write":
        assert run.exitstatus == 0, run.describe()
        assert (cli_home.workdir / "hello.txt").read_text() == f"hello from {cli}\n"
        assert said.rstrip().endswith(DONE), run.describe()
        turns = [r["turn"] for r in main_requests(model_server)]
        assert turns == ([0] if cli == "aider" else [0, 1]), model_server.requests()
    elif scenario == "halt":
        assert run.exitstatus == 0, run.describe()
        assert said.rstrip().endswith(HALT) and DONE not in said, run.describe()
        assert "PostgreSQL or SQLite?" in said
    elif scenario == "http-401":
        assert run.exitstatus == EXIT_401[cli], run.describe()
        assert statuses and set(statuses) == {401}
        assert DONE not in said
        evidence = {"codex": '"type":"turn.failed"', "claude": '"api_error_status":401',
                    "opencode": '"statusCode":401', "gemini": "UNAUTHENTICATED",
                    "aider": "AuthenticationError"}[cli]
        assert evidence in run.text, run.describe()
    elif scenario == "http-429":
        posts = [r["status"] for r in model_server.requests() if r["method"] == "POST"]
        assert posts[0] == 429        # gemini: its router call is the first one refused
        if RETRIES_429[cli]:
            # the CLI waits for retry-after by itself, then the same request succeeds
            assert run.exitstatus == 0, run.describe()
            assert said.rstrip().endswith(DONE) and statuses[-1] == 200
        else:
            assert run.exitstatus == 1, run.describe()
            assert DONE not in said
            # what seqharness will do: wait for the reset, run the same task again
            first = model_server.requests()[0]["time"]
            time.sleep(max(0.0, first + 3.2 - time.time()))
            again = run_cli(cli, cli_home, netns, script)
            record(cli, "http-429-after-reset", again, cli_home, script, netns)
            assert again.exitstatus == 0, again.describe()
            assert assistant_text(cli, again).rstrip().endswith(DONE)
    elif scenario == "tool-output-tag":
        assert run.exitstatus == 0, run.describe()
        assert DONE not in said, "the tag must only be in the tool's output"
        assert "not done" in said
        assert [r["turn"] for r in main_requests(model_server)] == [0, 1]


@pytest.mark.realcli
def test_claude_without_permission_flag_denies_tools_silently(cli_paths, cli_home,
                                                              model_server, netns):
    """Exit 0 and is_error false, but the tool was denied: only permission_denials says so."""
    need_cli(cli_paths, "claude")
    script = SCENARIOS["tool-write"].format(cli="claude")
    run = run_cli("claude", cli_home, netns, script, drop=("--dangerously-skip-permissions",))
    record("claude", "denied", run, cli_home, script, netns)
    result = [e for e in run.json_lines() if e.get("type") == "result"][-1]
    assert run.exitstatus == 0 and result["is_error"] is False
    assert [d["tool_name"] for d in result["permission_denials"]] == ["Bash"]
    assert not (cli_home.workdir / "hello.txt").exists()
    assert result["result"].endswith(DONE)   # it even claims success


@pytest.mark.realcli
@pytest.mark.parametrize("cli", ["codex", "claude", "gemini"])
def test_long_usage_limit_fails_fast_with_a_reset_time(cli, cli_paths, cli_home,
                                                       model_server, netns):
    """A limit that resets in 2 hours: these three give up at once and say when."""
    need_cli(cli_paths, cli)
    script = "http-429 reset-in 7200 usage-limit"
    run = run_cli(cli, cli_home, netns, script)
    record(cli, "usage-limit", run, cli_home, script, netns)
    assert run.exitstatus == {"codex": 1, "claude": 1, "gemini": 429 % 256}[cli], run.describe()
    evidence = {"codex": "hit your usage limit", "claude": '"api_error_status":429',
                "gemini": "Suggested retry after 7200s"}[cli]
    assert evidence in run.text, run.describe()


@pytest.mark.realcli
def test_codex_exits_on_refused_connection_without_unbounded_retries(cli_paths, cli_home,
                                                                     netns):
    """Default codex loops "Reconnecting..." forever; the seeded feature flag makes it exit 1."""
    need_cli(cli_paths, "codex")
    argv = cli_home.argv("codex", cli_prompt("done"),
                         "-c", "model_providers.mock.base_url=http://127.0.0.1:9/v1")
    run = run_in_pty(netns.wrap(argv), env=cli_home.env("codex"), cwd=cli_home.workdir,
                     timeout=60)
    TIMINGS.setdefault("codex", []).append(run.seconds)
    record("codex", "connection-refused", run, cli_home, "(no server on port 9)", netns)
    assert not run.timed_out and run.exitstatus == 1, run.describe()
    assert '"type":"turn.failed"' in run.text
    assert "Reconnecting" not in run.text


def test_pinned_versions_match_the_install_script():
    text = (Path(__file__).resolve().parents[2] / "scripts" / "install-agent-clis.sh").read_text()
    for cli, (package, version, _) in PINNED.items():
        if cli == "aider":
            assert f'AIDER_VERSION="{version}"' in text
        else:
            assert f'"{package}@{version}"' in text
    assert os.access(SERVER_SCRIPT, os.X_OK)
