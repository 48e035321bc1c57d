"""Resumable run state: ``.kiro/specs/SEQUENTIAL_STATE.json``.

The original script kept one flat ``completed`` list for every spec in the
repository, so two specs with a task ``1.1`` marked each other done.  Here the
file keeps the original keys (``completed``, ``halted``, ``halted_task``,
``halted_at``, ``started_at``, ``completed_at``, ``assignments``) *per spec*,
under ``specs[<spec folder name>]``.

Two different specs may run at the same time against the same file, so every
update is a read-modify-write of our own spec's entry only, done under a short
``flock`` on a sibling lock file and written with :func:`atomic_write`.  A
reader therefore never sees a torn file and never loses another spec's entry.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypedDict, cast

from seqharness.atomic import atomic_write
from seqharness.faults import fault

_orjson: ModuleType | None
try:  # a declared dependency, but the state must not depend on a compiled wheel
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the fallback test
    _orjson = None

STATE_VERSION = 2
STATE_NAME = "SEQUENTIAL_STATE.json"


def now_iso() -> str:
    """UTC timestamp with seconds, as written in state and progress files."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class TaskRecord(TypedDict, total=False):
    """The last attempt of one unit, under ``tasks.<unit name>``."""

    status: str                 # passed | failed | halted | interrupted | limited
    attempts: int
    last_exit: int | None
    last_reason: str
    transcript: str             # relative to the workdir
    updated_at: str
    title: str
    title_sha: str              # tells a renumbered task from a different one
    keys: list[str]             # the completed keys a pass added
    commit: str                 # the git commit of a passed task (--git)


class Running(TypedDict, total=False):
    """The attempt in flight (step 1 of :mod:`seqharness.record`)."""

    unit: str | None
    cell: str                   # the head task's checkbox before it became [-]
    pid: int                    # the harness's pid
    since: str
    token: str                  # SEQHARNESS_AGENT_TOKEN of its agent
    pgid: int | None            # the agent's process group


class Plan(TypedDict):
    granularity: str
    units: dict[str, str]       # unit name -> title hash, as the last run saw them


@dataclass
class SpecState:
    """One spec's entry of the state file, typed, with the verbs that change it.

    The attribute names are the JSON keys on disk (the original script's
    ``completed``, ``halted``, ``halted_task``, ``halted_at``, ``started_at``,
    ``completed_at``, ``assignments``, and ours); keys this version does not
    know are kept as read.  :meth:`from_json` is the one place that checks
    what was read.
    """

    completed: list[str] = field(default_factory=list)
    halted: bool = False
    halted_task: str | None = None
    halted_at: str | None = None
    halt_question: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    assignments: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    running: Running | None = None
    iterations: int = 0
    paused_until: float | None = None
    next_token: str | None = None
    plan: Plan | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._done = set(self.completed)

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def from_json(cls, raw: object) -> tuple[SpecState, list[str]]:
        """The state of an entry as read, and the names of values reset.

        The entry may come from an older or newer seqharness, from the original
        script, or from a hand edit.  A value of the wrong type is replaced by
        its empty value (and reported) rather than crashing the run later.
        """
        entry: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        fixed: list[str] = []

        def take(key: str) -> Any:
            return entry.pop(key, None)

        state = cls()
        completed = take("completed")
        if isinstance(completed, list):
            state.completed = [k for k in completed if isinstance(k, str)]
            if len(state.completed) != len(completed):
                fixed.append("completed")
        elif completed is not None:
            fixed.append("completed")
        for key in ("tasks", "assignments"):
            value = take(key)
            if isinstance(value, dict):
                kept = {k: v for k, v in value.items() if isinstance(v, dict)}
                if len(kept) != len(value) and key == "tasks":
                    fixed.append(key)
                setattr(state, key, kept if key == "tasks" else value)
            elif value is not None:
                fixed.append(key)
        running = take("running")
        if isinstance(running, dict):
            if not isinstance(running.get("cell"), str) or len(running["cell"]) != 1:
                running["cell"] = " "
            state.running = cast(Running, running)
        elif running is not None:
            fixed.append("running")
        iterations = take("iterations")
        if isinstance(iterations, int) and not isinstance(iterations, bool) and iterations >= 0:
            state.iterations = iterations
        elif iterations not in (None, 0):
            fixed.append("iterations")
        until = take("paused_until")
        if isinstance(until, (int, float)) and not isinstance(until, bool) and math.isfinite(until):
            state.paused_until = until
        elif until is not None:
            fixed.append("paused_until")
        halted, halted_task = take("halted"), entry.get("halted_task")
        if isinstance(halted, bool):
            state.halted = halted
        elif halted is not None:
            state.halted = bool(halted) and isinstance(halted_task, str)
            fixed.append("halted")
        for key in ("halted_task", "halt_question", "halted_at", "started_at", "completed_at",
                    "next_token"):
            value = take(key)
            if isinstance(value, str):
                setattr(state, key, value)
            elif value is not None:
                fixed.append(key)
        plan = take("plan")
        if isinstance(plan, dict):
            state.plan = cast(Plan, plan)
        elif plan is not None:
            fixed.append("plan")
        state.extra = entry
        state._done = set(state.completed)
        return state, fixed

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "completed": self.completed, "halted": self.halted, "halted_task": self.halted_task,
            "halted_at": self.halted_at, "halt_question": self.halt_question,
            "started_at": self.started_at, "completed_at": self.completed_at,
            "assignments": self.assignments, "tasks": self.tasks, "running": self.running,
            "iterations": self.iterations, "paused_until": self.paused_until,
            "next_token": self.next_token,
        }
        if self.plan is not None:
            doc["plan"] = self.plan
        if self.extra:
            doc.update({k: v for k, v in self.extra.items() if k not in doc})
        return doc

    def is_completed(self, key: str) -> bool:
        return key in self._done

    def assignment(self, unit_name: str) -> str | None:
        """The backend an earlier assignment chose for a unit, if any."""
        entry = self.assignments.get(unit_name)
        backend = entry.get("backend") if isinstance(entry, dict) else None
        return backend if isinstance(backend, str) else None

    # -- the run ---------------------------------------------------------------------------
    def begin_run(self) -> str | None:
        """A run starts: note its start, forget a halt.  Returns the halted task, if any."""
        resumed = self.halted_task if self.halted else None
        self.halted = False
        if not self.started_at:
            self.started_at = now_iso()
        self.completed_at = None
        return resumed

    def end_run(self, *, complete: bool) -> None:
        """The run ends with no agent left, so no process carries the next token."""
        if complete:
            self.completed_at = now_iso()
        self.next_token = None

    # -- one attempt (the steps of seqharness.record) --------------------------------------
    def new_token(self) -> str:
        """Draw the token the next agent will carry (step 0)."""
        from seqharness.processes import new_token

        self.next_token = new_token()
        return self.next_token

    def record_running(self, running: Running) -> None:
        self.running = running

    def clear_running(self) -> None:
        self.running = None

    def record_outcome(self, unit_name: str, record: TaskRecord, *, passed_keys: list[str] | None,
                       halt_question: str | None = None, halted: bool = False) -> None:
        """The attempt's outcome (step 5): the task record, one more iteration, no
        attempt running, a fresh token for the next one; a pass completes
        *passed_keys*, a halt records the question."""
        old = self.tasks.get(unit_name) or TaskRecord()
        attempts = old.get("attempts")
        merged = cast(TaskRecord, {**old, **record})
        merged["attempts"] = (attempts if isinstance(attempts, int) else 0) + 1
        if passed_keys is not None:
            self.add_completed(passed_keys)
            merged["keys"] = list(passed_keys)
        self.tasks[unit_name] = merged
        self.iterations += 1
        self.running = None
        self.new_token()
        if halted:
            self.mark_halted(unit_name, halt_question)

    def record_commit(self, unit_name: str, sha: str) -> None:
        """The commit that holds a passed unit's work (``--git``)."""
        record = self.tasks.setdefault(unit_name, TaskRecord())
        record["commit"] = sha

    def mark_halted(self, unit_name: str, question: str | None) -> None:
        self.halted = True
        self.halted_task = unit_name
        self.halted_at = now_iso()
        self.halt_question = question

    def set_pause(self, until: float | None) -> None:
        """A usage-limit pause until *until* (epoch seconds), or none."""
        self.paused_until = until

    def set_assignment(self, unit_name: str, answer: dict[str, Any]) -> None:
        self.assignments[unit_name] = {**answer, "at": now_iso()}

    # -- completed keys ----------------------------------------------------------------------
    def add_completed(self, keys: list[str]) -> None:
        for key in keys:
            if key not in self._done:
                self.completed.append(key)
                self._done.add(key)

    def drop_completed(self, keys: set[str]) -> None:
        self.completed = [k for k in self.completed if k not in keys]
        self._done = set(self.completed)


def encode(doc: dict[str, Any]) -> bytes:
    """The state document as compact UTF-8 JSON with a final newline.

    The file is rewritten twice per task and grows by a few hundred bytes per
    task record, so its encoding dominates the per-task cost of long runs:
    orjson takes 0.07 ms where json's C encoder takes 0.9 ms at 500 records
    (``bench/bench.py``, figure 5's linearity).  json is the fallback when
    orjson is missing or refuses a value (an integer beyond 64 bits, very deep
    nesting - both possible in a hand-edited file).  Either way the result is
    compact (json's C encoder only runs without indent) and reads back equal.
    """
    if _orjson is not None:
        try:
            blob: bytes = _orjson.dumps(doc, option=_orjson.OPT_APPEND_NEWLINE)
            return blob
        except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
            pass
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class StateError(Exception):
    """The state file exists but cannot be used (reported, never a traceback)."""


class StateStore:
    """The state of one spec inside the shared state file.

    ``state`` is this spec's :class:`SpecState`.  Change it through its verbs,
    then call :meth:`save`; the save re-reads the file under the lock so
    other specs' entries written in the meantime are kept.
    """

    def __init__(self, specs_dir: str | os.PathLike[str], spec_key: str) -> None:
        self.specs_dir = Path(specs_dir)
        self.path = self.specs_dir / STATE_NAME
        self.lock_path = self.specs_dir / (STATE_NAME + ".lock")
        self.spec_key = spec_key
        self.notes: list[str] = []
        self.state: SpecState = self._load_entry()

    # -- reading -------------------------------------------------------------
    def _read_file(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"version": STATE_VERSION, "specs": {}}
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read state file: {exc.strerror}") from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: [[[[...
            # Keep the unreadable file for the human, start afresh.
            backup = self.path.with_suffix(".json.corrupt")
            with contextlib.suppress(OSError):
                os.replace(self.path, backup)
            self.notes.append(
                f"{self.path}: state file was not valid JSON ({exc}); moved to {backup.name}, starting fresh"
            )
            return {"version": STATE_VERSION, "specs": {}}
        if not isinstance(doc, dict):
            self.notes.append(f"{self.path}: state file is not a JSON object; starting fresh")
            return {"version": STATE_VERSION, "specs": {}}
        if "specs" not in doc:
            # The original script's flat layout: keep it aside, untouched.
            legacy = {k: v for k, v in doc.items()}
            self.notes.append(
                f"{self.path}: state file has the original flat layout; kept under 'legacy' "
                "(its task ids cannot be attributed to one spec)"
            )
            doc = {"version": STATE_VERSION, "specs": {}, "legacy": legacy}
        if not isinstance(doc.get("specs"), dict):
            doc["specs"] = {}
        return doc

    def _load_entry(self) -> SpecState:
        doc = self._read_file()
        state, fixed = SpecState.from_json(doc["specs"].get(self.spec_key))
        if fixed:
            self.notes.append(f"{self.path}: spec {self.spec_key!r}: unusable values reset "
                              f"({', '.join(fixed)})")
        return state

    def reload(self) -> None:
        """Read this spec's entry again, e.g. after waiting for the run lock
        (the run that held it has changed the state since collection)."""
        notes = self.notes
        self.notes = []
        self.state = self._load_entry()
        self.notes = list(dict.fromkeys(notes + self.notes))

    # -- writing -------------------------------------------------------------
    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def save(self, *, durable: bool = True) -> None:
        """Write this spec's entry atomically, keeping every other spec's.

        ``durable=False`` skips the fsyncs (see :func:`atomic_write`): for the
        ``running`` record, which only matters while this process lives.
        """
        with self._file_lock():
            if not self._swept:
                self._sweep_temp_files()
            doc = self._unchanged_doc() or self._read_file()
            doc["version"] = STATE_VERSION
            doc["specs"][self.spec_key] = self.state.to_json()
            atomic_write(self.path, encode(doc), durable=durable)
            self._last_written = (doc, self._signature())
        fault("state-saved")

    _last_written: tuple[dict[str, Any], tuple[int, int, int] | None] | None = None

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _unchanged_doc(self) -> dict[str, Any] | None:
        """Our own last write, if the file is still exactly that (no other
        spec's run wrote it since): saves re-reading and re-parsing it."""
        last = self._last_written
        if last is None or last[1] is None or last[1] != self._signature():
            return None
        return last[0]

    _swept = False

    def _sweep_temp_files(self) -> None:
        """Remove temp files of state writes that a killed process left behind.

        Every state write happens under the lock we hold, so a temp file of
        ours that exists now belongs to a writer that died mid-write.
        """
        self._swept = True
        prefix = f".{STATE_NAME}."
        try:
            names = os.listdir(self.specs_dir)
        except OSError:
            return
        for name in names:
            if name.startswith(prefix) and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(self.specs_dir / name)

    def reset(self) -> None:
        """``--reset``: forget this spec's recorded state (saved with the next save)."""
        self.state = SpecState()
