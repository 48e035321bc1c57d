#!/usr/bin/env python
"""seqharness against its physical floors, side by side (issue 5).

    python bench/bench.py            # full: every figure, 7 pairs, 100 MiB, 100k tasks
    python bench/bench.py --quick    # CI: few pairs, small sizes (well under a minute)
    python bench/bench.py --json out.json --only 1,3

Every comparison runs as pairs in this one process run (A, B, A, B, ...) after
one untimed warm-up of each contender; each figure is printed as
median [min–max].  The ratio seqharness / floor is printed as the ratio of
the two medians, with the lowest and highest per-round ratio in brackets
(absolute times drift 10-30 % on shared machines, paired ratios much less).  All contenders run the same tiny agent
(``bench/tiny_agent.py``, started as ``python -I -S``).

Figures (see bench/README.md for the method of each):

1. per-task overhead without tmux: slope between a 1-task and an N-task run
   of ``seqharness SPEC --delay 0 --no-tmux --junitxml X --backend cmd:...``,
   against floor P (``floor_plugin.py``) and floor A (``floor_loop.py``);
2. the same with tmux (private ``-L`` socket, killed after each run) against
   floor P plus a window opened and closed per task over one ``tmux -C``
   connection; plus a 500-task tmux run that must complete (windows recycled);
3. start-up: ``seqharness SPEC --co -q`` (50 tasks) against
   ``python -c "import pytest, pexpect, pluggy, rich"``, with and without
   pytest plugin autoload;
4. streaming: one task whose agent prints 100 MiB against a raw ``os.read``
   loop on a PTY: MiB/s and the seqharness process's peak RSS;
5. parsing and selection: ``seqharness.taskfile.parse`` and ``--co -q`` on
   1k/10k/100k tasks, and the per-task slope at 50 vs 500 tasks (linearity);
6. the verification gate's own overhead: the figure-1 slope with
   ``--verify true`` against the same run without ``--verify``, and the floor
   of the check, ``subprocess.run(["true"])`` timed in a loop in this process.

Exit status: 0 when every correctness check passed (tasks passed, signals
detected, the long tmux run completed); goals met or missed are reported, not
turned into an exit status (``tests/test_bench_quick.py`` judges the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import specgen  # bench/ is not a package: imported from its folder

TINY_AGENT = HERE / "tiny_agent.py"
SEED = {"fig1_ratio_A": 4.4, "fig2_ms_per_task": 59.0}


# --------------------------------------------------------------------------- helpers
class BenchError(Exception):
    pass


def seqharness_command() -> list[str]:
    script = Path(sys.executable).parent / "seqharness"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "seqharness"]


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that would steer pytest, tmux or the harness."""
    drop_prefixes = ("PYTEST_", "TMUX", "SEQHARNESS_", "FAKE_AGENT_")
    drop = {"CODEAGENT_NO_TMUX", "CODEX_TIMEOUT", "PYTHONDONTWRITEBYTECODE"}
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes) and k not in drop}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def ratio(num: list[float], den: list[float]) -> dict[str, float]:
    """Headline: median(num) / median(den) (robust to one bad run on either side);
    min and max: the per-round ratios (rounds with a non-positive floor are left out)."""
    rounds = [x / y for x, y in zip(num, den) if y > 0]
    med = statistics.median(num) / statistics.median(den)
    return {"median": med, "min": min(rounds, default=med), "max": max(rounds, default=med),
            "n": len(rounds), "values": rounds}


def fmt(s: dict[str, float], scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    def f(v: float) -> str:
        return f"{v * scale:.{digits}f}"
    return f"{f(s['median'])} [{f(s['min'])}–{f(s['max'])}]{(' ' + unit) if unit else ''}"


def junit_counts(path: Path) -> dict[str, int]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return counts


def say(text: str = "") -> None:
    print(text, flush=True)


def progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine
def machine() -> dict[str, str]:
    info: dict[str, str] = {}
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpu"] = cpu
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    info["cores"] = f"{os.cpu_count()} ({usable} usable)"
    info["os"] = f"{platform.system()} {platform.release()}"
    info["python"] = f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"
    from importlib.metadata import PackageNotFoundError, entry_points, version
    for pkg in ("pytest", "pexpect", "ptyprocess", "pluggy", "rich", "seqharness"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = "not installed"
    try:
        info["tmux"] = subprocess.run(["tmux", "-V"], capture_output=True, text=True,
                                      timeout=5, check=False).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        info["tmux"] = "not installed"
    plugins = sorted(f"{e.name} ({e.value})" for e in entry_points(group="pytest11"))
    info["autoloaded pytest plugins"] = ", ".join(plugins) or "none"
    info["load average at start"] = load_average()
    return info


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def filesystem_of(path: Path) -> str:
    best, desc = "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype, opts = line.split()[:4]
            if str(path).startswith(mnt) and len(mnt) > len(best):
                best, desc = mnt, f"{fstype} on {dev} ({mnt}, {opts.split(',')[0]})"
    except OSError:
        pass
    return desc


# --------------------------------------------------------------------------- the bench
class Bench:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.quick = opts.quick
        self.tmp = Path(tempfile.mkdtemp(prefix="seqharness-bench-", dir=opts.tmp))
        self.python = sys.executable
        self.seqharness = shlex.split(opts.seqharness) if opts.seqharness else seqharness_command()
        self.env = clean_env()
        # Byte code is cached (as for any installed package), but in the scratch folder:
        # the benchmark writes nothing into the repository or site-packages, and a
        # PYTHONDONTWRITEBYTECODE in the caller's environment cannot make every run
        # recompile what it imports.  The warm-up runs fill the cache.
        self.env["PYTHONPYCACHEPREFIX"] = str(self.tmp / "pycache")
        self.agent = [self.python, "-I", "-S", str(TINY_AGENT)]
        self.backend = "cmd:" + shlex.join(self.agent) + " {prompt_file}"
        self.prompt = self.tmp / "prompt.md"
        self.prompt.write_text("Do the task, then print <promise>TASK_DONE</promise>.\n")
        self.sockets: list[str] = []
        self.tmux = shutil.which("tmux") is not None
        self.results: dict = {"mode": "quick" if self.quick else "full", "figures": {}, "goals": [],
                              "checks": []}
        self.logs = self.tmp / "logs"
        self.logs.mkdir()
        self._log_n = 0

    # -- plumbing ------------------------------------------------------------
    def reps(self, full: int, quick: int) -> int:
        if self.opts.reps:
            return self.opts.reps
        return quick if self.quick else full

    def run(self, argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            expect: int | None = 0, timeout: float = 900) -> float:
        """Run *argv*, return its wall time in seconds; output goes to a log file."""
        self._log_n += 1
        log = self.logs / f"{self._log_n:05d}.log"
        with open(log, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, cwd=cwd or self.tmp, env=env or self.env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            # Not subprocess.run(timeout=...): with a timeout, Popen.wait polls
            # with sleeps growing to 50 ms, so every time it measured was
            # rounded up to the next poll (164, 214, 264 ... ms).  A blocking
            # waitpid returns at the exit; a timer enforces the timeout.
            watchdog = threading.Timer(timeout, proc.kill)
            watchdog.start()
            try:
                proc.wait()
            finally:
                watchdog.cancel()
            seconds = time.perf_counter() - start
        if seconds >= timeout:
            raise BenchError(f"timed out after {timeout:.0f} s: {shlex.join(argv)}")
        if expect is not None and proc.returncode != expect:
            tail = log.read_text(errors="replace")[-3000:]
            raise BenchError(f"exit {proc.returncode} (expected {expect}) from {shlex.join(argv)}\n{tail}")
        return seconds

    def run_then_kill_tmux(self, argv: list[str], root: Path, env: dict[str, str],
                           tmux: str | None) -> float:
        """:meth:`run` in *root*, then stop the run's private tmux server (untimed)."""
        try:
            return self.run(argv, cwd=root, env=env)
        finally:
            if tmux:
                self.kill_tmux(tmux)

    def settle(self) -> None:
        """Start a figure on a quiet machine: flush what the previous one wrote.

        Figure 4 alone leaves about a GiB of transcripts in the page cache;
        the kernel writing them back during the next figure cost the parse
        figure up to 1.6x (its one-regex floor as much).  ``sync`` waits for
        that write-back here, outside every measurement.
        """
        progress("settling: sync")
        os.sync()
        time.sleep(0.5)

    def socket(self) -> str:
        name = f"shbench-{os.getpid()}-{len(self.sockets)}"
        self.sockets.append(name)
        return name

    def kill_tmux(self, name: str) -> None:
        """Stop the private server and remove its socket file (tmux leaves it behind)."""
        proc = subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, text=True,
                              timeout=10, env=self.env, check=False)
        if proc.returncode != 0 and not re.search(r"no server|error connecting", proc.stderr):
            return  # a server we could not stop keeps its socket
        folder = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        try:
            (folder / name).unlink()
        except OSError:
            pass

    def cleanup(self) -> None:
        for name in self.sockets:
            self.kill_tmux(name)
        if not self.opts.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.results["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
        if not ok:
            say(f"   CHECK FAILED: {name}: {detail}")

    def goal(self, gid: str, text: str, value: float, op: str, target: float, unit: str = "",
             ci_value: float | None = None) -> None:
        """Record a goal; the CI gross limit is 3x the goal (or a third of it for >=).

        *ci_value* is what the gross check looks at when the median is not the
        right statistic for it: for an absolute time measured in this process,
        the fastest round (load on a shared machine only ever adds time).
        """
        met = value <= target if op == "<=" else value >= target
        gross = target * 3 if op == "<=" else target / 3
        judged = value if ci_value is None else ci_value
        gross_ok = judged <= gross if op == "<=" else judged >= gross
        if met:
            verdict = "MET"
        elif op == "<=":
            verdict = f"MISSED by {value / target:.2f}x ({value - target:+.2f}{unit})"
        else:
            verdict = f"MISSED: {value / target:.0%} of the goal"
        self.results["goals"].append({"id": gid, "text": text, "value": value, "op": op,
                                      "goal": target, "met": met, "gross_limit": gross, "ci_value": judged,
                                      "gross_ok": gross_ok, "verdict": verdict})
        say(f"   goal {text}: {value:.2f}{unit} {op} {target}{unit}: {verdict}")

    def interleave(self, contenders: dict[str, Callable[[], float]], reps: int, label: str,
                   warmup: dict[str, Callable[[], object]] | None = None) -> dict[str, list[float]]:
        """One untimed warm-up each, then *reps* rounds of A, B, ... in order.

        In quick mode a cheaper *warmup* (e.g. the 1-task run only) replaces
        the contender as its warm-up when given.
        """
        warm = warmup if (self.quick and warmup) else contenders
        for name, fn in warm.items():
            progress(f"{label}: warm-up {name}")
            fn()
        values: dict[str, list[float]] = {name: [] for name in contenders}
        for rep in range(reps):
            for name, fn in contenders.items():
                progress(f"{label}: pair {rep + 1}/{reps} {name}")
                values[name].append(fn())
        return values

    # -- contenders ----------------------------------------------------------
    def seqharness_run(self, n: int, *, tmux: str | None = None, where: str = "s",
                       extra: list[str] | None = None) -> float:
        root = self.tmp / where
        spec = specgen.run_spec(root, n)
        junit = root / "junit.xml"
        argv = [*self.seqharness, str(spec), "--delay", "0"]
        env = dict(self.env)
        if tmux:
            argv += ["--tmux-socket", tmux]
        else:
            argv += ["--no-tmux"]
        # --max-iterations: the default budget (50) would skip tasks beyond the 50th
        argv += ["--junitxml", str(junit), "--backend", self.backend,
                 "--max-iterations", str(max(50, n)), *(extra or [])]
        seconds = self.run_then_kill_tmux(argv, root, env, tmux)
        counts = junit_counts(junit)
        if counts["tests"] != n or counts["failures"] or counts["errors"] or counts["skipped"]:
            raise BenchError(f"seqharness run of {n} tasks: junit says {counts}")
        return seconds

    def floor_p_run(self, n: int, *, tmux: str | None = None) -> float:
        root = self.tmp / "p"
        spec = specgen.run_spec(root, n)
        junit = root / "junit.xml"
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        argv = [self.python, "-m", "pytest", "-p", "floor_plugin", str(spec / "tasks.md"),
                f"--rootdir={root}", "--junitxml", str(junit),
                "--floor-agent", shlex.join(self.agent) + " {prompt_file}",
                "--floor-prompt", str(self.prompt)]
        if tmux:
            argv += ["--floor-tmux", tmux]
        seconds = self.run_then_kill_tmux(argv, root, env, tmux)
        counts = junit_counts(junit)
        if counts["tests"] != n or counts["failures"] or counts["errors"]:
            raise BenchError(f"floor P run of {n} tasks: junit says {counts}")
        data = (spec / "tasks.md").read_text()
        if data.count("- [x]") != n:
            raise BenchError("floor P did not tick every box")
        return seconds

    def floor_a_run(self, n: int) -> float:
        return self.run([self.python, str(HERE / "floor_loop.py"), str(n), str(self.prompt), "--",
                         *self.agent, "{prompt_file}"])

    def slope(self, run: Callable[[int], float], small: int, big: int) -> float:
        t_small = run(small)
        t_big = run(big)
        return (t_big - t_small) / (big - small)

    # -- figure 1 ------------------------------------------------------------
    def figure1(self) -> None:
        n = 20 if self.quick else 50
        reps = self.reps(7, 3)
        say(f"\n1. Per-task overhead without tmux: slope between 1-task and {n}-task runs, ms/task "
            f"({reps} rounds S, P, A)")
        vals = self.interleave({
            "seqharness": lambda: self.slope(lambda k: self.seqharness_run(k), 1, n),
            "floor P": lambda: self.slope(lambda k: self.floor_p_run(k), 1, n),
            "floor A": lambda: self.slope(lambda k: self.floor_a_run(k), 1, n),
        }, reps, "fig 1", warmup={"seqharness": lambda: self.seqharness_run(1),
                                  "floor P": lambda: self.floor_p_run(1),
                                  "floor A": lambda: self.floor_a_run(1)})
        s, p, a = vals["seqharness"], vals["floor P"], vals["floor A"]
        r_p = ratio(s, p)
        r_a = ratio(s, a)
        say(f"   seqharness          {fmt(summary(s), 1000, unit='ms/task')}")
        say(f"   floor P (pytest)    {fmt(summary(p), 1000, unit='ms/task')}")
        say(f"   floor A (loop)      {fmt(summary(a), 1000, unit='ms/task')}")
        say(f"   overhead over P     {fmt(summary([x - y for x, y in zip(s, p)]), 1000, unit='ms/task')}")
        say(f"   ratio to P          {fmt(r_p, digits=2)}")
        say(f"   ratio to A          {fmt(r_a, digits=2)}   (the seed: {SEED['fig1_ratio_A']})")
        self.results["figures"]["1"] = {"tasks": n, "seqharness_s": summary(s), "floor_p_s": summary(p),
                                        "floor_a_s": summary(a), "ratio_p": r_p, "ratio_a": r_a}
        self.goal("fig1_ratio_p", "1 per-task, no tmux: seqharness / floor P", r_p["median"], "<=", 1.3)

    # -- figure 2 ------------------------------------------------------------
    def figure2(self) -> None:
        if not self.tmux:
            say("\n2. Per-task overhead with tmux: SKIPPED (tmux not installed)")
            self.results["figures"]["2"] = {"skipped": "tmux not installed"}
            return
        n = 20 if self.quick else 50
        reps = self.reps(7, 3)
        say(f"\n2. Per-task overhead with tmux: slope between 1-task and {n}-task runs, ms/task "
            f"({reps} rounds S, P+tmux -C)")
        vals = self.interleave({
            "seqharness": lambda: self.slope(lambda k: self.seqharness_run(k, tmux=self.socket()), 1, n),
            "floor P+tmux": lambda: self.slope(lambda k: self.floor_p_run(k, tmux=self.socket()), 1, n),
        }, reps, "fig 2", warmup={"seqharness": lambda: self.seqharness_run(1, tmux=self.socket()),
                                  "floor P+tmux": lambda: self.floor_p_run(1, tmux=self.socket())})
        s, p = vals["seqharness"], vals["floor P+tmux"]
        r_p = ratio(s, p)
        say(f"   seqharness (tmux)   {fmt(summary(s), 1000, unit='ms/task')}   "
            f"(the seed: {SEED['fig2_ms_per_task']:.0f} ms/task, stopped at task 10)")
        say(f"   floor P + tmux -C   {fmt(summary(p), 1000, unit='ms/task')}")
        say(f"   overhead over floor {fmt(summary([x - y for x, y in zip(s, p)]), 1000, unit='ms/task')}")
        say(f"   ratio to floor      {fmt(r_p, digits=2)}")
        fig = {"tasks": n, "seqharness_s": summary(s), "floor_s": summary(p), "ratio": r_p}
        self.results["figures"]["2"] = fig
        self.goal("fig2_ratio", "2 per-task, tmux: seqharness / (floor P + tmux -C)", r_p["median"],
                  "<=", 1.3)

        # A long run must complete: windows beyond --tmux-keep-windows are recycled.
        big, keep = (30, 10) if self.quick else (500, 20)
        sock = self.socket()
        root = self.tmp / "s"
        progress(f"fig 2: {big}-task run in tmux mode")
        spec = specgen.run_spec(root, big)
        argv = [*self.seqharness, str(spec), "--delay", "0", "--tmux-socket", sock,
                "--tmux-keep-windows", str(keep), "--junitxml", str(root / "junit.xml"),
                "--backend", self.backend, "--max-iterations", str(big)]
        ok, detail, seconds = False, "", 0.0
        try:
            seconds = self.run(argv, cwd=root, expect=None)
            counts = junit_counts(root / "junit.xml")
            windows = subprocess.run(["tmux", "-L", sock, "list-windows",
                                      "-t", f"=sequential-{specgen.SPEC_NAME}", "-F", "#{window_id}"],
                                     capture_output=True, text=True, env=self.env, timeout=10,
                                     check=False).stdout.split()
            transcripts = list((spec / ".seqharness" / "transcripts").glob("*-a1.log"))
            ok = (counts["tests"] == big and counts["failures"] == 0 and counts["errors"] == 0
                  and counts["skipped"] == 0 and len(windows) <= keep + 1 and len(transcripts) == big)
            detail = (f"{counts['tests'] - counts['failures'] - counts['errors'] - counts['skipped']}/{big} "
                      f"passed in {seconds:.1f}s ({seconds / big * 1000:.1f} ms/task incl. start-up), "
                      f"{len(windows)} windows left (keep {keep} + placeholder), "
                      f"{len(transcripts)} transcripts on disk")
        except (BenchError, OSError, subprocess.SubprocessError, ET.ParseError) as exc:
            detail = str(exc)[:2000]
        finally:
            self.kill_tmux(sock)
        say(f"   {big}-task tmux run: {'OK' if ok else 'FAILED'}: {detail}")
        fig["long_run"] = {"tasks": big, "ok": ok, "detail": detail, "seconds": seconds}
        self.check(f"{big}-task spec completes in tmux mode", ok, detail)

    # -- figure 3 ------------------------------------------------------------
    def figure3(self) -> None:
        reps = self.reps(9, 3)
        root = self.tmp / "co"
        spec = specgen.run_spec(root, 50)
        no_auto = dict(self.env, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        say(f"\n3. Start-up: `seqharness SPEC --co -q` (50 tasks) vs `python -c \"import pytest, pexpect, "
            f"pluggy, rich\"`, ms ({reps} rounds)")
        co = [*self.seqharness, str(spec), "--co", "-q"]
        imp = [self.python, "-c", "import pytest, pexpect, pluggy, rich"]
        vals = self.interleave({
            "seqharness": lambda: self.run(co, cwd=root),
            "import floor": lambda: self.run(imp),
            "seqharness no-autoload": lambda: self.run(co, cwd=root, env=no_auto),
            "import floor no-autoload": lambda: self.run(imp, env=no_auto),
        }, reps, "fig 3")
        fig: dict = {}
        for mode, s_key, f_key in (("autoload", "seqharness", "import floor"),
                                   ("no autoload", "seqharness no-autoload", "import floor no-autoload")):
            s, f = vals[s_key], vals[f_key]
            above = summary([x - y for x, y in zip(s, f)])
            rat = ratio(s, f)
            say(f"   [{mode}] seqharness --co -q  {fmt(summary(s), 1000, unit='ms')}")
            say(f"   [{mode}] import floor        {fmt(summary(f), 1000, unit='ms')}")
            say(f"   [{mode}] above the floor     {fmt(above, 1000, unit='ms')}; ratio {fmt(rat, digits=2)}")
            fig[mode] = {"seqharness_s": summary(s), "floor_s": summary(f), "above_s": above, "ratio": rat}
        self.results["figures"]["3"] = fig
        self.goal("fig3_above_ms", "3 start-up above the import floor (autoload)",
                  fig["autoload"]["above_s"]["median"] * 1000, "<=", 250, " ms")
        self.goal("fig3_above_ms_noauto", "3 start-up above the import floor (no autoload)",
                  fig["no autoload"]["above_s"]["median"] * 1000, "<=", 250, " ms")

    # -- figure 4 ------------------------------------------------------------
    def figure4(self) -> None:
        mib = 32 if self.quick else 100
        reps = self.reps(5, 3)
        say(f"\n4. Streaming: one task whose agent prints {mib} MiB vs a raw os.read loop on a PTY "
            f"({reps} rounds)")
        flood = [*self.agent, "--mib", str(mib)]
        flood_backend = "cmd:" + shlex.join(flood) + " {prompt_file}"
        root = self.tmp / "stream"
        rss: dict[str, list[dict]] = {"big": [], "tiny": [], "floor": []}
        transcript_sizes: list[int] = []

        def sh(backend: str, key: str) -> Callable[[], float]:
            def go() -> float:
                spec = specgen.run_spec(root, 1)
                out = root / "rss.json"
                seconds = self.run([self.python, str(HERE / "rss_launcher.py"), str(out), str(spec),
                                    "--delay", "0", "--no-tmux", "--junitxml", str(root / "junit.xml"),
                                    "--backend", backend], cwd=root)
                counts = junit_counts(root / "junit.xml")
                if counts["tests"] != 1 or counts["failures"] or counts["errors"]:
                    raise BenchError(f"streaming task did not pass (signal missed?): {counts}")
                rss[key].append(json.loads(out.read_text()))
                if key == "big":
                    transcript_sizes.append(sum(p.stat().st_size for p in
                                                (spec / ".seqharness" / "transcripts").glob("*.log")))
                return seconds
            return go

        def floor(argv: list[str], key: str | None) -> Callable[[], float]:
            def go() -> float:
                out = self.tmp / "floor.json"
                self.run([self.python, str(HERE / "pty_floor.py"), str(out), "--",
                          *[a.replace("{prompt_file}", str(self.prompt)) for a in argv]])
                info = json.loads(out.read_text())
                if key:
                    rss[key].append(info)
                return info["seconds"]
            return go

        vals = self.interleave({
            "seqharness big": sh(flood_backend, "big"),
            "floor big": floor([*flood, "{prompt_file}"], "floor"),
            "seqharness tiny": sh(self.backend, "tiny"),
            "floor tiny": floor([*self.agent, "{prompt_file}"], None),
        }, reps, "fig 4", warmup={"seqharness tiny": sh(self.backend, "tiny"),
                                  "floor tiny": floor([*self.agent, "{prompt_file}"], None)})
        # a warm-up's entries are dropped: only the paired rounds count
        for key in rss:
            rss[key] = rss[key][-reps:]
        s_rate = [mib / (b - t) for b, t in zip(vals["seqharness big"], vals["seqharness tiny"])]
        f_rate = [mib / (b - t) for b, t in zip(vals["floor big"], vals["floor tiny"])]
        rat = ratio(s_rate, f_rate)
        peak = summary([r["vmhwm_kib"] / 1024 for r in rss["big"]])
        base = summary([r["vmhwm_kib"] / 1024 for r in rss["tiny"]])
        fpeak = summary([r["vmhwm_kib"] / 1024 for r in rss["floor"]])
        say(f"   seqharness          {fmt(summary(s_rate), unit='MiB/s')}")
        say(f"   raw os.read floor   {fmt(summary(f_rate), unit='MiB/s')}")
        say(f"   ratio               {fmt(rat, digits=2)}")
        say(f"   peak RSS of the seqharness process (VmHWM): {fmt(peak, unit='MiB')}; "
            f"same run with the tiny agent: {fmt(base, unit='MiB')}; floor process: {fmt(fpeak, unit='MiB')}")
        say(f"   signal on the last line detected: task passed in every round; transcript "
            f"{min(transcript_sizes) / 2**20:.1f} MiB on disk")
        self.results["figures"]["4"] = {"mib": mib, "seqharness_mib_s": summary(s_rate),
                                        "floor_mib_s": summary(f_rate), "ratio": rat,
                                        "peak_rss_mib": peak, "tiny_rss_mib": base, "floor_rss_mib": fpeak}
        self.check(f"{mib} MiB stream: signal at the very end detected", True,
                   f"every run passed ({len(transcript_sizes)} big runs)")
        self.goal("fig4_ratio", "4 streaming throughput seqharness / raw read", rat["median"], ">=", 0.8)
        self.goal("fig4_rss", "4 peak RSS of the seqharness process", peak["max"], "<=", 50, " MiB")

    # -- figure 5 ------------------------------------------------------------
    def figure5(self) -> None:
        sizes = [1000, 10000] if self.quick else [1000, 10000, 100000]
        say("\n5. Parsing and selection (parse timings: one call in a fresh process per sample, "
            "see bench/parse_once.py)")
        fig: dict = {"parse": {}, "co": {}}

        def sample(n: int, what: str) -> float:
            argv = [self.python, str(HERE / "parse_once.py"), str(n), what]
            proc = subprocess.run(argv, cwd=self.tmp, env=self.env, capture_output=True, text=True,
                                  timeout=600, check=False)
            if proc.returncode != 0:
                raise BenchError(f"{shlex.join(argv)}: exit {proc.returncode}: {proc.stderr[-2000:]}")
            return float(proc.stdout.strip().splitlines()[-1])

        for n in sizes:
            reps = self.reps({1000: 21, 10000: 11}.get(n, 3), {1000: 11, 10000: 5}.get(n, 2))
            vals = self.interleave({
                "parse": lambda n=n: sample(n, "parse"),
                "regex floor": lambda n=n: sample(n, "floor"),
                "build_units": lambda n=n: sample(n, "units"),
                "cpu reference": lambda n=n: sample(n, "ref"),
            }, reps, f"fig 5 parse {n}")
            p, f, u, r = vals["parse"], vals["regex floor"], vals["build_units"], vals["cpu reference"]
            rat = ratio(p, f)
            size = len(specgen.big_tasks_md(n))
            say(f"   parse {n:>6} tasks ({size / 2**20:.1f} MiB)  {fmt(summary(p), 1000, unit='ms')}; "
                f"one-regex floor {fmt(summary(f), 1000, unit='ms')}; ratio {fmt(rat, digits=1)}; "
                f"build_units {fmt(summary(u), 1000, unit='ms')}; "
                f"cpu reference {fmt(summary(r), 1000, unit='ms')}")
            fig["parse"][n] = {"parse_s": summary(p), "floor_s": summary(f), "ratio": rat,
                               "build_units_s": summary(u), "cpu_reference_s": summary(r)}

        no_auto = dict(self.env, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        imp = [self.python, "-c", "import pytest, pexpect, pluggy, rich"]
        for n in ([10000] if self.quick else sizes):
            root = self.tmp / f"co{n}"
            spec = specgen.run_spec(root, 1)
            (spec / "tasks.md").write_bytes(specgen.big_tasks_md(n))
            co = [*self.seqharness, str(spec), "--co", "-q"]
            reps = self.reps(3 if n < 100000 else 2, 2)
            vals = self.interleave({
                "--co -q": lambda co=co, root=root: self.run(co, cwd=root),
                "--co -q no-autoload": lambda co=co, root=root: self.run(co, cwd=root, env=no_auto),
                "import floor": lambda: self.run(imp),
            }, reps, f"fig 5 --co {n}")
            c, c_na, f = summary(vals["--co -q"]), summary(vals["--co -q no-autoload"]), summary(vals["import floor"])
            say(f"   seqharness --co -q on {n:>6} tasks: {fmt(c, 1000, unit='ms')}; without autoload "
                f"{fmt(c_na, 1000, unit='ms')} (import floor {fmt(f, 1000, unit='ms')})")
            fig["co"][n] = {"co_s": c, "co_noauto_s": c_na, "floor_s": f}
        self.goal("fig5_parse10k_ms", "5 parse 10k tasks", fig["parse"][10000]["parse_s"]["median"] * 1000,
                  "<=", 70, " ms", ci_value=fig["parse"][10000]["parse_s"]["min"] * 1000)
        self.goal("fig5_co10k_s", "5 --co -q on 10k tasks", fig["co"][10000]["co_s"]["median"], "<=", 2.0,
                  " s", ci_value=fig["co"][10000]["co_s"]["min"])

        # Linearity of a whole run: the per-task slope must not grow with the spec.
        # Floor P runs the same sizes in the same rounds; its state and tasks.md grow
        # too, so what the floor's slope also does with size (bigger files, a longer
        # JUnit report, load drifting during the long runs) is not blamed on seqharness.
        lo, mid, top = (1, 15, 45) if self.quick else (1, 50, 500)
        reps = self.reps(5, 2)
        say(f"   whole-run linearity: per-task slopes {lo}->{mid} and {mid}->{top} tasks, no tmux, "
            f"seqharness and floor P ({reps} rounds)")

        def slopes(run: Callable[[int], float]) -> Callable[[], tuple[float, float]]:
            def go() -> tuple[float, float]:
                t1, t2, t3 = run(lo), run(mid), run(top)
                return (t2 - t1) / (mid - lo), (t3 - t2) / (top - mid)
            return go

        got = self.interleave({"seqharness": slopes(self.seqharness_run), "floor P": slopes(self.floor_p_run)},
                              reps, "fig 5 linearity",
                              warmup={"seqharness": lambda: self.seqharness_run(lo),
                                      "floor P": lambda: self.floor_p_run(lo)})
        lin: dict = {"sizes": [lo, mid, top]}
        for name, pairs in got.items():
            s_lo = summary([x for x, _ in pairs])
            s_hi = summary([y for _, y in pairs])
            growth = ratio([y for _, y in pairs], [x for x, _ in pairs])
            say(f"   {name:<11} slope {lo}->{mid}: {fmt(s_lo, 1000, unit='ms/task')}; slope {mid}->{top}: "
                f"{fmt(s_hi, 1000, unit='ms/task')}; growth {fmt(growth, digits=2)}")
            lin[name] = {"slope_lo_s": s_lo, "slope_hi_s": s_hi, "growth": growth}
        rel = lin["seqharness"]["growth"]["median"] / lin["floor P"]["growth"]["median"]
        say(f"   seqharness growth / floor P growth: {rel:.2f}")
        lin["relative_growth"] = rel
        lin["state_save_ms"] = self.state_save_probe()
        fig["linearity"] = lin
        self.results["figures"]["5"] = fig
        self.goal("fig5_linearity", f"5 per-task slope growth {lo}->{mid} vs {mid}->{top}, relative to floor P",
                  rel, "<=", 1.25)

    def state_save_probe(self) -> dict[int, float] | None:
        """Diagnostic: one ``StateStore.save()`` with N task records (fsyncs included).

        A run saves the state a few times per task, so a cost that grows with
        N makes the whole run quadratic.  Best effort: ``None`` if the API moved.
        """
        try:
            from seqharness.state import StateStore
        except ImportError:
            return None
        out: dict[int, float] = {}
        sizes = (50, 500) if self.quick else (50, 500, 5000)
        try:
            for n in sizes:
                folder = self.tmp / f"state{n}"
                (folder / "bench").mkdir(parents=True, exist_ok=True)
                store = StateStore(folder, "bench")
                for i in range(n):
                    store.state.add_completed([str(i)])
                    store.state.tasks[str(i)] = {
                        "status": "passed", "attempts": 1, "last_exit": 0,
                        "last_reason": "the agent printed <promise>TASK_DONE</promise> and exited 0",
                        "transcript": f".kiro/specs/bench/.seqharness/transcripts/task-{i}-20260101T000000-a1.log",
                        "updated_at": "2026-01-01T00:00:00+00:00"}
                store.save()
                times = []
                for _ in range(7):
                    start = time.perf_counter()
                    store.save()
                    times.append(time.perf_counter() - start)
                out[n] = statistics.median(times) * 1000
        except (AttributeError, KeyError, TypeError, OSError) as exc:
            say(f"   (state save probe skipped: {exc})")
            return out or None
        say("   one state save with N task records: "
            + ", ".join(f"N={n}: {ms:.1f} ms" for n, ms in out.items()))
        return out


    # -- figure 6 ------------------------------------------------------------
    def gate_run(self, n: int, *, verify: bool) -> float:
        """A figure-1 run of *n* tasks, with ``--verify true`` or without; checks (untimed)
        that the gate ran exactly once per task, or not at all."""
        seconds = self.seqharness_run(n, extra=["--verify", "true"] if verify else None)
        spec = self.tmp / "s" / ".kiro" / "specs" / specgen.SPEC_NAME
        logs = sorted((spec / ".seqharness" / "transcripts").glob("*.log"))
        texts = [log.read_text(errors="replace") for log in logs]
        gated = sum(t.count("--- seqharness: verifying: true ---") for t in texts)
        passed = sum(t.count("--- seqharness: verification passed:") for t in texts)
        if verify and (len(logs) != n or gated != n or passed != n):
            raise BenchError(f"--verify true run of {n} tasks: {len(logs)} transcripts, the gate ran "
                             f"{gated} times and passed {passed} times (expected {n} each)")
        if not verify and gated:
            raise BenchError(f"run of {n} tasks without --verify: the gate ran {gated} times")
        return seconds

    def spawn_floor(self, count: int) -> float:
        """Seconds per ``subprocess.run(["true"])``, *count* of them back to back, in this process."""
        start = time.perf_counter()
        for _ in range(count):
            if subprocess.run(["true"], check=False).returncode != 0:
                raise BenchError("`true` did not exit 0")
        return (time.perf_counter() - start) / count

    def run_check_floor(self, count: int) -> float | None:
        """Diagnostic: seconds per ``seqharness.verify.run_check(["true"])`` (what the gate
        calls: pipe, poll loop, own session, transcript writes), in this process."""
        try:
            from seqharness.verify import run_check
        except ImportError:
            return None
        folder = self.tmp / "run_check"
        folder.mkdir(exist_ok=True)
        transcript = folder / "transcript.log"
        transcript.write_bytes(b"")
        env = dict(self.env)
        start = time.perf_counter()
        for _ in range(count):
            check = run_check(["true"], cwd=folder, transcript=transcript, timeout=60, env=env)
            if not check.ok:
                raise BenchError(f"run_check(['true']): {check.summary()}")
        return (time.perf_counter() - start) / count

    def figure6(self) -> None:
        n = 20 if self.quick else 50
        reps = self.reps(7, 3)
        spawns = 100 if self.quick else 200
        say(f"\n6. Verification gate: per-task slope between 1-task and {n}-task runs with "
            f"`--verify true` and without, ms/task; floor: subprocess.run([\"true\"]) x {spawns} "
            f"in this process ({reps} rounds V, S, F, C)")
        vals = self.interleave({
            "--verify true": lambda: self.slope(lambda k: self.gate_run(k, verify=True), 1, n),
            "no --verify": lambda: self.slope(lambda k: self.gate_run(k, verify=False), 1, n),
            "spawn floor": lambda: self.spawn_floor(spawns),
            "run_check": lambda: self.run_check_floor(spawns) or 0.0,
        }, reps, "fig 6", warmup={"--verify true": lambda: self.gate_run(1, verify=True),
                                  "no --verify": lambda: self.gate_run(1, verify=False),
                                  "spawn floor": lambda: self.spawn_floor(spawns),
                                  "run_check": lambda: self.run_check_floor(spawns) or 0.0})
        v, s, f, c = vals["--verify true"], vals["no --verify"], vals["spawn floor"], vals["run_check"]
        gate = summary([x - y for x, y in zip(v, s)])
        r_vs = ratio(v, s)
        floor = summary(f)
        r_gf = ratio([x - y for x, y in zip(v, s)], f)
        say(f"   --verify true       {fmt(summary(v), 1000, unit='ms/task')}")
        say(f"   no --verify         {fmt(summary(s), 1000, unit='ms/task')}")
        say(f"   gate overhead       {fmt(gate, 1000, digits=2, unit='ms/task')}")
        say(f"   ratio with/without  {fmt(r_vs, digits=3)}")
        say(f"   spawn floor         {fmt(floor, 1000, digits=2, unit='ms per spawn of true')}")
        say(f"   overhead / floor    {fmt(r_gf, digits=2)}")
        fig = {"tasks": n, "spawns_per_round": spawns, "verify_s": summary(v), "plain_s": summary(s),
               "gate_s": gate, "ratio": r_vs, "spawn_floor_s": floor, "gate_over_floor": r_gf}
        if any(c):
            run_check = summary(c)
            say(f"   run_check(['true']) {fmt(run_check, 1000, digits=2, unit='ms per call')} "
                f"(diagnostic: the gate's own spawn, pipe, poll and transcript writes)")
            fig["run_check_s"] = run_check
        self.results["figures"]["6"] = fig
        target = 1.3 * floor["median"] * 1000 + 2.0
        self.goal("fig6_gate_ms", f"6 gate overhead per task <= 1.3 x spawn floor "
                  f"({floor['median'] * 1000:.2f} ms) + 2 ms", gate["median"] * 1000, "<=",
                  round(target, 2), " ms")


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few rounds, small sizes (CI)")
    ap.add_argument("--only", default="1,2,3,4,5,6", help="figures to run, e.g. 1,3")
    ap.add_argument("--reps", type=int, default=None, help="rounds per figure (overrides the mode)")
    ap.add_argument("--json", default=None, help="write every figure, goal and check to this file")
    ap.add_argument("--tmp", default=None, help="where the scratch folder goes (default: the system's)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, specs)")
    ap.add_argument("--seqharness", default=None, metavar="COMMAND",
                    help="command line that runs seqharness (default: the installed `seqharness`), "
                         "e.g. to measure a patched build; figure 4 always runs seqharness.cli.main "
                         "of the importable package")
    opts = ap.parse_args(argv)
    try:
        sys.stdout.reconfigure(errors="replace")
    except AttributeError:
        pass
    bench = Bench(opts)
    info = machine()
    info["scratch filesystem"] = filesystem_of(bench.tmp)
    bench.results["machine"] = info
    say(f"seqharness benchmark ({bench.results['mode']} mode): {shlex.join([sys.executable, *sys.argv])}")
    for key, value in info.items():
        say(f"  {key:<26} {value}")
    say(f"  {'agent':<26} {shlex.join(bench.agent)} PROMPT_FILE (about 20 lines + the signal, exit 0)")
    started = time.perf_counter()
    figures = {"1": bench.figure1, "2": bench.figure2, "3": bench.figure3, "4": bench.figure4,
               "5": bench.figure5, "6": bench.figure6}
    code = 0
    try:
        for key in [k.strip() for k in opts.only.split(",") if k.strip()]:
            try:
                bench.settle()
                figures[key]()
            except BenchError as exc:
                say(f"   FIGURE {key} FAILED: {exc}")
                bench.check(f"figure {key} ran", False, str(exc)[:2000])
    finally:
        bench.cleanup()
    elapsed = time.perf_counter() - started
    goals = bench.results["goals"]
    say(f"\nGoals: {sum(g['met'] for g in goals)} of {len(goals)} met "
        f"(benchmark took {elapsed:.0f} s; load average at the end {load_average()})")
    for g in goals:
        say(f"  {'met   ' if g['met'] else 'MISSED'} {g['text']}: {g['value']:.2f} {g['op']} {g['goal']}")
    failed = [c for c in bench.results["checks"] if not c["ok"]]
    if failed:
        code = 1
        say(f"Correctness checks FAILED: {', '.join(c['name'] for c in failed)}")
    bench.results["elapsed_s"] = elapsed
    if opts.json:
        Path(opts.json).write_text(json.dumps(bench.results, indent=2, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
