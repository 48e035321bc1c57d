"""The benchmark's tiny fake agent: about 20 lines, the done signal, exit 0.

Used by every contender of the benchmark (seqharness and its floors), so the
agent's own cost is the same on both sides of every ratio.  It does nothing
but one ``write(2)``: no imports beyond ``os``/``sys``, no reading of the
prompt file it is given (``argv[1]``).  Run it as ``python -I -S tiny_agent.py
PROMPT_FILE`` (isolated, no ``site``): that is the cheapest a Python agent
gets.  ``--mib N`` turns it into the streaming agent of figure 4: about N MiB
of log lines in 64 KiB writes, then the signal as the very last line.
"""

import os
import sys

LINES = b"".join(b"tiny-agent: step %2d of 19 - working on the task, all fine\n" % i
                 for i in range(1, 20))
SIGNAL = b"<promise>TASK_DONE</promise>\n"


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


def main() -> int:
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--mib":
        total = int(float(args[1]) * 1024 * 1024)
        line = b"flood: compiling module 0000 ... ok [\x1b[32mPASS\x1b[0m] some build log text here\n"
        block = line * (65536 // len(line))
        sent = 0
        while sent + len(block) <= total:
            _write_all(block)
            sent += len(block)
        if total > sent:
            _write_all(line * ((total - sent) // len(line) + 1))
    _write_all(LINES + SIGNAL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
