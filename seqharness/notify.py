"""Notifications: tell someone when a run halts, when a task fails, and when a spec ends.

An unattended run that stops for a question waits until someone looks; this
plugin (``seqharness.notify``) tells them.  Three events:

* ``halt``: a task halted (``pytest_seqharness_halt``): the agent's question;
* ``failed``: a task failed for good, once per task whatever its retries
  (its final result, read from pytest's report of the task);
* ``finished``: a spec's run ended (``pytest_seqharness_spec_finish``): counts
  and the run's exit status.

Each is one JSON object (:func:`payload`) sent to every channel asked for:
``--notify-cmd CMD`` (split like a shell would, never run by one; the JSON on
its stdin, ``SEQHARNESS_EVENT`` in its environment), ``--notify-url URL``
(an HTTP POST, http and https only) and ``--notify-desktop`` (``notify-send``,
when it is on PATH).  Task text is untrusted: it only ever travels JSON-encoded,
never on a command line.  ``--notify-on`` picks the events.  A notification
that fails (unreachable, an error status, a non-zero exit, a timeout) is
reported in one line, once per channel, and never stops or fails the run.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Generator, Mapping
from contextlib import AbstractContextManager, nullcontext
from email.message import Message
from http.client import HTTPException
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from seqharness.collect import TaskItem
from seqharness.errors import EXIT_FAILED, EXIT_HALTED, EXIT_USAGE
from seqharness.harness import RunPlugin
from seqharness.options import option_group
from seqharness.outcome import FAILED, HALTED
from seqharness.reporting import clean_text

if TYPE_CHECKING:
    from seqharness.attempt import Attempt
    from seqharness.harness import SpecRun
    from seqharness.outcome import Outcome
    from seqharness.units import Unit

EVENTS = ("halt", "failed", "finished")
EVENT_ENV = "SEQHARNESS_EVENT"
TIMEOUT = 10.0              # seconds one notification may take, per channel
ERROR_TAIL = 2048           # bytes of a failing command's stderr kept for its one line
DESKTOP = "notify-send"


# -- the payload -----------------------------------------------------------------------------

def now() -> str:
    """The local time with its offset, ISO 8601 (``2025-01-31T14:02:07+01:00``)."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def payload(event: str, spec: SpecRun, unit: Unit | None = None, *, outcome: str, reason: str,
            question: str | None = None, counts: Mapping[str, int] | None = None,
            transcript: Path | None = None, exitstatus: int | None = None) -> dict[str, Any]:
    """The JSON object of one notification; every key is always there (null when it does not apply)."""
    return {
        "event": event,
        "spec": spec.name,
        "task": unit.name if unit is not None else None,
        "title": clean_text(unit.title) if unit is not None else None,
        "outcome": outcome,
        "reason": reason,
        "question": question,
        "counts": dict(counts) if counts is not None else None,
        "transcript": str(transcript.absolute()) if transcript is not None else None,
        "time": now(),
        "exitstatus": exitstatus,
    }


def encode(data: Mapping[str, Any]) -> bytes:
    """JSON, ASCII-only (every other character escaped), so no receiver can misread it."""
    return json.dumps(data, ensure_ascii=True).encode("ascii")


# -- the channels ----------------------------------------------------------------------------

def parse_events(text: str) -> tuple[str, ...]:
    """``"halt,failed"`` -> ``("halt", "failed")``; an unknown name is a usage error."""
    names = [word.strip().lower() for word in text.split(",") if word.strip()]
    unknown = [name for name in names if name not in EVENTS]
    if unknown or not names:
        what = f"unknown event {unknown[0]!r}" if unknown else "no event named"
        raise pytest.UsageError(f"--notify-on {text!r}: {what}; use a comma-separated list "
                                f"of {', '.join(EVENTS)}")
    return tuple(name for name in EVENTS if name in names)


def url_problem(url: str) -> str | None:
    """Why *url* is not an http(s) URL to POST to, or None."""
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in url):
        return "the URL contains spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return "only http:// and https:// URLs are supported"
    if not parts.hostname:
        return "the URL names no host"
    return None


def shown_url(url: str) -> str:
    """*url* as said in a message: scheme, host and port only (a webhook's path or
    query often holds its secret, and messages end up in CI logs)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(the URL)"
    rest = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{rest}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook answers; it does not send the POST elsewhere (a redirect is reported)."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Message, newurl: str) -> urllib.request.Request | None:
        return None


def post_json(url: str, data: Mapping[str, Any], *, timeout: float = TIMEOUT) -> str | None:
    """POST *data* as JSON to *url*; None when the server answered 2xx, else why not (one line)."""
    problem = url_problem(url)
    if problem is not None:
        return problem
    request = urllib.request.Request(url, data=encode(data), method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "seqharness-notify"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}".rstrip()
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return f"timed out after {timeout:g}s"
        if isinstance(reason, OSError):
            return reason.strerror or str(reason)
        return str(reason)
    except TimeoutError:
        return f"timed out after {timeout:g}s"
    except (OSError, HTTPException, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def run_command(argv: list[str], data: Mapping[str, Any], *, event: str, cwd: Path,
                timeout: float = TIMEOUT) -> str | None:
    """Run *argv* (no shell) with the JSON on its stdin and ``SEQHARNESS_EVENT=event``;
    None when it exited 0, else why not (one line).  A timeout ends its whole group."""
    env = dict(os.environ)
    env[EVENT_ENV] = event
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
        except OSError as exc:
            return f"cannot run it: {exc.strerror or exc}"
        try:
            proc.communicate(encode(data), timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return f"timed out after {timeout:g}s"
        if proc.returncode == 0:
            return None
        size = errors.seek(0, os.SEEK_END)
        errors.seek(max(0, size - ERROR_TAIL))
        lines = clean_text(errors.read().decode("utf-8", "replace")).strip().splitlines()
    code = proc.returncode
    why = f"exit {code}" if code > 0 else f"killed by signal {-code}"
    return f"{why}: {lines[-1].strip()[:200]}" if lines else why


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def desktop_argv(program: str, data: Mapping[str, Any], task_id: str | None) -> list[str]:
    """``notify-send`` arguments for *data*: the spec's name, the event and the task's id
    (``2.1``, ``T003``: digits, dots, a letter), never its title or the agent's question
    (untrusted text)."""
    event = data["event"]
    spec = " ".join(clean_text(str(data["spec"])).split())[:80]
    which = f"task {task_id}" if task_id else "a task"
    if event == "halt":
        summary, body, urgency = f"seqharness: {spec} halted", f"{which} needs a human", "critical"
    elif event == "failed":
        summary, body, urgency = f"seqharness: {spec}: a task failed", f"{which} failed", "normal"
    else:
        summary, urgency = f"seqharness: {spec} finished", "normal"
        counts = data.get("counts") or {}
        body = (f"{data['outcome']}: {counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
                f"{counts.get('halted', 0)} halted, {counts.get('skipped', 0)} skipped")
    return [program, "--app-name=seqharness", f"--urgency={urgency}", "--", summary, body]


# -- the plugin ------------------------------------------------------------------------------

class Notifier(RunPlugin):
    """Plugin ``seqharness.notify``."""

    def pytest_addoption(self, parser: pytest.Parser) -> None:
        # The description as seqharness.options gives it: whichever plugin asks first names the group.
        group = option_group(parser)
        group.addoption("--notify-cmd", dest="sh_notify_cmd", default=None, metavar="CMD",
                        help="run CMD on each event (split like a shell, never run by one): the event "
                             "as JSON on its stdin, SEQHARNESS_EVENT=halt|failed|finished in its "
                             "environment. ini: seqharness_notify_cmd")
        group.addoption("--notify-url", dest="sh_notify_url", default=None, metavar="URL",
                        help="POST each event as JSON to URL (http or https). ini: seqharness_notify_url")
        group.addoption("--notify-on", dest="sh_notify_on", default=None, metavar="EVENTS",
                        help="which events notify: a comma-separated list of halt, failed, finished "
                             "(default: all three). ini: seqharness_notify_on")
        group.addoption("--notify-desktop", dest="sh_notify_desktop", action="store_true", default=None,
                        help="a desktop notification (notify-send) on each event, when notify-send is "
                             "installed. ini: seqharness_notify_desktop")
        parser.addini("seqharness_notify_cmd", "default --notify-cmd", default=None)
        parser.addini("seqharness_notify_url", "default --notify-url", default=None)
        parser.addini("seqharness_notify_on", "default --notify-on", default=None)
        parser.addini("seqharness_notify_desktop", "default --notify-desktop", type="bool", default=False)

    def setup(self) -> None:
        self.argv: list[str] | None = None
        self.url: str | None = None
        self.desktop = False
        self.events: tuple[str, ...] = EVENTS
        self.last: dict[int, Attempt] = {}                      # id(spec) -> its latest attempt
        self.stopper: dict[int, dict[str, Any]] = {}           # id(spec) -> the halt or failure that ended it
        command = self._value("sh_notify_cmd", "seqharness_notify_cmd")
        if command:
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise pytest.UsageError(f"--notify-cmd {command!r}: cannot split the command line: "
                                        f"{exc}") from None
            if not argv:
                raise pytest.UsageError("--notify-cmd needs a command, e.g. --notify-cmd 'my-notifier --team'")
            self.argv = argv
        url = self._value("sh_notify_url", "seqharness_notify_url")
        if url:
            problem = url_problem(url)
            if problem is not None:
                raise pytest.UsageError(f"--notify-url {url!r}: {problem}")
            self.url = url
        events = self._value("sh_notify_on", "seqharness_notify_on")
        if events is not None:
            self.events = parse_events(events)
        option = self.config.getoption("sh_notify_desktop", None)
        self.desktop = bool(option if option is not None else self.config.getini("seqharness_notify_desktop"))

    def _value(self, option: str, ini: str) -> str | None:
        value = self.config.getoption(option, None)
        if value is None:
            value = self.config.getini(ini)
        return value if isinstance(value, str) and value.strip() else None

    @property
    def active(self) -> bool:
        return self.argv is not None or self.url is not None or self.desktop

    # -- the hooks -----------------------------------------------------------------------------

    def pytest_seqharness_spec_start(self, spec: SpecRun) -> None:
        if self.argv is not None:
            program = self.argv[0]
            found = (os.access(spec.workdir / program, os.X_OK) if os.sep in program
                     else shutil.which(program) is not None)
            if not found:
                raise pytest.UsageError(f"--notify-cmd: program {program!r} not found")
        if self.desktop and shutil.which(DESKTOP) is None:
            self._say("notify:desktop-missing", f"seqharness: --notify-desktop: {DESKTOP} not found "
                      "on PATH; no desktop notifications")

    def pytest_seqharness_attempt_finish(self, attempt: Attempt, outcome: Outcome) -> None:
        self.last[id(attempt.spec)] = attempt   # only the latest: memory stays flat over 10k tasks

    def pytest_seqharness_halt(self, spec: SpecRun, unit: Unit, question: str) -> None:
        last = self.last.get(id(spec))
        if last is not None and last.unit is not unit:
            last = None
        reason = last.outcome.reason if last is not None and last.outcome is not None else "halted"
        fields: dict[str, Any] = {"unit": unit, "reason": reason, "question": question,
                                  "transcript": last.transcript if last is not None else None}
        self.stopper[id(spec)] = fields
        self._send("halt", spec, outcome=HALTED, **fields)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        if call.when == "call" and isinstance(item, TaskItem) and item.result is not None \
                and item.result.outcome.kind == FAILED:
            # The unit's final result: once per failed task, however many attempts it took.
            result, spec = item.result, item.spec_run
            last = result.last
            fields: dict[str, Any] = {"unit": item.unit, "reason": result.outcome.reason,
                                      "transcript": last.transcript if last is not None else None}
            self.stopper[id(spec)] = fields
            self._send("failed", spec, outcome=FAILED, **fields)
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_seqharness_spec_finish(self, spec: SpecRun, exitstatus: int) -> None:
        status = self._exitstatus(exitstatus)
        counts = spec_counts(spec)
        stopper = self.stopper.get(id(spec), {})
        if counts["halted"]:
            outcome = HALTED
        elif counts["failed"]:
            outcome = FAILED
        elif status == 0:
            outcome = "passed"
        elif status == EXIT_HALTED:
            outcome = "interrupted"
        else:
            outcome = "stopped"
        reason = (f"{counts['passed']} passed, {counts['failed']} failed, {counts['halted']} halted, "
                  f"{counts['skipped']} skipped of {counts['total']} tasks; exit {status}")
        self._send("finished", spec, stopper.get("unit"), outcome=outcome, reason=reason,
                   question=stopper.get("question"), counts=counts,
                   transcript=stopper.get("transcript"), exitstatus=status)

    def _exitstatus(self, exitstatus: int) -> int:
        """The exit status the run will end with (``seqharness.plugin`` turns a halt
        into 2 and a spent budget into 1 after the spec-finish hooks)."""
        if exitstatus == EXIT_USAGE:
            return exitstatus
        if self.h.halted is not None:
            return EXIT_HALTED
        if self.h.budget_spent_at is not None and exitstatus == 0:
            return EXIT_FAILED
        return exitstatus

    # -- sending -------------------------------------------------------------------------------

    def _send(self, event: str, spec: SpecRun, unit: Unit | None = None, **fields: Any) -> None:
        if not self.active or event not in self.events:
            return
        data = payload(event, spec, unit, **fields)
        if self.argv is not None:
            argv = self.argv
            self._channel("--notify-cmd", argv[0],
                          lambda: run_command(argv, data, event=event, cwd=spec.workdir))
        if self.url is not None:
            url = self.url
            self._channel("--notify-url", shown_url(url), lambda: post_json(url, data))
        program = shutil.which(DESKTOP) if self.desktop else None
        if program is not None:
            desktop = desktop_argv(program, data, unit.head.id if unit is not None else None)
            self._channel("--notify-desktop", DESKTOP,
                          lambda: run_command(desktop, data, event=event, cwd=spec.workdir))

    def _channel(self, channel: str, target: str, send: Callable[[], str | None]) -> None:
        """Send on one channel; whatever goes wrong is one line, never the run's end."""
        try:
            error = send()
        except Exception as exc:  # noqa: BLE001 - a notification must never stop or fail the run
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            return
        self._say(f"notify:{channel}", f"seqharness: notification failed ({channel} {target}): "
                  f"{error}; the run goes on (further failures of it are not reported)")

    def _say(self, key: str, message: str) -> None:
        """One line, once, to the terminal, also from inside a task (where pytest captures)."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        uncaptured: AbstractContextManager[None] = (
            capman.global_and_fixture_disabled() if capman is not None else nullcontext())
        with uncaptured:
            self.h.say_once(key, message)


def spec_counts(spec: SpecRun) -> dict[str, int]:
    """What happened to the spec's units in this run (already complete ones count as skipped)."""
    statuses = list(spec.status.values())
    return {
        "passed": statuses.count("passed"),
        "failed": statuses.count(FAILED),
        "halted": statuses.count(HALTED),
        "skipped": statuses.count("skipped") + statuses.count("complete"),
        "total": len(spec.units),
    }


__all__ = ["EVENTS", "EVENT_ENV", "Notifier", "desktop_argv", "parse_events", "payload",
           "post_json", "run_command", "shown_url", "spec_counts", "url_problem"]
