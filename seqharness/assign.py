"""LLM assignment (``--assign-backend``): an agent classifies each task once.

As in the original script, an *assignment backend* can be asked, before a
unit first runs, to classify it: a type (``code``, ``ui``, ``review``) and an
owner agent.  The answer is cached in the state's ``assignments`` so it is
asked once per unit, not once per attempt or per run.  Types map to backends
by ``--assign-map`` (default as in the original: code and review to codex, ui
to gemini); an owner that names a backend directly wins.  It is the
``trylast`` answer of ``pytest_seqharness_choose_backend``: ini routes and
conftest hooks come first.  If the call fails, the default backend is used
and the run says so; assignment never stops a run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from seqharness.harness import RunPlugin
from seqharness.signals import strip_ansi
from seqharness.units import Unit

if TYPE_CHECKING:
    from seqharness.harness import SpecRun

TYPES = ("code", "ui", "review")
DEFAULT_MAP = {"code": "codex", "ui": "gemini", "review": "codex"}
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")


def parse_map(text: str | None) -> dict[str, str]:
    """``code=codex,ui=gemini`` over the defaults."""
    mapping = dict(DEFAULT_MAP)
    for part in (text or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() and value.strip():
            mapping[key.strip().lower()] = value.strip()
    return mapping


def assignment_prompt(unit: Unit, tasks_path: Path, spec_name: str) -> str:
    return "\n".join([
        f"You are assigning work for the Kiro spec \"{spec_name}\". Do not change any file.",
        f"Read {tasks_path} and find task {unit.name}: {unit.title}",
        "Classify that task and choose the agent best suited to it.",
        "type is one of: code (implementation, tests, refactoring), ui (user interface, styling,",
        "front-end work), review (reviewing, auditing, checking documentation).",
        "owner is one of: codex, claude, gemini, opencode, aider.",
        "Answer with one line of JSON and nothing else, of the form",
        '{"task": "<task id>", "type": "<code|ui|review>", "owner": "<agent>"}',
    ])


def parse_answer(text: str) -> dict[str, str] | None:
    """The last JSON object in *text* with a known ``type`` (echoed examples fail that)."""
    clean = strip_ansi(text)
    for match in reversed(_JSON_OBJECT.findall(clean)):
        try:
            doc = json.loads(match)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        kind = str(doc.get("type", "")).strip().lower()
        if kind in TYPES:
            owner = str(doc.get("owner", "")).strip().lower()
            return {"type": kind, "owner": owner}
    return None


def backend_for_answer(answer: dict[str, str], mapping: dict[str, str], known: set[str]) -> str:
    owner = answer.get("owner", "")
    if owner and owner in mapping:
        return mapping[owner]
    if owner and owner in known:
        return owner
    return mapping.get(answer["type"], mapping["code"])


class Assignment(RunPlugin):
    """Plugin ``seqharness.assign``: ``--assign-backend``, asked once per unit."""

    def setup(self) -> None:
        self.mapping = parse_map(self.h.settings.assign_map)

    @pytest.hookimpl(trylast=True)
    def pytest_seqharness_choose_backend(self, spec: SpecRun, unit: Unit) -> str | None:
        if not self.h.settings.assign_backend:
            return None
        return spec.state.assignment(unit.name) or self._ask(spec, unit)

    def _ask(self, spec: SpecRun, unit: Unit) -> str | None:
        """One assignment call; the answer is cached in the state. None on failure."""
        from seqharness.backends import BackendContext, BackendError
        from seqharness.faults import fault
        from seqharness.harness import safe_filename, stamp
        from seqharness.runner import run_agent
        from seqharness.writes import agent_token, save_state

        h = self.h
        settings = h.settings
        value = settings.assign_backend or ""
        if settings.assign_opencode_agent and value.split(":", 1)[0] == "opencode":
            value = f"{value}{' ' if ':' in value else ':'}--agent {settings.assign_opencode_agent}"
        try:
            backend = h.backends.resolve(value)
            backend.check()
        except BackendError as exc:
            h.say_once("assign-backend", f"seqharness: assignment disabled: {exc}; using the default backend")
            return None
        folder = spec.run_dir / "assign"
        folder.mkdir(parents=True, exist_ok=True)
        transcript = folder / f"{safe_filename(unit.name)}-{stamp()}.log"
        prompt = assignment_prompt(unit, spec.tasks_path, spec.name)
        prompt_file = transcript.with_suffix(".prompt.md")
        prompt_file.write_text(prompt, encoding="utf-8")
        ctx = BackendContext(prompt=prompt, prompt_file=str(prompt_file), task_id=unit.name,
                             workdir=str(spec.workdir), spec_dir=str(spec.spec_dir))
        reader = backend.reader(ctx)
        # The same start as a task attempt: the token recorded in the state
        # goes with the agent, so a run killed now leaves nothing behind.
        result = run_agent(h, spec, backend.invocation(ctx), prompt=prompt, transcript=transcript,
                           token=agent_token(spec), timeout=settings.assign_timeout, reader=reader,
                           on_spawn=lambda pid: fault("assign-started"))
        if reader is not None:
            reader.close()
        text = getattr(reader, "final_text", None) or result.tail
        answer = parse_answer(text) if result.reason == "exited" else None
        if answer is None:
            h.say(f"seqharness: assignment of task {unit.name} failed ({result.reason}, exit "
                  f"{result.exit_status}); using the default backend")
            return None
        chosen = backend_for_answer(answer, self.mapping, set(h.backends.names()))
        spec.state.set_assignment(unit.name, {**answer, "backend": chosen})
        save_state(spec)
        h.say(f"seqharness: task {unit.name} assigned: type {answer['type']}, owner "
              f"{answer['owner'] or '-'} -> backend {chosen}")
        return chosen
