"""Floor P: the irreducible cost of seqharness's design, as a minimal pytest plugin.

``python -m pytest -p floor_plugin SPEC/tasks.md --floor-agent "CMD {prompt_file}"
--floor-prompt FILE --junitxml X`` (with this folder on ``PYTHONPATH``) makes
one pytest item per ``- [ ] N.`` line of ``tasks.md``.  Each item

1. spawns the agent with pexpect and reads it to the end (as floor A),
2. fails unless it exited 0 and printed the done signal,
3. records the task in a JSON state file next to the spec: one fsync'd
   atomic write, and
4. ticks the task's checkbox in ``tasks.md`` (one byte): one fsync'd atomic
   write.

That is what crash safety needs at the least; everything seqharness does on
top (prompt file, transcript, progress log, ``[-]`` while running, the
``running`` record, reports) is its overhead.  With ``--floor-tmux SOCKET``
each item also opens a tmux window before the agent starts and closes it after
the task, over one persistent ``tmux -C`` control connection.
"""

from __future__ import annotations

import json
import os
import re
import shlex

import pytest
from floorlib import TmuxControl, atomic_write, spawn_read

_TASK_RE = re.compile(rb"^- \[ \] (\d+)\.", re.MULTILINE)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("floor", "benchmark floor P")
    group.addoption("--floor-agent", default=None, help="agent command line with {prompt_file}")
    group.addoption("--floor-prompt", default=None, help="prompt file handed to the agent")
    group.addoption("--floor-tmux", default=None, help="tmux -L socket: a window per task over tmux -C")


class _Run:
    """What the items share: the file's bytes, the state, the tmux connection."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.path = path
        with open(path, "rb") as fh:
            self.data = fh.read()
        self.state_path = os.path.join(os.path.dirname(os.path.dirname(path)), "FLOOR_STATE.json")
        self.state: dict = {"completed": []}
        prompt = config.getoption("floor_prompt")
        self.argv = [a.replace("{prompt_file}", prompt) for a in shlex.split(config.getoption("floor_agent"))]
        self.tmux: TmuxControl | None = None
        socket = config.getoption("floor_tmux")
        if socket:
            self.tmux = TmuxControl(socket)
            config.add_cleanup(self.tmux.close)


class FloorFile(pytest.File):
    def collect(self):
        run = _Run(self.config, str(self.path))
        for match in _TASK_RE.finditer(run.data):
            yield FloorItem.from_parent(self, name=match.group(1).decode(), run=run,
                                        cell=match.start() + 3)


class FloorItem(pytest.Item):
    def __init__(self, *, run: _Run, cell: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run = run
        self.cell = cell

    def runtest(self) -> None:
        run = self.run
        window = run.tmux.open_window(f"task-{self.name}", run.path) if run.tmux else None
        status, _nbytes, seen = spawn_read(run.argv)
        if status != 0 or not seen:
            raise AssertionError(f"task {self.name}: exit {status}, signal seen: {seen}")
        run.state["completed"].append(self.name)
        atomic_write(run.state_path, json.dumps(run.state).encode())
        run.data = run.data[: self.cell] + b"x" + run.data[self.cell + 1:]
        atomic_write(run.path, run.data)
        if window is not None:
            run.tmux.close_window(window)

    def reportinfo(self):
        return self.path, 0, f"task {self.name}"


def pytest_collect_file(file_path, parent):
    if file_path.name == "tasks.md":
        return FloorFile.from_parent(parent, path=file_path)
    return None
