"""conftest.py template: add an agent CLI that seqharness does not ship.

After copying, run ``seqharness .kiro/specs/<feature> --backend myagent``
(or ``--backend "myagent:--model fast"``: the text after the colon reaches the
factory as ``extra``).
"""

import shlex

from seqharness.backends import Backend, BackendContext, BackendRegistry, Invocation


class MyAgent(Backend):
    """Runs ``my-agent --non-interactive --prompt-file FILE [extra args]``."""

    name = "myagent"

    def __init__(self, extra: str = "") -> None:
        self.extra = shlex.split(extra)

    def program(self) -> str:
        return "my-agent"                        # EDIT: the executable on PATH (or a full path)

    def invocation(self, ctx: BackendContext) -> Invocation:
        # An argv list, never a shell string: task text cannot become a command.
        return Invocation(argv=[self.program(), "--non-interactive",   # EDIT: its headless flags
                                "--prompt-file", ctx.prompt_file, *self.extra])

    # The default interpret() passes a task when the agent prints
    # <promise>TASK_DONE</promise> in its own words and exits 0, and halts on
    # <promise>HALT</promise>.  Override reader()/interpret() for a CLI with a
    # structured (JSON) output stream.


def pytest_seqharness_add_backends(backends: BackendRegistry) -> None:
    """Make ``--backend myagent`` known (a built-in name given here replaces the built-in)."""
    backends.add("myagent", MyAgent)
