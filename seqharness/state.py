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
from pathlib import Path
from typing import Any

from seqharness.atomic import atomic_write
from seqharness.faults import fault

try:  # a declared dependency, but the state must not depend on a compiled wheel
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the fallback test
    _orjson = None

STATE_VERSION = 2
STATE_NAME = "SEQUENTIAL_STATE.json"


def now_iso() -> str:
    """UTC timestamp with seconds, as written in state and progress files."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def empty_spec_state() -> dict[str, Any]:
    return {
        "completed": [],
        "halted": False,
        "halted_task": None,
        "halted_at": None,
        "halt_question": None,
        "started_at": None,
        "completed_at": None,
        "assignments": {},
        "tasks": {},
        "running": None,
        "iterations": 0,
        "paused_until": None,
        "next_token": None,
    }


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
            return _orjson.dumps(doc, option=_orjson.OPT_APPEND_NEWLINE)
        except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
            pass
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class StateError(Exception):
    """The state file exists but cannot be used (reported, never a traceback)."""


class StateStore:
    """The state of one spec inside the shared state file.

    ``data`` is this spec's entry.  Mutate it, then call :meth:`save`; the
    save re-reads the file under the lock so other specs' entries written in
    the meantime are kept.
    """

    def __init__(self, specs_dir: str | os.PathLike[str], spec_key: str) -> None:
        self.specs_dir = Path(specs_dir)
        self.path = self.specs_dir / STATE_NAME
        self.lock_path = self.specs_dir / (STATE_NAME + ".lock")
        self.spec_key = spec_key
        self.notes: list[str] = []
        self.data: dict[str, Any] = self._load_entry()

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

    def _load_entry(self) -> dict[str, Any]:
        doc = self._read_file()
        entry = doc["specs"].get(self.spec_key)
        base = empty_spec_state()
        if isinstance(entry, dict):
            base.update(entry)
        fixed = _sanitise(base)
        if fixed:
            self.notes.append(f"{self.path}: spec {self.spec_key!r}: unusable values reset "
                              f"({', '.join(fixed)})")
        return base

    def reload(self) -> None:
        """Read this spec's entry again, e.g. after waiting for the run lock
        (the run that held it has changed the state since collection)."""
        notes = self.notes
        self.notes = []
        self.data = self._load_entry()
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
            doc["specs"][self.spec_key] = self.data
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

    # -- convenience ---------------------------------------------------------
    def is_completed(self, key: str) -> bool:
        return key in self._completed_set()

    def _completed_set(self) -> set[str]:
        return set(self.data["completed"])

    def add_completed(self, keys: list[str]) -> None:
        have = self._completed_set()
        for key in keys:
            if key not in have:
                self.data["completed"].append(key)
                have.add(key)

    def task_record(self, key: str) -> dict[str, Any]:
        return self.data["tasks"].setdefault(key, {})

    def reset(self) -> None:
        self.data = empty_spec_state()


def _sanitise(entry: dict[str, Any]) -> list[str]:
    """Give every field the type this version uses; return the names reset.

    The entry may come from an older or newer seqharness, from the original
    script, or from a hand edit.  A value of the wrong type is replaced by
    its empty value (and reported) rather than crashing the run later.
    """
    fixed = []
    completed = entry.get("completed")
    if not isinstance(completed, list) or not all(isinstance(k, str) for k in completed):
        entry["completed"] = [k for k in completed if isinstance(k, str)] if isinstance(completed, list) else []
        fixed.append("completed")
    for key in ("tasks", "assignments"):
        value = entry.get(key)
        if not isinstance(value, dict):
            entry[key] = {}
            fixed.append(key)
    tasks = entry["tasks"]
    if not all(isinstance(v, dict) for v in tasks.values()):
        entry["tasks"] = {k: v for k, v in tasks.items() if isinstance(v, dict)}
        fixed.append("tasks")
    running = entry.get("running")
    if running is not None and not isinstance(running, dict):
        entry["running"] = None
        fixed.append("running")
    elif isinstance(running, dict):
        cell = running.get("cell")
        if not isinstance(cell, str) or len(cell) != 1:
            running["cell"] = " "
    iterations = entry.get("iterations")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
        entry["iterations"] = 0
        if iterations not in (None, 0):
            fixed.append("iterations")
    until = entry.get("paused_until")
    if until is not None and (not isinstance(until, (int, float)) or isinstance(until, bool)
                              or not math.isfinite(until)):
        entry["paused_until"] = None
        fixed.append("paused_until")
    if not isinstance(entry.get("halted"), bool):
        entry["halted"] = bool(entry.get("halted")) and isinstance(entry.get("halted_task"), str)
        fixed.append("halted")
    for key in ("halted_task", "halt_question", "halted_at", "started_at", "completed_at", "next_token"):
        if entry.get(key) is not None and not isinstance(entry.get(key), str):
            entry[key] = None
            fixed.append(key)
    if entry.get("plan") is not None and not isinstance(entry.get("plan"), dict):
        entry["plan"] = None
        fixed.append("plan")
    return fixed
