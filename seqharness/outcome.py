"""What one agent attempt did (:class:`AttemptResult`, raw) and what that means
for its task (:class:`Outcome`: pass, fail, halt, ...).  A task passes only when
the agent printed a counted done tag *and* exited 0, not on exit 0 alone, unless
``--trust-exit-code`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqharness.signals import DONE_TAG

__all__ = [
    "FAILED",
    "HALTED",
    "INTERRUPTED",
    "LIMITED",
    "PASSED",
    "AttemptResult",
    "Outcome",
    "interpret",
]

PASSED = "passed"
FAILED = "failed"
HALTED = "halted"
INTERRUPTED = "interrupted"
LIMITED = "limited"         # usage or rate limit: wait until resume_at, retry for free


@dataclass
class AttemptResult:
    """What happened in one attempt (see :func:`seqharness.session.run_attempt`)."""

    exit_status: int | None  # exit code, None if killed by a signal (or unknown)
    term_signal: int | None  # signal number if it died from one
    signal: str | None  # counted completion signal: "done" | "halt" | None
    reason: str  # "exited" | "timeout" | "idle" | "question" | "interrupted" | "stopped" | "spawn-error"
    duration: float  # seconds
    output_bytes: int
    tail: str  # last ~50 lines (max ~8 KB) of output, ANSI-stripped, for reports
    halt_context: str
    error: str | None  # human message for spawn errors etc.


@dataclass
class Outcome:
    kind: str                   # passed | failed | halted | interrupted
    reason: str                 # one line, for reports
    question: str | None = None  # what a halting agent asked
    resume_at: float | None = None  # LIMITED: epoch seconds of the reset, None if not given
    details: str | None = None  # longer text for reports and the next prompt (a check's output tail)


def interpret(result: AttemptResult, *, trust_exit_code: bool = False) -> Outcome:
    """The default reading of an attempt, for backends that print plain text."""
    if result.reason == "interrupted":
        return Outcome(INTERRUPTED, "interrupted by the user")
    if result.reason == "spawn-error":
        return Outcome(FAILED, f"could not start the agent: {result.error}")
    if result.reason == "question":
        screen = (result.tail or "").strip().splitlines()[-15:]
        return Outcome(HALTED, "the agent is waiting for an answer to a question the harness does not know",
                       question="\n".join(screen) or "(empty screen)")
    if result.signal == "halt":
        question = (result.halt_context or "").strip() or "the agent asked for a human (no question given)"
        return Outcome(HALTED, "agent asked for human input", question=question)
    if result.reason == "stopped":
        return Outcome(FAILED, "the backend stopped the attempt")
    if result.reason == "timeout":
        return Outcome(FAILED, f"timeout: the agent ran longer than the --timeout ({result.duration:.0f}s) and was stopped")
    if result.reason == "idle":
        return Outcome(FAILED, "idle: the agent printed nothing for longer than --idle-timeout and was stopped")
    code = result.exit_status
    if code is None:
        sig = result.term_signal
        return Outcome(FAILED, f"the agent was killed by signal {sig}")
    if code != 0:
        said = " (it printed the done signal, but a failing exit code wins)" if result.signal == "done" else ""
        return Outcome(FAILED, f"the agent exited with code {code}{said}")
    if result.signal == "done":
        return Outcome(PASSED, f"the agent printed {DONE_TAG} and exited 0")
    if trust_exit_code:
        return Outcome(PASSED, "the agent exited 0 (--trust-exit-code; no done signal)")
    return Outcome(FAILED, f"the agent exited 0 without printing {DONE_TAG}")
