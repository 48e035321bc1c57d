"""What the built-in profiles share: :class:`CliProfile`, a backend for one
named agent CLI (its program, headless flags, extra arguments and environment
from ``SEQHARNESS_<NAME>_BIN/_ARGS/_ENV``) whose :meth:`~CliProfile.interpret`
turns what its stream reader (:mod:`seqharness.profiles.readers`) saw into pass,
fail, halt or limited.  The configuration variables: docs/session.md, "Profiles".
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping

from seqharness.backends import Backend, BackendContext, BackendError, Invocation, StreamReader
from seqharness.limits import Limit, one_line
from seqharness.outcome import FAILED, HALTED, LIMITED, PASSED, AttemptResult, Outcome
from seqharness.outcome import interpret as plain_interpret
from seqharness.profiles.readers import Dialog, LineReader, TextReader
from seqharness.signals import DONE, DONE_TAG, DONE_TAG_RE, HALT, TAG_OPEN, TAG_RE, SignalScanner

__all__ = [
    "ARGV_PROMPT_LIMIT",
    "CliProfile",
    "final_signal",
    "halt_question",
    "has_done_tag",
    "is_root",
    "prompt_argument",
    "prompt_pointer",
]

# Linux refuses a single argv element over 128 KiB (MAX_ARG_STRLEN) with E2BIG;
# a longer prompt is handed over as a pointer to the prompt file instead.
ARGV_PROMPT_LIMIT = 100_000


# --------------------------------------------------------------------------- signals
def final_signal(text: str, prompt: str) -> str | None:
    """The counted signal (``"done"``/``"halt"``) in the agent's final *text*.

    The final text is the agent's own words, but it may still parrot a line of
    the prompt that explains the protocol; :class:`SignalScanner` applies the
    same echo rules as for plain output (a bare tag line always counts).
    """
    if TAG_OPEN not in text:
        return None
    scanner = SignalScanner(prompt)
    scanner.feed(text)
    scanner.feed("\n")
    scanner.close()
    return scanner.signal


def halt_question(text: str) -> str:
    """The question of a halting agent: its final text without the tags."""
    question = TAG_RE.sub("", text).strip()
    if len(question) > 4000:
        question = "…" + question[-4000:]
    return question or "the agent asked for a human (no question given)"


def has_done_tag(text: str) -> bool:
    return TAG_OPEN in text and DONE_TAG_RE.search(text) is not None


# --------------------------------------------------------------------------- backends
def _env_name(name: str) -> str:
    return "SEQHARNESS_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


class CliProfile(Backend):
    """A built-in profile: a named CLI with fixed headless flags.

    Subclasses set :attr:`name`, :attr:`default_program`, implement
    :meth:`base_argv` / :meth:`prompt_argv`, and usually :meth:`reader`,
    :meth:`error_reason` and :meth:`find_limit`; :meth:`interpret` is shared.
    The factory text after ``NAME:`` is extra arguments (``shlex``-split).
    *environ* is the environment the agent inherits and the one the
    ``SEQHARNESS_<NAME>_*`` variables are read from (default ``os.environ``).
    """

    name = "cli"
    default_program = "cli"
    dialogs: tuple[Dialog, ...] = ()

    def __init__(self, extra: str = "", *, environ: Mapping[str, str] | None = None) -> None:
        # The environment the agent inherits (tests and embedders pass their own).
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.extra_text = extra.strip()
        prefix = _env_name(self.name)
        try:
            self.extra_args = shlex.split(self.environ.get(prefix + "_ARGS", "")) + shlex.split(self.extra_text)
            env_words = shlex.split(self.environ.get(prefix + "_ENV", ""))
        except ValueError as exc:
            raise BackendError(f"backend {self.name!r}: cannot split the extra arguments: {exc}") from None
        self.extra_env: dict[str, str] = {}
        for word in env_words:
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise BackendError(f"backend {self.name!r}: {prefix}_ENV wants KEY=VALUE words, got {word!r}")
            self.extra_env[key] = value
        self.program_path = self.environ.get(prefix + "_BIN", "").strip() or self.default_program

    # -- invocation ------------------------------------------------------------------
    def program(self) -> str:
        return self.program_path

    def describe(self) -> str:
        return f"{self.name}:{self.extra_text}" if self.extra_text else self.name

    def base_argv(self, ctx: BackendContext) -> list[str]:
        """Program and headless flags, before the user's extra arguments."""
        raise NotImplementedError

    def prompt_argv(self, ctx: BackendContext) -> list[str]:
        """The arguments that carry the prompt, after the extra arguments."""
        return [prompt_argument(ctx)]

    def default_env(self) -> dict[str, str]:
        """Variables set unless the user's environment already has them."""
        return {}

    def forced_env(self) -> dict[str, str]:
        """Variables this profile must set whatever the environment says."""
        return {}

    def invocation(self, ctx: BackendContext) -> Invocation:
        argv = self.base_argv(ctx) + self.extra_args + self.prompt_argv(ctx)
        defaults, forced = self.default_env(), self.forced_env()
        env: dict[str, str] | None = None
        if defaults or forced or self.extra_env or self.environ is not os.environ:
            env = dict(self.environ)
            for key, value in defaults.items():
                env.setdefault(key, value)
            env.update(forced)
            env.update(self.extra_env)
        return Invocation(argv=argv, env=env)

    # -- reading -----------------------------------------------------------------------
    def reader(self, ctx: BackendContext) -> LineReader:
        return LineReader(ctx, self.dialogs)

    def interpret(self, result: AttemptResult, reader: StreamReader | None = None, *,
                  trust_exit_code: bool = False) -> Outcome:
        """pass / fail / halt / limited, in this order of precedence:

        interrupted and spawn errors as usual; an attempt the reader asked to
        stop fails with the reader's reason; a timeout or idle stop is a plain
        failure (never a limit); a usage limit (unless the run nevertheless
        ended cleanly with the done signal); a halt in the final text; errors
        the stream or the exit code reveal; denied tools; a non-zero exit;
        then pass only with the done signal in the final text (or
        ``--trust-exit-code``).
        """
        if not isinstance(reader, LineReader):
            return plain_interpret(result, trust_exit_code=trust_exit_code)
        if result.reason in ("interrupted", "spawn-error", "question"):
            return plain_interpret(result, trust_exit_code=trust_exit_code)
        stop = reader.stop_requested
        if (stop and result.reason != "exited") or result.reason == "stopped":
            return Outcome(FAILED, stop or "the attempt was stopped")
        if result.reason in ("timeout", "idle"):
            outcome = plain_interpret(result, trust_exit_code=trust_exit_code)
            if reader.errors:
                outcome.reason += f"; last error: {reader.errors[-1][:200]}"
            return outcome
        signal, question = self.signal_of(reader)
        code = result.exit_status
        error = self.error_reason(result, reader)
        clean_pass = code == 0 and error is None and signal == DONE
        limit = self.find_limit(result, reader)
        if limit is not None and not clean_pass:
            return Outcome(LIMITED, limit.reason, resume_at=limit.resume_at)
        if signal == HALT:
            return Outcome(HALTED, "agent asked for human input", question=question)
        if error is not None:
            return Outcome(FAILED, error)
        if reader.denials:
            names = ", ".join(dict.fromkeys(reader.denials))
            return Outcome(FAILED, f"{self.name}: tools were denied: {names} "
                                   f"(run without a permission bypass?)")
        if code is None:
            return Outcome(FAILED, f"the agent was killed by signal {result.term_signal}")
        if code != 0:
            said = " (its final text had the done signal, but a failing exit code wins)" if signal == DONE else ""
            last = reader.errors[-1] if reader.errors else (reader.noise[-1] if reader.noise else "")
            detail = f": {one_line(last, 200)}" if last else ""
            return Outcome(FAILED, f"{self.name} exited with code {code}{said}{detail}")
        if signal == DONE:
            return Outcome(PASSED, f"{self.name} said {DONE_TAG} in its final message and exited 0")
        if trust_exit_code:
            return Outcome(PASSED, f"{self.name} exited 0 (--trust-exit-code; no done signal)")
        return Outcome(FAILED, self.no_signal_reason(reader))

    # -- hooks for the profiles -----------------------------------------------------------
    def final_text(self, reader: LineReader) -> str:
        """The agent's own final text (never the prompt, tool output or errors)."""
        return reader.final.text()

    def signal_of(self, reader: LineReader) -> tuple[str | None, str]:
        """The counted signal in the final text, and the question if it halts."""
        if isinstance(reader, TextReader):
            signal = reader.scanner.signal
            if signal != HALT:
                return signal, ""
            lines = [line for line in reader.scanner.halt_context.splitlines() if not reader.is_status(line.strip())]
            question = "\n".join(lines).strip()
            return signal, question or "the agent asked for a human (no question given)"
        text = self.final_text(reader)
        signal = final_signal(text, reader.prompt)
        return signal, (halt_question(text) if signal == HALT else "")

    def error_reason(self, result: AttemptResult, reader: LineReader) -> str | None:
        """A one-line failure reason from the stream or exit code, or None."""
        return reader.fatal

    def find_limit(self, result: AttemptResult, reader: LineReader) -> Limit | None:
        return reader.limit

    def no_signal_reason(self, reader: LineReader) -> str:
        where = ""
        if reader.tag_in_tool_output:
            where = " (a tag appeared only in tool output, which never counts)"
        elif not reader.final:
            where = " (no final message was seen in its output)"
        if reader.overlong_lines:
            where += f" ({reader.overlong_lines} overlong output lines were skipped)"
        return (f"{self.name} exited 0 without {DONE_TAG} "
                f"in its final message{where}")


def prompt_argument(ctx: BackendContext) -> str:
    """The prompt as one argv element, or, when it is too long for one
    (Linux: 128 KiB), a short instruction to read the prompt file."""
    if len(ctx.prompt.encode("utf-8", errors="replace")) <= ARGV_PROMPT_LIMIT:
        return ctx.prompt
    return prompt_pointer(ctx)


def prompt_pointer(ctx: BackendContext) -> str:
    """A short prompt that sends the agent to the prompt file."""
    return (f"Your complete instructions for this task are in the file {ctx.prompt_file} "
            f"(too long to pass on the command line). Read that whole file first, then follow it exactly.")


def is_root(geteuid: Callable[[], int] | None = None) -> bool:
    getter = geteuid or getattr(os, "geteuid", None)
    return bool(getter is not None and getter() == 0)

