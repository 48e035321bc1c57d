"""Notifications (--notify-url, --notify-cmd, --notify-desktop): real runs, a real HTTP server.

A webhook server on 127.0.0.1 (http.server in a thread, port 0) receives what
seqharness POSTs; a command records its stdin and environment in a file; a
fake ``notify-send`` on PATH records its argv.  Nothing is mocked: each test
runs the real ``seqharness`` command on a spec with the fake agent.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from repokit import REPO

from seqharness.testing import SpecProject

KEYS = {"event", "spec", "task", "title", "outcome", "reason", "question", "counts",
        "transcript", "time", "exitstatus"}

HALT_SPEC = """\
- [ ] 1. First task
- [ ] 2. Pick a database
  - fake-agent: halt
- [ ] 3. Never reached
"""

FAIL_SPEC = """\
- [ ] 1. First task
- [ ] 2. Break the build
  - fake-agent: fail
"""


class Webhook:
    """A real HTTP server on 127.0.0.1 that records every POST."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                hook.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "body": body})
                self.send_response(hook.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def recorder(tmp_path: Path, exit_code: int = 0) -> tuple[str, Path]:
    """A --notify-cmd value whose program appends {argv, env, stdin} as a JSON line to a file."""
    script = tmp_path / "record_notification.py"
    log = tmp_path / "notifications.jsonl"
    script.write_text(
        "import json, os, sys\n"
        "data = sys.stdin.read()\n"
        "with open(sys.argv[1], 'a') as fh:\n"
        "    fh.write(json.dumps({'argv': sys.argv[1:], 'event_env': os.environ.get('SEQHARNESS_EVENT'),\n"
        "                         'cwd': os.getcwd(), 'stdin': data}) + '\\n')\n"
        f"raise SystemExit({exit_code})\n")
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {shlex.quote(str(log))}", log


def read_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def notification_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "seqharness: notification" in line]


# -- the webhook -----------------------------------------------------------------------------

def test_a_halt_posts_the_question_then_the_end(project: SpecProject, webhook: Webhook) -> None:
    project.spec("feature", HALT_SPEC)
    res = project.run(".kiro/specs/feature", "--notify-url", webhook.url)
    res.assert_halted("which database")
    events = webhook.events()
    assert [e["event"] for e in events] == ["halt", "finished"], events
    halt, finished = events
    assert set(halt) == KEYS and set(finished) == KEYS
    assert halt["spec"] == "feature" and halt["task"] == "2" and halt["title"] == "Pick a database"
    assert halt["outcome"] == "halted"
    assert "which database should I use" in halt["question"]
    assert halt["transcript"] and Path(halt["transcript"]).is_file()
    assert "T" in halt["time"]
    assert finished["outcome"] == "halted" and finished["exitstatus"] == 2
    assert finished["counts"]["passed"] == 1 and finished["counts"]["halted"] == 1
    assert finished["counts"]["failed"] == 0
    # The end carries the task that stopped the run, for those who only want "finished".
    assert finished["task"] == "2" and "which database" in finished["question"]
    request = webhook.requests[0]
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    assert notification_lines(res.output) == []


def test_a_failed_task_is_notified_once_whatever_its_retries(project: SpecProject,
                                                              webhook: Webhook) -> None:
    project.spec("feature", FAIL_SPEC)
    res = project.run(".kiro/specs/feature", "--notify-url", webhook.url, "--retries", "2")
    res.assert_failed(1)
    assert len(project.agent_calls()) == 4  # task 1, then task 2 three times
    events = webhook.events()
    assert [e["event"] for e in events] == ["failed", "finished"], events
    failed, finished = events
    assert failed["task"] == "2" and failed["title"] == "Break the build"
    assert failed["outcome"] == "failed" and "exited with code 1" in failed["reason"]
    assert failed["question"] is None
    assert failed["transcript"].endswith("-a3.log")
    assert finished["outcome"] == "failed" and finished["exitstatus"] == 1
    assert finished["counts"]["passed"] == 1 and finished["counts"]["failed"] == 1


def test_a_clean_run_posts_only_the_end(project: SpecProject, webhook: Webhook) -> None:
    project.spec("feature", "- [ ] 1. One\n- [ ] 2. Two\n- [ ]* 3. Optional\n")
    res = project.run(".kiro/specs/feature", "--notify-url", webhook.url)
    res.assert_passed()
    (finished,) = webhook.events()
    assert finished["event"] == "finished" and finished["outcome"] == "passed"
    assert finished["exitstatus"] == 0
    assert finished["counts"] == {"passed": 2, "failed": 0, "halted": 0, "skipped": 1, "total": 3}
    assert "2 passed" in finished["reason"]


def test_notify_on_chooses_the_events(project: SpecProject, webhook: Webhook) -> None:
    project.spec("feature", FAIL_SPEC)
    res = project.run(".kiro/specs/feature", "--notify-url", webhook.url, "--notify-on", "failed")
    res.assert_failed(1)
    assert [e["event"] for e in webhook.events()] == ["failed"]


def test_ini_keys(project: SpecProject, webhook: Webhook) -> None:
    project.spec("feature", HALT_SPEC)
    (project.root / "pytest.ini").write_text(
        f"[pytest]\nseqharness_notify_url = {webhook.url}\nseqharness_notify_on = halt\n")
    res = project.run(".kiro/specs/feature")
    res.assert_halted()
    assert [e["event"] for e in webhook.events()] == ["halt"]


def test_task_text_is_json_encoded(project: SpecProject, webhook: Webhook, tmp_path: Path) -> None:
    title = 'Quote "this" \\ and $(touch pwned); `id` \u00e9\u4e2d'
    project.spec("feature", f"- [ ] 1. {title}\n  - fake-agent: fail\n")
    command, log = recorder(tmp_path)
    res = project.run(".kiro/specs/feature", "--notify-url", webhook.url, "--notify-cmd", command)
    res.assert_failed(1)
    assert webhook.events()[0]["title"] == title
    (failed, _finished) = read_log(log)
    assert json.loads(failed["stdin"])["title"] == title
    assert failed["argv"] == [str(log)]  # nothing of the task on the command line
    assert not (project.root / "pwned").exists()


# -- the command -----------------------------------------------------------------------------

def test_the_command_gets_the_event_on_stdin_and_in_its_env(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", HALT_SPEC)
    command, log = recorder(tmp_path)
    res = project.run(".kiro/specs/feature", "--notify-cmd", command)
    res.assert_halted()
    calls = read_log(log)
    assert [c["event_env"] for c in calls] == ["halt", "finished"]
    payloads = [json.loads(c["stdin"]) for c in calls]
    assert [p["event"] for p in payloads] == ["halt", "finished"]
    assert "which database" in payloads[0]["question"]
    assert calls[0]["cwd"] == str(project.root)


def test_a_failing_command_is_said_once_and_changes_nothing(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", HALT_SPEC)
    command, log = recorder(tmp_path, exit_code=3)
    res = project.run(".kiro/specs/feature", "--notify-cmd", command)
    res.assert_halted()
    assert len(read_log(log)) == 2  # tried both times
    lines = notification_lines(res.output)
    assert len(lines) == 1, res.output
    assert "exit 3" in lines[0]


def test_the_command_line_is_not_said_only_its_program(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    command, _log = recorder(tmp_path, exit_code=1)
    res = project.run(".kiro/specs/feature", "--notify-cmd", command + " --token=s3cret")
    res.assert_passed()
    (line,) = notification_lines(res.output)
    assert sys.executable in line and "s3cret" not in line


def test_a_command_that_is_not_there_is_a_usage_error(project: SpecProject, tmp_path: Path) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    res = project.run(".kiro/specs/feature", "--notify-cmd", str(tmp_path / "no-such-program"))
    res.assert_failed(4)
    assert "--notify-cmd" in res.output and "not found" in res.output


# -- failures never stop the run -------------------------------------------------------------

def test_an_unreachable_url_is_said_once_and_the_exit_code_is_unchanged(project: SpecProject) -> None:
    project.spec("feature", HALT_SPEC)
    url = f"http://127.0.0.1:{closed_port()}/hook"
    res = project.run(".kiro/specs/feature", "--notify-url", url)
    res.assert_halted("which database")
    res.assert_outcomes(passed=1, halted=1)
    lines = notification_lines(res.output)
    assert len(lines) == 1, res.output
    assert "refused" in lines[0].lower()
    # Scheme, host and port only: a webhook's path often is its secret, and CI logs are read.
    assert f"http://127.0.0.1:{url.split(':')[2].split('/')[0]}/..." in lines[0]
    assert "/hook" not in lines[0]
    assert project.spec_state("feature")["halted_task"] == "2"


def test_a_server_error_is_said_once(project: SpecProject) -> None:
    hook = Webhook(status=500)
    try:
        project.spec("feature", "- [ ] 1. One\n")
        res = project.run(".kiro/specs/feature", "--notify-url", hook.url)
    finally:
        hook.close()
    res.assert_passed()
    assert len(hook.requests) == 1
    (line,) = notification_lines(res.output)
    assert "500" in line


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1:8080", "http://"])
def test_only_http_and_https_urls(project: SpecProject, url: str) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    res = project.run(".kiro/specs/feature", "--notify-url", url)
    res.assert_failed(4)
    assert "--notify-url" in res.output
    assert project.agent_calls() == []


def test_an_unknown_event_is_a_usage_error(project: SpecProject, webhook: Webhook) -> None:
    project.spec("feature", "- [ ] 1. One\n")
    res = project.run(".kiro/specs/feature", "--notify-url", webhook.url, "--notify-on", "halt,done")
    res.assert_failed(4)
    assert "--notify-on" in res.output and "'done'" in res.output


def test_the_plugin_can_be_turned_off(project: SpecProject, webhook: Webhook) -> None:
    project.spec("feature", HALT_SPEC)
    (project.root / "pytest.ini").write_text(f"[pytest]\nseqharness_notify_url = {webhook.url}\n")
    res = project.run(".kiro/specs/feature", "-p", "no:seqharness.notify")
    res.assert_halted()
    assert webhook.requests == []


# -- the desktop -----------------------------------------------------------------------------

def _path_with(folder: Path) -> str:
    return os.pathsep.join([str(folder), str(Path(sys.executable).parent)])


def test_desktop_notifications_use_notify_send_without_task_text(project: SpecProject,
                                                                  tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "notify-send.jsonl"
    fake = bin_dir / "notify-send"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(0o755)
    project.spec("feature", "- [ ] 1. --help $(touch pwned)\n  - fake-agent: halt\n")
    res = project.run(".kiro/specs/feature", "--notify-desktop", env={"PATH": _path_with(bin_dir)})
    res.assert_halted()
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 2
    for argv in calls:
        assert "--" in argv
        assert not any("pwned" in word or "help" in word for word in argv)
    assert "halt" in " ".join(calls[0]) and "feature" in " ".join(calls[0])
    assert notification_lines(res.output) == []


def test_without_notify_send_desktop_is_skipped_with_one_line(project: SpecProject, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    project.spec("feature", HALT_SPEC)
    res = project.run(".kiro/specs/feature", "--notify-desktop", env={"PATH": _path_with(empty)})
    res.assert_halted()
    lines = [line for line in res.output.splitlines() if "notify-send" in line]
    assert len(lines) == 1 and "not found" in lines[0], res.output


# -- the template ----------------------------------------------------------------------------

def test_the_notify_template_posts_a_halt(project: SpecProject, webhook: Webhook) -> None:
    text = (REPO / "conftest_templates" / "notify.py").read_text()
    old = 'WEBHOOK_URL = os.environ.get("SEQHARNESS_WEBHOOK_URL", "")'
    assert old in text
    project.conftest(text.replace(old, f"WEBHOOK_URL = {webhook.url!r}"))
    project.spec("feature", HALT_SPEC)
    res = project.run(".kiro/specs/feature")
    res.assert_halted()
    (request,) = webhook.requests
    message = json.loads(request["body"])
    assert set(message) == {"text"}
    assert "task 2" in message["text"] and "Pick a database" in message["text"]
    assert "which database should I use" in message["text"]


def test_the_notify_template_does_nothing_without_a_url(project: SpecProject) -> None:
    project.conftest(REPO / "conftest_templates" / "notify.py")
    project.spec("feature", HALT_SPEC)
    res = project.run(".kiro/specs/feature", env={"SEQHARNESS_WEBHOOK_URL": None})
    res.assert_halted()
    assert notification_lines(res.output) == []
