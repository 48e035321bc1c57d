"""Floor A: a bare Python loop that runs the tiny agent N times.

``python floor_loop.py N PROMPT_FILE -- AGENT ARGV...`` spawns the agent with
pexpect N times in a row, reads each to the end and checks the done signal;
nothing else (no pytest, no files).  ``{prompt_file}`` in the agent argv is
replaced by PROMPT_FILE.  Exit 0 when every run exited 0 with the signal.
The benchmark times the whole process for N=1 and N=50; the slope is the
per-task floor.
"""

import sys

from floorlib import spawn_read


def main(argv: list[str]) -> int:
    n = int(argv[0])
    prompt_file = argv[1]
    agent = [a.replace("{prompt_file}", prompt_file) for a in argv[argv.index("--") + 1:]]
    bad = 0
    for _ in range(n):
        status, _nbytes, seen = spawn_read(agent)
        if status != 0 or not seen:
            bad += 1
    if bad:
        print(f"floor_loop: {bad} of {n} runs failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
