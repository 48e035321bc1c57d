"""The notification channels on their own: real processes, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from seqharness.notify import (
    EVENT_ENV,
    EVENTS,
    desktop_argv,
    parse_events,
    payload,
    post_json,
    run_command,
    shown_url,
    url_problem,
)

DATA = {"event": "halt", "spec": "feature", "task": "2", "title": 'say "hi" $(id)'}


class Server:
    """POST /ok answers 200, /slow sleeps 3 s, /moved redirects, /fail answers 500."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/slow":
                    time.sleep(3)
                code = {"/moved": 302, "/fail": 500}.get(self.path, 200)
                self.send_response(code)
                if code == 302:
                    self.send_header("Location", "/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


# -- events and URLs -------------------------------------------------------------------------

def test_parse_events() -> None:
    assert parse_events("halt,failed,finished") == EVENTS
    assert parse_events(" Finished , halt ") == ("halt", "finished")
    for bad in ("halt,done", "", " , "):
        with pytest.raises(pytest.UsageError, match="--notify-on"):
            parse_events(bad)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "https://hooks.example.com/services/T/B/X"])
def test_good_urls(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize("url, why", [
    ("file:///etc/passwd", "only http"), ("ftp://h/x", "only http"), ("javascript:alert(1)", "only http"),
    ("http://", "no host"), ("http://h:99999/", "not a URL"), ("http://h/a b", "spaces"),
    ("http://h/\r\nX-Injected: 1", "control"),
])
def test_bad_urls(url: str, why: str) -> None:
    problem = url_problem(url)
    assert problem is not None and why in problem


# -- the webhook -----------------------------------------------------------------------------

def test_post_json_sends_ascii_json(server: Server) -> None:
    data = {**DATA, "question": "\u00e9\u4e2d \U0001f600 \x00 \\ \""}
    assert post_json(server.url("/ok"), data) is None
    (body,) = server.bodies
    assert body.isascii() and json.loads(body) == data


def test_post_json_errors_are_one_line(server: Server) -> None:
    assert post_json(server.url("/fail"), DATA) == "HTTP 500 Internal Server Error"
    moved = post_json(server.url("/moved"), DATA)
    assert moved is not None and moved.startswith("HTTP 302")
    assert len(server.bodies) == 2  # the redirect was not followed
    start = time.monotonic()
    assert post_json(server.url("/slow"), DATA, timeout=0.5) == "timed out after 0.5s"
    assert time.monotonic() - start < 2.5
    assert post_json("file:///etc/passwd", DATA) == "only http:// and https:// URLs are supported"


# -- the command -----------------------------------------------------------------------------

def test_run_command_gives_stdin_and_env(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    code = (f"import json, os, sys; json.dump({{'stdin': sys.stdin.read(), "
            f"'env': os.environ.get({EVENT_ENV!r}), 'argv': sys.argv[1:], 'cwd': os.getcwd()}}, "
            f"open({str(out)!r}, 'w'))")
    assert run_command([sys.executable, "-c", code, "$(touch pwned)", ";"], DATA, event="halt",
                       cwd=tmp_path) is None
    seen = json.loads(out.read_text())
    assert json.loads(seen["stdin"]) == DATA and seen["env"] == "halt"
    assert seen["argv"] == ["$(touch pwned)", ";"] and seen["cwd"] == str(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_run_command_failures(tmp_path: Path) -> None:
    failing = [sys.executable, "-c", "import sys; print('noise'); sys.stderr.write('x\\nno token\\n'); "
               "sys.exit(3)"]
    assert run_command(failing, DATA, event="failed", cwd=tmp_path) == "exit 3: no token"
    assert run_command([sys.executable, "-c", "raise SystemExit(2)"], DATA, event="failed",
                       cwd=tmp_path) == "exit 2"
    missing = run_command([str(tmp_path / "nope")], DATA, event="failed", cwd=tmp_path)
    assert missing is not None and missing.startswith("cannot run it")
    # A command that ignores its stdin is fine.
    assert run_command(["true"], {"big": "x" * 1_000_000}, event="finished", cwd=tmp_path) is None


def test_a_timeout_ends_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = (f"import subprocess, time; p = subprocess.Popen(['sleep', '60']); "
            f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    start = time.monotonic()
    assert run_command([sys.executable, "-c", code], DATA, event="halt", cwd=tmp_path,
                       timeout=1.0) == "timed out after 1s"
    assert time.monotonic() - start < 5
    child = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the command's child outlived the timeout")


# -- the desktop and the payload -------------------------------------------------------------

def test_desktop_argv_has_no_task_text() -> None:
    argv = desktop_argv("/usr/bin/notify-send", {**DATA, "spec": "-feature"}, "2.1")
    assert argv[0] == "/usr/bin/notify-send" and "--" in argv
    after = argv[argv.index("--") + 1:]
    assert len(after) == 2 and "task 2.1" in after[1]
    assert not any("$(id)" in word or "hi" in word for word in argv)
    assert "--urgency=critical" in argv
    finished = desktop_argv("notify-send", {"event": "finished", "spec": "f", "outcome": "passed",
                                            "counts": {"passed": 3}}, None)
    assert finished[-1].startswith("passed: 3 passed, 0 failed")


def test_payload_keys() -> None:
    spec: Any = SimpleNamespace(name="feature")
    unit: Any = SimpleNamespace(name="2", title="Pick a \x1b[31mdatabase\x1b[0m")
    data = payload("halt", spec, unit, outcome="halted", reason="asked", question="Which?",
                   transcript=Path("t.log"))
    assert set(data) == {"event", "spec", "task", "title", "outcome", "reason", "question", "counts",
                         "transcript", "time", "exitstatus"}
    assert data["title"] == "Pick a database" and Path(data["transcript"]).is_absolute()
    assert data["counts"] is None and data["exitstatus"] is None


def test_shown_url_hides_the_secret_part() -> None:
    assert shown_url("https://hooks.slack.com/services/T0/B0/s3cret") == "https://hooks.slack.com/..."
    assert shown_url("http://user:pw@127.0.0.1:8080/?token=x") == "http://127.0.0.1:8080/..."
    assert shown_url("http://example.com") == "http://example.com"
