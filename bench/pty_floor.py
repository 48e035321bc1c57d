"""The streaming floor: a raw ``os.read`` loop on the agent's PTY.

``python pty_floor.py OUT.json -- AGENT ARGV...`` spawns the agent with
pexpect, reads the master fd in 64 KiB ``os.read`` calls until EOF and throws
the bytes away (checking only that the done signal ends the output), then
writes the time from spawn to reaped exit, the bytes read and its own peak RSS
to OUT.json.
"""

import json
import sys
import time

from floorlib import spawn_read
from rss_launcher import peak_kib


def main() -> int:
    out_path = sys.argv[1]
    agent = sys.argv[sys.argv.index("--") + 1:]
    start = time.perf_counter()
    status, nbytes, seen = spawn_read(agent)
    seconds = time.perf_counter() - start
    info = {"seconds": seconds, "bytes": nbytes, "exit": status, "signal": seen, **peak_kib()}
    with open(out_path, "w") as fh:
        json.dump(info, fh)
    return 0 if status == 0 and seen else 1


if __name__ == "__main__":
    sys.exit(main())
