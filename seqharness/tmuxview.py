"""The tmux view: every attempt live in its own window, for a human to attach to.

Plugin ``seqharness.tmux`` (``-p no:seqharness.tmux``, ``--no-tmux`` or
``CODEAGENT_NO_TMUX=1`` turn it off).  When the first spec starts it opens
one detached session (``--tmux-session``, default ``sequential-<spec>``);
when an attempt's agent is spawned it opens a window ``task-<id>`` that
follows the attempt's transcript, and sets ``attempt.window`` for the
plugins after it.  tmux is a view: if it is missing or fails, the run says
so once and carries on without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from seqharness.harness import RunPlugin
from seqharness.tmux import TmuxError, TmuxView
from seqharness.tmux_names import sanitize_session_name

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from seqharness.attempt import Attempt
    from seqharness.harness import SpecRun


class TmuxPlugin(RunPlugin):
    view: TmuxView | None = None
    _tried = False

    def attach_command(self) -> str | None:
        return self.view.attach_command() if self.view is not None else None

    def pytest_seqharness_spec_start(self, spec: SpecRun) -> None:
        if self._tried:
            return
        self._tried = True
        settings = self.h.settings
        if not settings.tmux:
            return
        if not TmuxView.available():
            self.h.say("seqharness: tmux not found; running without tmux")
            return
        name = settings.tmux_session or f"sequential-{spec.name}"
        view = TmuxView(sanitize_session_name(name), socket_name=settings.tmux_socket,
                        keep_windows=settings.tmux_keep)
        try:
            view.start()
        except TmuxError as exc:
            self.h.say(f"seqharness: tmux unavailable ({exc}); running without tmux")
            return
        self.view = view
        self.h.say(f"seqharness: watch the agents live: {view.attach_command()}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_seqharness_attempt_start(self, attempt: Attempt) -> None:
        if self.view is None:
            return
        # The window's viewer replays the transcript from its first byte, so
        # opening it once the agent runs loses nothing, and its tmux round
        # trips overlap the agent's start-up.
        try:
            attempt.window = self.view.open_window(f"task-{attempt.unit.name}", str(attempt.transcript))
        except TmuxError as exc:
            self.h.say(f"seqharness: tmux failed ({exc}); carrying on without tmux")
            self.view = None

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        if self.view is not None:
            terminalreporter.write_line(f"seqharness: tmux session: {self.view.attach_command()}")
