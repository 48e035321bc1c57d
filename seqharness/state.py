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
import os
from pathlib import Path
from typing import Any, Iterator

from seqharness.atomic import atomic_write

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
    }


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
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
        if not isinstance(base.get("completed"), list):
            base["completed"] = []
        if not isinstance(base.get("tasks"), dict):
            base["tasks"] = {}
        if not isinstance(base.get("assignments"), dict):
            base["assignments"] = {}
        return base

    # -- writing -------------------------------------------------------------
    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def save(self) -> None:
        """Write this spec's entry atomically, keeping every other spec's."""
        with self._file_lock():
            doc = self._read_file()
            doc["version"] = STATE_VERSION
            doc["specs"][self.spec_key] = self.data
            blob = json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
            atomic_write(self.path, blob.encode("utf-8"))

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
