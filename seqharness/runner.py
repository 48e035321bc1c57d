"""Running one dispatch unit: the retry loop, and each attempt's hooks in order.

The runner decides nothing that a plugin could: the backend is chosen, the
prompt built, the outcome decided and the attempt recorded by the
implementations of :mod:`seqharness.hookspec` (built-in ones included).  What
stays here is the loop around them - retries, the iteration budget, waiting
out usage limits - and :func:`run_agent`, the one way seqharness starts an
agent (task attempts and assignment calls alike), always with the run's
token in its environment so a later run can find what a killed one left.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable
from pathlib import Path

from seqharness import interrupts
from seqharness.attempt import Attempt, UnitResult, Wait
from seqharness.backends import Backend, BackendContext, BackendError, Invocation, StreamReader
from seqharness.harness import Harness, SpecRun, safe_filename, stamp
from seqharness.outcome import FAILED, HALTED, INTERRUPTED, LIMITED, AttemptResult, Outcome
from seqharness.processes import TOKEN_ENV
from seqharness.prompt import PromptContext
from seqharness.session import run_attempt
from seqharness.state import now_iso
from seqharness.units import Unit
from seqharness.writes import RunStopped, agent_token, save_state

#: A limit that is still there after this many waits in a row is not a
#: limit we can wait out (a billing problem reported as one, say): halt.
MAX_LIMITS_IN_A_ROW = 10


def run_unit(h: Harness, spec: SpecRun, unit: Unit) -> UnitResult:
    """Run *unit* until it passes, halts, is interrupted, or uses its attempts.

    A usage or rate limit (outcome ``limited``) is not a failure: the run
    waits for the reset (recorded as ``paused_until`` in the state, so a
    restarted run keeps waiting instead of hammering) and retries the same
    attempt without spending an iteration or a retry.
    """
    settings = spec.settings
    attempts: list[Attempt] = []
    previous: Outcome | None = None
    number = 1
    backend = choose_backend(h, spec, unit)
    limits = 0
    while number <= settings.retries + 1:
        if not h.budget.take():
            h.budget_spent_at = unit.name
            reason = f"iteration budget spent (--max-iterations {h.settings.max_iterations})"
            if attempts and attempts[-1].outcome is not None:
                reason = f"{attempts[-1].outcome.reason}; then {reason}"
            return UnitResult(Outcome(FAILED, reason), attempts, backend)
        if not wait_out_pause(h, spec, unit) and h.attempts_run > 0 and settings.delay > 0:
            h.hook.pytest_seqharness_wait(spec=spec, unit=unit, wait=Wait(
                "delay", time.time() + settings.delay, f"--delay {settings.delay:g}"))
            h.pause(settings.delay)
        h.attempts_run += 1
        attempt = _attempt(h, spec, unit, number, previous, backend)
        attempts.append(attempt)
        outcome = attempt.outcome
        assert outcome is not None
        if outcome.kind == LIMITED:
            limits += 1
            if limits > MAX_LIMITS_IN_A_ROW:
                reason = f"usage limit reported {limits} times in a row; it does not lift"
                return UnitResult(Outcome(HALTED, reason, question=outcome.reason + "; " + reason),
                                  attempts, backend)
            h.budget.used -= 1          # a limit costs no iteration ...
            halt = schedule_pause(h, spec, outcome)
            if halt is not None:
                return UnitResult(halt, attempts, backend)
            continue                    # ... and no retry: same attempt number
        limits = 0
        if outcome.kind != FAILED:
            return UnitResult(outcome, attempts, backend)
        previous = outcome
        number += 1
    last = attempts[-1].outcome
    assert last is not None
    return UnitResult(last, attempts, backend)


def choose_backend(h: Harness, spec: SpecRun, unit: Unit) -> Backend:
    """The backend ``pytest_seqharness_choose_backend`` names, else the spec's default."""
    default = spec.backend or h.backend
    assert default is not None
    value = h.hook.pytest_seqharness_choose_backend(spec=spec, unit=unit)
    if not value:
        return default
    try:
        backend = h.backends.resolve(value)
        backend.check()
    except BackendError as exc:
        h.say(f"seqharness: backend {value!r} was chosen for task {unit.name}, but {exc}; "
              f"using the default backend")
        return default
    return backend


def schedule_pause(h: Harness, spec: SpecRun, outcome: Outcome) -> Outcome | None:
    """Record when to retry after a usage limit; a halt if that is too far away."""
    now = time.time()
    resume = outcome.resume_at if outcome.resume_at is not None else now + spec.settings.limit_wait_default
    if resume - now > spec.settings.limit_wait_max:
        when = _dt.datetime.fromtimestamp(resume).astimezone().isoformat(timespec="minutes")
        return Outcome(HALTED, f"usage limit resets at {when}, beyond --limit-wait-max",
                       question=f"{outcome.reason}; it resets at {when}, later than --limit-wait-max "
                                f"({spec.settings.limit_wait_max:.0f}s). Run seqharness again after the reset.")
    spec.state.set_pause(resume)
    save_state(spec)
    h.say_once(f"pause:{resume}", f"seqharness: {outcome.reason}; waiting until "
               f"{_dt.datetime.fromtimestamp(resume).astimezone().isoformat(timespec='seconds')}")
    return None


def wait_out_pause(h: Harness, spec: SpecRun, unit: Unit) -> bool:
    """Sleep until a recorded ``paused_until`` (also one left by an earlier run).

    Returns True if there was a pause to wait for (the ``--delay`` is then
    not added on top).
    """
    until = spec.state.paused_until
    if until is None:
        return False
    left = until - time.time()
    if left > 0:
        when = _dt.datetime.fromtimestamp(until).astimezone().isoformat(timespec="seconds")
        h.say_once(f"pause:{until}", f"seqharness: usage limit: waiting until {when}")
        h.hook.pytest_seqharness_wait(spec=spec, unit=unit,
                                      wait=Wait("usage-limit", until, f"usage limit: waiting until {when}"))
        h.pause(left)
    spec.state.set_pause(None)
    save_state(spec)
    return True


def run_agent(h: Harness, spec: SpecRun, invocation: Invocation, *, prompt: str, transcript: Path,
              token: str, timeout: float | None, reader: StreamReader | None = None,
              attempt: Attempt | None = None,
              on_spawn: Callable[[int], None] | None = None) -> AttemptResult:
    """Start an agent in a PTY and wait for its whole process group to end.

    The one way seqharness starts an agent.  Its environment carries *token*,
    the value the state recorded before the spawn, so a run killed while
    this agent lives leaves it findable (:mod:`seqharness.processes`).  With
    an *attempt*, the attempt hooks fire: ``attempt_start`` once spawned,
    ``agent_output`` per chunk (only when implemented), and
    ``attempt.request_stop`` ends it.
    """
    env = dict(os.environ if invocation.env is None else invocation.env)
    env[TOKEN_ENV] = token
    feed = reader.feed if reader is not None else None
    on_output = feed
    stop_reason = (lambda: reader.stop_requested) if reader is not None else None
    if attempt is not None:
        current = attempt

        def spawned(pid: int) -> None:
            current.pid = pid  # the agent is a session leader: pid == pgid
            h.hook.pytest_seqharness_attempt_start(attempt=current)

        on_spawn = spawned
        output_hook = h.hook.pytest_seqharness_agent_output
        if output_hook.get_hookimpls():
            def on_output(data: bytes) -> bytes | None:
                output_hook(attempt=current, data=data)
                return feed(data) if feed is not None else None

        def stop_reason() -> str | None:
            return current.stop_reason or (reader.stop_requested if reader is not None else None)

    return run_attempt(
        invocation.argv, cwd=str(spec.workdir), env=env, prompt=prompt,
        transcript_path=str(transcript), timeout=timeout, idle_timeout=spec.settings.idle_timeout,
        stdin_text=invocation.stdin_text, on_output=on_output, stop_reason=stop_reason,
        question_idle=spec.settings.question_idle if attempt is not None else None, on_spawn=on_spawn,
    )


def _next_transcript(spec: SpecRun, unit: Unit, attempt: int) -> Path:
    spec.transcripts_dir.mkdir(parents=True, exist_ok=True)
    return spec.transcripts_dir / f"task-{safe_filename(unit.name)}-{stamp()}-a{attempt}.log"


def _attempt(h: Harness, spec: SpecRun, unit: Unit, number: int, previous: Outcome | None,
             backend: Backend) -> Attempt:
    settings = spec.settings
    try:
        transcript = _next_transcript(spec, unit, number)
    except OSError as exc:
        raise RunStopped(f"cannot create the transcripts folder {spec.transcripts_dir}: "
                         f"{exc.strerror or exc}") from None
    context = PromptContext(
        spec_name=spec.name, spec_dir=spec.spec_dir, workdir=spec.workdir,
        include_optional=settings.include_optional, attempt=number,
        previous_failure=previous.reason if previous is not None else None,
        previous_details=previous.details if previous is not None else None,
    )
    prompt = h.hook.pytest_seqharness_build_prompt(spec=spec, unit=unit, context=context)
    if not isinstance(prompt, str):
        raise RunStopped("no plugin built a prompt (is seqharness.prompt disabled with -p no:?)")
    prompt_file = transcript.with_suffix(".prompt.md")
    try:  # before step 1: if these cannot be written, nothing has changed yet
        prompt_file.write_text(prompt, encoding="utf-8")
        transcript.touch()
    except OSError as exc:
        raise RunStopped(f"cannot write the transcript {exc.filename or transcript}: "
                         f"{exc.strerror or exc}") from None
    backend_ctx = BackendContext(
        prompt=prompt, prompt_file=str(prompt_file), task_id=unit.name,
        workdir=str(spec.workdir), spec_dir=str(spec.spec_dir),
    )
    invocation = backend.invocation(backend_ctx)
    reader = backend.reader(backend_ctx)
    attempt = Attempt(
        spec=spec, unit=unit, number=number, iteration=h.attempts_run, backend=backend,
        transcript=transcript, prompt_file=prompt_file, prompt=prompt,
        token=agent_token(spec),  # step 0: already on disk (see seqharness.record)
        previous_failure=context.previous_failure, original_cell=unit.head.cell, started_at=now_iso(), reader=reader,
    )
    h.hook.pytest_seqharness_invocation(attempt=attempt, invocation=invocation)
    try:
        result = run_agent(h, spec, invocation, prompt=prompt, transcript=transcript,
                           token=attempt.token, timeout=settings.timeout, reader=reader, attempt=attempt)
    except KeyboardInterrupt:
        try:
            _record(h, attempt, Outcome(INTERRUPTED, "interrupted by the user"))
        except RunStopped as exc:
            h.say(f"seqharness: {exc}")
        raise
    except (OSError, RunStopped) as exc:
        # The agent's group is already ended (run_attempt guarantees it).
        message = str(exc) if isinstance(exc, RunStopped) else (
            f"cannot write the transcript {transcript}: {exc.strerror or exc}")
        try:
            _record(h, attempt, Outcome(INTERRUPTED, f"stopped: {message}"))
        except RunStopped:
            pass
        raise RunStopped(message) from None
    if reader is not None:
        reader.close()
    attempt.result = result
    try:
        outcome = h.hook.pytest_seqharness_decide_outcome(attempt=attempt, result=result)
    except KeyboardInterrupt:  # e.g. during a verification command
        _record(h, attempt, Outcome(INTERRUPTED, "interrupted by the user"))
        raise
    if outcome is None:
        outcome = Outcome(FAILED, "no plugin decided the outcome (is seqharness.outcome disabled?)")
    _record(h, attempt, outcome)
    if outcome.kind == INTERRUPTED:
        raise KeyboardInterrupt
    h.hook.pytest_seqharness_attempt_finish(attempt=attempt, outcome=outcome)
    return attempt


def _record(h: Harness, attempt: Attempt, outcome: Outcome) -> None:
    """Steps 4-6 (:mod:`seqharness.record`), never split by a Ctrl-C or SIGTERM."""
    attempt.outcome = outcome
    footer = (f"\n\n--- seqharness: task {attempt.unit.name} attempt {attempt.number}: "
              f"{outcome.kind.upper()} ({outcome.reason}) ---\n")
    with interrupts.critical():
        try:
            with open(attempt.transcript, "ab") as fh:
                fh.write(footer.encode("utf-8", "replace"))
        except OSError:
            pass  # a courtesy line for the tmux window; the state is the record
        h.hook.pytest_seqharness_attempt_logreport(attempt=attempt, outcome=outcome)
