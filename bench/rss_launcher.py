"""Run the ``seqharness`` command in this process and record its peak memory.

``python rss_launcher.py OUT.json SEQHARNESS-ARGS...`` does what the
``seqharness`` console script does (``seqharness.cli.main``), then, before
exiting, writes the process's own peak resident set size to OUT.json:
``VmHWM`` from ``/proc/self/status`` and ``ru_maxrss`` of ``RUSAGE_SELF``
(both KiB on Linux; they agree).

Why in-process: the peak belongs to the seqharness process alone.  A parent's
``RUSAGE_CHILDREN`` is the maximum over *every* descendant it waited for,
including the agent (a big agent would be blamed on seqharness), and polling
``/proc/<pid>/status`` from outside can miss a peak reached after the last
poll.  Reading the process's own high-water mark after ``main()`` returns
sees every allocation the run made; nothing after that point allocates more.
"""

import json
import resource
import sys


def peak_kib() -> dict:
    out = {"ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    key, value = line.split(":", 1)
                    out[key.lower() + "_kib"] = int(value.split()[0])
    except OSError:
        pass
    return out


def main() -> int:
    out_path = sys.argv[1]
    from seqharness.cli import main as seqharness_main

    rc = 1
    try:
        rc = seqharness_main(sys.argv[2:])
    finally:
        info = peak_kib()
        info["exit"] = rc
        with open(out_path, "w") as fh:
            json.dump(info, fh)
    return rc


if __name__ == "__main__":
    sys.exit(main())
