"""One sample of figure 5's parse timings, in a fresh process.

    python bench/parse_once.py N parse|floor|units|ref

Builds the N-task plan of :func:`specgen.big_tasks_md` (not timed), then times
exactly one call and prints its wall time in seconds:

* ``parse``: :func:`seqharness.taskscan.parse` of the plan;
* ``floor``: the one-regex scan of the checkbox lines (the floor);
* ``units``: :func:`seqharness.units.build_units` over the parsed plan (the
  parse itself not timed);
* ``ref``: a fixed piece of pure-Python work, the same in every run: on a
  shared VM identical work takes up to 1.6x longer when the host is busy, and
  this shows which kind of moment a run had.

Why a fresh process per sample: that is how seqharness meets a tasks.md (one
parse, early, in a new process, memory not yet touched), and it keeps the
benchmark process's own heap - the 100k-task plans, the other contenders'
garbage - out of the figure: inside one long-lived process the same parse
measured 10-15 % slower after other work than when repeated back to back.
"""

from __future__ import annotations

import gc
import re
import sys
import time

import specgen  # bench/ is this script's folder, hence on sys.path

FLOOR_RE = re.compile(rb"^[ \t]*[-*+] \[(.)\][ \t]*(.*?)\r?$", re.MULTILINE)


def main() -> int:
    n, what = int(sys.argv[1]), sys.argv[2]
    from seqharness.taskscan import parse

    data = specgen.big_tasks_md(n)
    if what == "parse":
        def call() -> object:
            return parse(data)
    elif what == "floor":
        def call() -> object:
            return FLOOR_RE.findall(data)
    elif what == "ref":
        def call() -> object:  # fixed pure-Python work: how fast this CPU is right now
            return sum(i * i for i in range(300_000))
    elif what == "units":
        from seqharness.units import build_units

        parsed = parse(data)

        def call() -> object:
            return build_units(parsed)
    else:
        print(f"unknown sample {what!r}", file=sys.stderr)
        return 2
    gc.collect()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    del result
    print(repr(seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
