"""The rich live view shown on a terminal while an agent works.

While an attempt runs (and during ``--delay``), a transient panel lists every
task of the spec with its state, the current one with its attempt number and
elapsed time, the last lines of its transcript, and the tmux attach command.
When the attempt ends the panel is erased and pytest's own result line
continues where it stopped, so the scroll-back reads like any pytest run.

Without a terminal (CI) nothing of this is shown: pytest's plain lines are
the output.  Nothing the agent prints is lost either way; it is in the
transcript and the tmux window.

pytest captures file descriptors 1 and 2 while an item runs, so the item
suspends capturing around the agent run (:mod:`seqharness.collect`); the panel
then writes to the real terminal, and the cursor dance in :meth:`_start` and
:meth:`_stop` keeps pytest's half-written ``tasks.md::2 `` line intact.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from seqharness.harness import RunPlugin
from seqharness.signals import strip_ansi

if TYPE_CHECKING:  # rich is imported only when the view is shown (start-up time)
    from rich.console import Console
    from rich.live import Live

    from seqharness.attempt import Attempt, Wait

_SYMBOL = {
    "passed": ("✓", "green"), "complete": ("✓", "green dim"), "failed": ("✗", "red"),
    "halted": ("H", "yellow bold"), "skipped": ("↷", "dim"), "running": ("▶", "cyan bold"),
    None: ("·", "dim"),
}


def wanted(mode: str, stream: Any = None) -> bool:
    """Whether to show the live view: ``on``, ``off``, or ``auto`` (a TTY, not dumb)."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    stream = stream or sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and os.environ.get("TERM", "") not in ("", "dumb") and not os.environ.get("CI")


def _tail(path: Path, lines: int = 6, max_bytes: int = 4096) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    text = strip_ansi(data.decode("utf-8", "replace")).replace("\r", "\n")
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


class LiveView(RunPlugin):
    """Plugin ``seqharness.live`` (``--live off`` or ``-p no:seqharness.live``)."""

    def setup(self) -> None:
        self.tw: Any = None
        self.file: Any = None
        self.console: Console | None = None
        self.live: Live | None = None
        self.current: Attempt | None = None
        self.wait_until: float | None = None
        self._decided = False

    def _enabled(self) -> bool:
        """Decided once the terminal reporter exists (after every plugin's configure)."""
        if not self._decided:
            self._decided = True
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            tw = getattr(reporter, "_tw", None)  # private: the writer pytest's own lines go through
            if tw is not None and wanted(self.h.settings.live, getattr(tw, "_file", None)):
                self.tw = tw
                self.file = getattr(tw, "_file", None) or sys.stdout
                from rich.console import Console

                self.console = Console(file=self.file, force_terminal=True)
        return self.console is not None

    # -- hooks -----------------------------------------------------------------------------
    def pytest_seqharness_attempt_start(self, attempt: Attempt) -> None:
        if self._enabled():
            self.current = attempt
            self.wait_until = None
            self._start()

    def pytest_seqharness_attempt_logreport(self, attempt: Attempt) -> None:
        self._stop()
        self.current = None

    def pytest_seqharness_wait(self, wait: Wait) -> None:
        if self._enabled():
            self.wait_until = wait.until
            self._start()

    def pytest_keyboard_interrupt(self) -> None:
        self._stop()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self._stop()

    # -- rendering -------------------------------------------------------------
    def _start(self) -> None:
        if self.live is not None or self.console is None:
            return
        self.file.write("\n")
        self.file.flush()
        from rich.live import Live

        self.live = Live(get_renderable=self.render, console=self.console, transient=True,
                         refresh_per_second=4, redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def _stop(self) -> None:
        if self.live is None:
            return
        self.live.stop()
        self.live = None
        # Back to the end of pytest's half-written line.
        col = int(getattr(self.tw, "width_of_current_line", 0) or 0)
        self.file.write("\x1b[1A\r" + (f"\x1b[{col}C" if col else ""))
        self.file.flush()

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        table.add_column(width=2)
        table.add_column(no_wrap=True)
        table.add_column(overflow="ellipsis", no_wrap=True, max_width=70)
        table.add_column(no_wrap=True)
        current = self.current
        for spec in list(self.h.specs.values()):
            for unit in spec.units:
                status = spec.status.get(unit.name)
                extra = ""
                if current is not None and current.unit is unit:
                    status = "running"
                    extra = f"attempt {current.number} · {current.elapsed:5.1f}s"
                symbol, style = _SYMBOL.get(status, _SYMBOL[None])
                table.add_row(Text(symbol, style=style), Text(unit.name, style="bold"),
                              Text(" ".join(strip_ansi(unit.title).split())), Text(extra, style="cyan"))
        parts: list[Any] = [table]
        if current is not None:
            lines = _tail(current.transcript)
            if lines:
                parts.append(Text("\n".join(f"  │ {ln[:150]}" for ln in lines), style="dim"))
        if self.wait_until is not None and current is None:
            left = max(0.0, self.wait_until - time.time())
            parts.append(Text(f"next attempt in {left:4.1f}s (Ctrl-C stops the run)", style="yellow"))
        tmux = self.config.pluginmanager.get_plugin("seqharness.tmux")
        attach = tmux.attach_command() if tmux is not None else None
        if attach:
            parts.append(Text(f"watch live: {attach}", style="dim"))
        return Group(*parts)
