"""Fixtures for driving the REAL agent CLIs against the fake model server.

* ``fake_server``  - the fake model server in-process on 127.0.0.1 (for tests that
  talk to it themselves, e.g. with urllib).
* ``netns``        - a network namespace holding only ``lo`` (``unshare --net=FILE``,
  entered with ``nsenter``) when we are root and it can be made; else a no-op
  whose ``reason`` says why the CLIs run on the normal network.
* ``model_server`` - the fake model server where the CLIs can reach it: inside
  ``netns`` as a subprocess when that is isolated, else in-process.  Yields a
  :class:`ModelServer` (``base_url``, ``port``, ``log_path``, ``requests()``).
* ``cli_paths``    - the installed CLIs (``scripts/install-agent-clis.sh``); skips
  with the command to run when they are not installed.
* ``cli_home``     - a throwaway HOME pre-seeded for every CLI to use the fake
  server with no first-run dialog, plus a ``workdir``; ``cli_home.env(cli)``
  gives the environment for one CLI and ``cli_home.argv(cli, prompt)`` its
  headless command line.
The helpers they are built on (``run_in_pty``, ``record_stream``, ``CliHome``,
``need_cli``, the pinned versions, the environment knobs) are in
``realcli_kit.py``, which test modules import by that name.  Nothing here
mocks a CLI or pexpect.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from realcli_kit import (  # this folder's helpers (not a package: on sys.path)
    INSTALL_SCRIPT,
    NPM_CLIS,
    PINNED,
    REPO,
    SERVER_SCRIPT,
    TIMINGS,
    CliHome,
    ModelServer,
    cache_dir,
    drop_netns,
    installed_version,
    load_server_module,
    make_netns,
    netns_possible,
)


def pytest_configure(config):
    if not any(str(m).startswith("realcli") for m in config.getini("markers")):
        config.addinivalue_line(
            "markers", "realcli: drives a real agent CLI (installed by "
                       "scripts/install-agent-clis.sh) against the fake model server")


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    terminalreporter.section("real CLI timings")
    for cli, secs in TIMINGS.items():
        version = PINNED[cli][1]
        terminalreporter.write_line(f"{cli} {version}: {len(secs)} runs, {sum(secs):.1f} s "
                                    f"(max {max(secs):.1f} s)")


def pytest_report_header(config):
    installed = [c for c in PINNED if (cache_dir() / PINNED[c][2]).exists()]
    ok, why = netns_possible()
    network = "loopback-only namespace" if ok else f"NOT isolated ({why})"
    return [(f"realcli: cache {cache_dir()} has {', '.join(installed) or 'no CLI'}; "
             f"network: {network}")]


@pytest.fixture(scope="session")
def netns():
    folder = Path(tempfile.mkdtemp(prefix="seqharness-netns-"))
    ns = make_netns(folder)
    try:
        yield ns
    finally:
        drop_netns(ns)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fake_server(tmp_path):
    """The fake model server in this process (reachable from the test itself)."""
    mod = load_server_module()
    log = tmp_path / "model-requests.jsonl"
    server, port = mod.start_server(log, delta_delay=0)
    try:
        yield ModelServer(port, log, isolated=False)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def model_server(tmp_path, netns):
    """The fake model server where the CLIs run: inside ``netns`` if isolated."""
    log = tmp_path / "model-requests.jsonl"
    if not netns.isolated:
        mod = load_server_module()
        server, port = mod.start_server(log)
        try:
            yield ModelServer(port, log, isolated=False)
        finally:
            server.shutdown()
            server.server_close()
        return
    port_file = tmp_path / "model-server.port"
    argv = netns.wrap([sys.executable, str(SERVER_SCRIPT), "--port", "0",
                       "--port-file", str(port_file), "--log", str(log)])
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
                pytest.fail(f"fake model server did not start: {err[-2000:]}")
            time.sleep(0.02)
        yield ModelServer(int(port_file.read_text()), log, isolated=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()


@pytest.fixture(scope="session")
def cli_paths() -> dict[str, Path]:
    """``{cli: executable}`` of the CLIs installed at their pinned versions.

    Skips (with the install command) when none of the npm CLIs is there; a CLI
    that is missing is simply absent from the dict (see :func:`need_cli`).
    """
    root = cache_dir()
    found = {}
    for cli, (_, want, exe) in PINNED.items():
        if installed_version(cli, root) == want:
            found[cli] = root / exe
    if not any(c in found for c in NPM_CLIS):
        pytest.skip(f"real agent CLIs are not installed in {root}: run "
                    f"`bash {INSTALL_SCRIPT.relative_to(REPO)}` "
                    "(SEQHARNESS_WITH_AIDER=1 for aider too)")
    return found


@pytest.fixture
def cli_home(tmp_path, model_server, cli_paths) -> CliHome:
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    ch = CliHome(home=home, workdir=work, server=model_server, paths=dict(cli_paths))
    ch.seed()
    return ch
