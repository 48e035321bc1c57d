"""Choosing a backend per dispatch unit (``--assign-backend``, routing rules).

As in the original script, an *assignment backend* can be asked, before a
unit first runs, to classify it: a type (``code``, ``ui``, ``review``) and an
owner agent.  The answer is cached in the state's ``assignments`` so it is
asked once per unit, not once per attempt or per run.  Types map to backends
by ``--assign-map`` (default as in the original: code and review to codex, ui
to gemini); an owner that names a backend directly wins.

Deterministic alternatives that need no LLM are tried first: routing rules
(ini ``seqharness_routes``, one ``type:ui = gemini`` or ``title:/regex/ = claude``
per line; the type comes from a ``_Type: ui_`` annotation) and the
``pytest_seqharness_assign_backend`` hook.  If the assignment call fails, the
default backend is used and the run says so; assignment never stops a run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqharness.signals import strip_ansi
from seqharness.units import Unit

TYPES = ("code", "ui", "review")
DEFAULT_MAP = {"code": "codex", "ui": "gemini", "review": "codex"}
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")


@dataclass
class Route:
    kind: str          # "type" | "title"
    pattern: str
    backend: str

    def matches(self, unit: Unit) -> bool:
        if self.kind == "type":
            return unit_type(unit) == self.pattern.lower()
        return re.search(self.pattern, unit.title, re.IGNORECASE) is not None


_ROUTE = re.compile(r"^(type|title):(.+?)\s+=\s+(\S.*)$")


def parse_routes(lines: list[str]) -> list[Route]:
    """``type:ui = gemini`` / ``title:/login|auth/ = claude``; ValueError names the bad line.

    The first `` = `` (with spaces) separates the rule from the backend, so a
    backend value may itself contain ``=`` (``cmd:agent --prompt-file={prompt_file}``).
    """
    routes = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ROUTE.match(line)
        if match is None:
            raise ValueError(f"seqharness_routes: cannot read {line!r} "
                             "(expected 'type:ui = gemini' or 'title:/regex/ = claude')")
        kind, pattern, backend = match.group(1), match.group(2).strip(), match.group(3).strip()
        if kind == "title":
            pattern = pattern.strip("/")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"seqharness_routes: bad regex in {line!r}: {exc}") from None
        routes.append(Route(kind, pattern, backend))
    return routes


def parse_map(text: str | None) -> dict[str, str]:
    """``code=codex,ui=gemini`` over the defaults."""
    mapping = dict(DEFAULT_MAP)
    for part in (text or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() and value.strip():
            mapping[key.strip().lower()] = value.strip()
    return mapping


def unit_type(unit: Unit) -> str | None:
    """The ``_Type: ui_`` annotation of the unit's head task, if any."""
    for ann in unit.head.annotations:
        if ann.norm in ("type", "task type"):
            return ann.value.strip().lower()
    return None


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


def choose_backend(answer: dict[str, str], mapping: dict[str, str], known: set[str]) -> str:
    owner = answer.get("owner", "")
    if owner and owner in mapping:
        return mapping[owner]
    if owner and owner in known:
        return owner
    return mapping.get(answer["type"], mapping["code"])


def cached(assignments: dict[str, Any], unit: Unit) -> str | None:
    entry = assignments.get(unit.name)
    if isinstance(entry, dict) and isinstance(entry.get("backend"), str):
        return entry["backend"]
    return None


def backend_for(h: Any, sr: Any, unit: Unit) -> Any:
    """The backend that runs *unit*: routes, then the hook, then the LLM, then --backend."""
    from seqharness.backends import BackendError, resolve_backend

    spec: str | None = None
    source = ""
    for route in h.routes:
        if route.matches(unit):
            spec, source = route.backend, f"route {route.kind}:{route.pattern}"
            break
    if spec is None and h.hook is not None:
        spec = h.hook.pytest_seqharness_assign_backend(unit=unit, spec_name=sr.name)
        source = "hook"
    if spec is None and h.settings.assign_backend:
        spec = cached(sr.state.data["assignments"], unit) or _ask(h, sr, unit)
        source = "assignment"
    if not spec:
        return h.backend
    if spec in h.backend_cache:
        return h.backend_cache[spec]
    try:
        backend = resolve_backend(spec)
        backend.check()
    except BackendError as exc:
        h.say(f"seqharness: {source} chose backend {spec!r} for task {unit.name}, but {exc}; "
              f"using the default backend")
        backend = h.backend
    h.backend_cache[spec] = backend
    return backend


def _ask(h: Any, sr: Any, unit: Unit) -> str | None:
    """One assignment call; the answer is cached in the state. None on failure."""
    from seqharness.backends import BackendContext, BackendError, resolve_backend
    from seqharness.harness import safe_filename, stamp
    from seqharness.session import run_attempt
    from seqharness.state import now_iso

    settings = h.settings
    spec = settings.assign_backend
    if settings.assign_opencode_agent and spec.split(":", 1)[0] == "opencode":
        spec = f"{spec}{' ' if ':' in spec else ':'}--agent {settings.assign_opencode_agent}"
    try:
        backend = h.backend_cache.get(spec) or resolve_backend(spec)
        backend.check()
        h.backend_cache[spec] = backend
    except BackendError as exc:
        h.say_once("assign-backend", f"seqharness: assignment disabled: {exc}; using the default backend")
        return None
    folder = sr.run_dir / "assign"
    folder.mkdir(parents=True, exist_ok=True)
    transcript = folder / f"{safe_filename(unit.name)}-{stamp()}.log"
    prompt = assignment_prompt(unit, sr.tasks_path, sr.name)
    prompt_file = transcript.with_suffix(".prompt.md")
    prompt_file.write_text(prompt, encoding="utf-8")
    ctx = BackendContext(prompt=prompt, prompt_file=str(prompt_file), task_id=unit.name,
                         workdir=str(sr.workdir), spec_dir=str(sr.spec_dir))
    invocation = backend.invocation(ctx)
    reader = backend.reader(ctx)
    result = run_attempt(invocation.argv, cwd=str(sr.workdir), env=invocation.env, prompt=prompt,
                         transcript_path=str(transcript), timeout=settings.assign_timeout,
                         idle_timeout=settings.idle_timeout, stdin_text=invocation.stdin_text,
                         on_output=reader.feed if reader is not None else None)
    if reader is not None:
        reader.close()
    text = getattr(reader, "final_text", None) or result.tail
    answer = parse_answer(text) if result.reason == "exited" else None
    if answer is None:
        h.say(f"seqharness: assignment of task {unit.name} failed ({result.reason}, exit "
              f"{result.exit_status}); using the default backend")
        return None
    chosen = choose_backend(answer, h.assign_map, set(h.known_backends))
    sr.state.data["assignments"][unit.name] = {**answer, "backend": chosen, "at": now_iso()}
    sr.state.save()
    h.say(f"seqharness: task {unit.name} assigned: type {answer['type']}, owner "
          f"{answer['owner'] or '-'} -> backend {chosen}")
    return chosen
