"""The hooks of seqharness: everything a run does, in the order it does it.

seqharness is pytest with a plugin, and its own features (the state
recorder, the progress log, the tmux view, the live view, the JUnit facts,
the built-in prompt, routing and LLM assignment, the built-in backends) are
plugins on the hooks below, as pytest's ``junitxml`` and ``stepwise`` are
plugins on pytest's.  A ``conftest.py`` or an installed plugin implements
the same hooks to change any of it; a built-in plugin is turned off with
``-p no:seqharness.<name>``.  Read this file as the table of contents of a
run; docs/crash-safety.md shows how the hooks line up with the crash-safe write
order of :mod:`seqharness.record`.

Order for one spec::

    pytest_seqharness_add_backends          once per run, before the first spec starts
    pytest_seqharness_spec_start            the spec's lock is held, its state repaired
      for each unit, in dependency order:
        pytest_seqharness_unit_skip         may skip it with a reason
        pytest_seqharness_choose_backend    routing (first answer wins)
        for each attempt:
          pytest_seqharness_wait            only if a delay or a usage-limit wait comes first
          pytest_seqharness_build_prompt    the prompt (first answer wins)
          pytest_seqharness_invocation      argv, env, stdin of the agent (change in place)
          pytest_seqharness_attempt_start   the agent runs (pid, transcript, tmux window)
          pytest_seqharness_agent_output    each chunk the agent prints
          pytest_seqharness_decide_outcome  pass / fail / halt / limited (first answer wins)
          pytest_seqharness_attempt_logreport   the attempt is recorded (step 4-6)
          pytest_seqharness_attempt_finish  the record is on disk
        pytest_seqharness_halt              the unit halted: the run stops
        pytest_seqharness_report_facts      facts for the unit's report (JUnit, summaries)
    pytest_seqharness_spec_finish           the run ends for this spec
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from seqharness.attempt import Attempt, UnitResult, Wait
    from seqharness.backends import BackendRegistry, Invocation
    from seqharness.harness import SpecRun
    from seqharness.outcome import AttemptResult, Outcome
    from seqharness.prompt import PromptContext
    from seqharness.units import Unit

hookspec = pytest.hookspec


# -- the run ---------------------------------------------------------------------------------

@hookspec
def pytest_seqharness_add_backends(backends: BackendRegistry) -> None:
    """Contribute agent backends: call ``backends.add(name, factory)``.

    Called once per run, after collection and before the first spec starts,
    and not at all for ``--co``.  ``factory(extra)`` builds a
    :class:`~seqharness.backends.Backend` from the text after ``NAME:`` in a
    ``--backend`` value (``""`` when there is none).  The built-in profiles
    (claude, codex, opencode, gemini, aider, kiro-cli) and ``cmd:`` are added
    by a ``tryfirst`` implementation, so a name added by a conftest.py
    replaces a built-in one.

    :param backends: the run's registry.

    Use in conftest plugins: yes.
    """


@hookspec
def pytest_seqharness_spec_start(spec: SpecRun) -> None:
    """A spec is about to run.

    Called once per spec, before its first unit, after its run lock is held
    and its ``tasks.md`` and state were re-read.  The built-in state recorder
    (``tryfirst``) repairs what an earlier, killed run left half done and
    writes the first agent's token here; an exception other than
    :class:`~seqharness.errors.SpecError` stops the run.

    :param spec: the spec's run: folder, ``tasks.md``, units, state, paths.

    Use in conftest plugins: yes.
    """


@hookspec
def pytest_seqharness_spec_finish(spec: SpecRun, exitstatus: int) -> None:
    """The run ends for a spec (also after a halt, a failure or Ctrl-C).

    Called once per spec that started, from ``pytest_sessionfinish``, before
    the spec's run lock is released.  The state recorder marks the spec
    complete here when every required unit is.

    :param spec: the spec's run.
    :param exitstatus: pytest's exit status so far.

    Use in conftest plugins: yes.
    """


# -- one unit --------------------------------------------------------------------------------

@hookspec(firstresult=True)
def pytest_seqharness_unit_skip(spec: SpecRun, unit: Unit) -> str | None:
    """Return a reason to skip *unit* now, or None to run it.

    Called in the unit's setup, before anything is written for it.  Stops at
    the first non-None result.  The built-in reasons (already complete,
    optional, the run halted, the iteration budget is spent, a dependency did
    not complete) are a ``trylast`` implementation, so a conftest.py can skip
    more, but not run a unit the built-in rules skip (use
    ``--include-optional``, ``--reset`` or ``-k`` for that).

    :param spec: the spec's run.
    :param unit: the dispatch unit (``unit.name``, ``unit.title``, ``unit.tasks``).

    Use in conftest plugins: yes.
    """


@hookspec(firstresult=True)
def pytest_seqharness_choose_backend(spec: SpecRun, unit: Unit) -> str | None:
    """Return a ``--backend`` value for *unit* (``"gemini"``, ``"cmd:my-agent {prompt_file}"``),
    or None to leave the choice to later implementations.

    Called once per unit, before its first attempt.  Stops at the first
    non-None result.  Built-in order: the ini ``seqharness_routes`` rules
    (``tryfirst``), then conftest implementations, then the LLM assignment of
    ``--assign-backend`` (``trylast``); when all return None, ``--backend``
    runs the unit.  A conftest implementation marked
    ``@pytest.hookimpl(tryfirst=True)`` comes before the ini rules.  A value
    that names no known backend is reported and the default is used.

    :param spec: the spec's run.
    :param unit: the dispatch unit.

    Use in conftest plugins: yes.
    """


@hookspec(firstresult=True)
def pytest_seqharness_build_prompt(spec: SpecRun, unit: Unit, context: PromptContext) -> str | None:
    """Return the prompt for one attempt of *unit*.

    Called before every attempt (a retry's context carries the previous
    failure).  Stops at the first non-None result; the built-in prompt is a
    ``trylast`` implementation.  To replace it, return a string; to amend
    it, implement the hook as a wrapper::

        @pytest.hookimpl(wrapper=True)
        def pytest_seqharness_build_prompt(unit, context):
            prompt = yield
            return prompt + "\\nRun the whole test suite before you say done.\\n"

    The prompt must tell the agent to print ``<promise>TASK_DONE</promise>``
    when done (:data:`seqharness.signals.DONE_TAG`).

    :param spec: the spec's run.
    :param unit: the dispatch unit.
    :param context: spec name and folders, attempt number, previous failure.

    Use in conftest plugins: yes.
    """


# -- one attempt -----------------------------------------------------------------------------

@hookspec
def pytest_seqharness_invocation(attempt: Attempt, invocation: Invocation) -> None:
    """Change how the agent is started, in place: ``invocation.argv`` (a list,
    never a shell string), ``invocation.env`` (None: inherit) and
    ``invocation.stdin_text``.

    Called once per attempt after the backend built the invocation and before
    the agent is spawned.  seqharness adds the run's agent token
    (``SEQHARNESS_AGENT_TOKEN``) to the environment after this hook, so the
    next run can always find the agent if this one is killed.

    :param attempt: the attempt about to start (``attempt.pid`` is still None).
    :param invocation: the backend's argv, env and stdin text.

    Use in conftest plugins: yes.
    """


@hookspec
def pytest_seqharness_attempt_start(attempt: Attempt) -> None:
    """The agent of an attempt has been spawned.

    Called right after the spawn, while the agent starts up.  The state
    recorder (a ``tryfirst`` wrapper) first records the attempt as running and
    marks the task ``[-]`` (steps 1-2 of :mod:`seqharness.record`); the tmux
    view (``tryfirst``) then opens the window and sets ``attempt.window``.
    Keep implementations quick: the agent is already running.

    :param attempt: ``attempt.pid``, ``attempt.transcript``, ``attempt.window``
        (tmux window id, or None without tmux) are set.

    Use in conftest plugins: yes.
    """


@hookspec
def pytest_seqharness_agent_output(attempt: Attempt, data: bytes) -> None:
    """A chunk of the agent's output, as it arrives (any chunking, up to 64 KiB).

    The chunk is already in the transcript.  To end the attempt early (a
    custom signal), call ``attempt.request_stop(reason)``; to record what you
    saw, keep it on your plugin and use it in
    :func:`pytest_seqharness_decide_outcome`.  Keep memory bounded whatever
    the agent prints.  Only called when some plugin implements it.

    :param attempt: the running attempt.
    :param data: raw bytes, ANSI escapes included.

    Use in conftest plugins: yes.
    """


@hookspec(firstresult=True)
def pytest_seqharness_decide_outcome(attempt: Attempt, result: AttemptResult) -> Outcome | None:
    """Decide the attempt's :class:`~seqharness.outcome.Outcome` (passed, failed,
    halted, limited, interrupted).

    Called once the agent's process group has ended, before anything of the
    attempt is recorded.  Stops at the first non-None result; the backend's
    own reading (done tag, exit code, its CLI's error events) is a
    ``trylast`` implementation.  A wrapper sees that reading and may replace
    it: a verification gate runs the tests after a pass and returns a failure::

        @pytest.hookimpl(wrapper=True)
        def pytest_seqharness_decide_outcome(attempt, result):
            outcome = yield
            if outcome.kind == "passed" and not tests_pass(attempt.spec.workdir):
                return Outcome("failed", "verification failed")
            return outcome

    :param attempt: the attempt (``attempt.backend``, ``attempt.transcript``).
    :param result: exit status, signal seen, reason, duration, output tail.

    Use in conftest plugins: yes.
    """


@hookspec
def pytest_seqharness_attempt_logreport(attempt: Attempt, outcome: Outcome) -> None:
    """Record the attempt: its outcome is decided (or it was interrupted).

    Called once per attempt with Ctrl-C and SIGTERM held off.  The progress
    log appends its entry here (step 4 of :mod:`seqharness.record`); the state
    recorder is a ``tryfirst`` wrapper that writes the state (step 5) and the
    checkboxes (step 6) after every other implementation, even one that
    raised.  Do not start long work here; use
    :func:`pytest_seqharness_attempt_finish`.

    :param attempt: the attempt; ``attempt.result`` is None if it was interrupted
        before the agent ended.
    :param outcome: the decided outcome.

    Use in conftest plugins: yes.
    """


@hookspec
def pytest_seqharness_attempt_finish(attempt: Attempt, outcome: Outcome) -> None:
    """The attempt is over and its record is on disk (state and ``tasks.md``).

    The place for work after an attempt: notifications, commits, a summary.
    Not called for an interrupted attempt (the run is ending).

    :param attempt: the attempt.
    :param outcome: its recorded outcome.

    Use in conftest plugins: yes.
    """


@hookspec
def pytest_seqharness_wait(spec: SpecRun, unit: Unit, wait: Wait) -> None:
    """The run is about to sleep before an attempt of *unit*.

    ``wait.kind`` is ``"delay"`` (``--delay``) or ``"usage-limit"`` (the backend
    reported a usage or rate limit; ``wait.reason`` says which, the pause is
    already recorded in the state so a restarted run keeps waiting).
    ``wait.until`` is the epoch time the wait ends.  Ctrl-C ends the wait and
    the run.

    Use in conftest plugins: yes.
    """


@hookspec
def pytest_seqharness_halt(spec: SpecRun, unit: Unit, question: str) -> None:
    """A unit halted: the agent needs a human.  The run stops after this unit
    (exit 2); the halt and *question* are already recorded in the state.

    Use in conftest plugins: yes (notify someone).
    """


@hookspec
def pytest_seqharness_report_facts(spec: SpecRun, unit: Unit, result: UnitResult) -> list[tuple[str, str]] | None:
    """Return ``(name, value)`` facts about a unit that ran, for its report.

    Called once per unit that ran, after its last attempt.  All results are
    collected in order (the built-in facts first): the JUnit plugin writes them
    to the test case's ``<system-out>`` (and ``<properties>`` under
    ``junit_family=xunit1``).

    Use in conftest plugins: yes.
    """
