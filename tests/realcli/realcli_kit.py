"""Helpers of the real-CLI tests: constants, the network namespace, the HOME
seeded for every CLI, PTY runs.  The fixtures built on them are in this
folder's conftest.py; test modules import this module as ``realcli_kit``
(pytest puts this folder, which is not a package, on ``sys.path``).

Environment knobs:

``SEQHARNESS_CLI_CACHE``   where the CLIs are installed (default ~/.cache/seqharness-clis)
``SEQHARNESS_REALCLI_NETNS=0``  do not isolate the network even when possible
``SEQHARNESS_RECORD_STREAMS=1`` (re)write fixtures/streams/<cli>-<scenario>.txt
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pexpect
import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO / "fixtures" / "fake_model_server.py"
STREAMS_DIR = REPO / "fixtures" / "streams"
INSTALL_SCRIPT = REPO / "scripts" / "install-agent-clis.sh"

# cli -> (package, pinned version, path of the executable inside the cache)
PINNED = {
    "codex": ("@openai/codex", "0.169.0", "npm/node_modules/.bin/codex"),
    "claude": ("@anthropic-ai/claude-code", "2.1.197", "npm/node_modules/.bin/claude"),
    "opencode": ("opencode-ai", "1.18.33", "npm/node_modules/.bin/opencode"),
    "gemini": ("@google/gemini-cli", "0.61.0", "npm/node_modules/.bin/gemini"),
    "aider": ("aider-chat", "0.86.2", "aider-venv/bin/aider"),
}
NPM_CLIS = ("codex", "claude", "opencode", "gemini")
API_KEY = "sk-fake-0123456789abcdefghijklmnop"   # long enough for "key tail" displays
MODEL_CHAT = "mock-model"
MODEL_CODEX = "gpt-5.5"        # a slug codex knows: no "model metadata not found" warning

# Terminal environment every CLI gets in its PTY: a real terminal type, as a user's
# seqharness run would have.  NO_COLOR, FORCE_COLOR, CI are deliberately NOT set:
# the tests prove the headless JSON modes stay clean on a TTY without them
# (measured: no CLI puts escape codes inside its JSON lines; claude alone writes a
# terminal-restore sequence after its last line on exit, whatever TERM/NO_COLOR/CI).
TERM_ENV = {"TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

# Seconds spent in each CLI's PTY runs, printed at the end of the session.
TIMINGS: dict[str, list[float]] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("SEQHARNESS_CLI_CACHE")
                or Path.home() / ".cache" / "seqharness-clis")


def load_server_module():
    """Import fixtures/fake_model_server.py (not a package) by path."""
    name = "fake_model_server"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SERVER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- network namespace

def netns_possible() -> tuple[bool, str]:
    if os.environ.get("SEQHARNESS_REALCLI_NETNS", "1") == "0":
        return False, "SEQHARNESS_REALCLI_NETNS=0"
    if os.geteuid() != 0:
        return False, "not root"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return False, f"{tool} not found"
    return True, ""


@dataclass
class NetNS:
    """A persistent network namespace (bind-mounted on ``path``) with only ``lo`` up."""

    path: Path | None
    reason: str = ""

    @property
    def isolated(self) -> bool:
        return self.path is not None

    def wrap(self, argv: list[str]) -> list[str]:
        """argv that runs *argv* inside the namespace (unchanged when not isolated)."""
        if self.path is None:
            return list(argv)
        return ["nsenter", f"--net={self.path}", "--", *argv]


def make_netns(folder: Path) -> NetNS:
    ok, why = netns_possible()
    if not ok:
        return NetNS(None, why)
    path = folder / "netns"
    path.touch()
    steps = (["unshare", f"--net={path}", "true"],
             ["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"])
    for argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        if proc.returncode != 0:
            subprocess.run(["umount", str(path)], capture_output=True, timeout=20, check=False)
            return NetNS(None, f"{' '.join(argv[:2])} failed: {proc.stderr.strip()[:200]}")
    return NetNS(path)


def drop_netns(ns: NetNS) -> None:
    if ns.path is not None:
        subprocess.run(["umount", str(ns.path)], capture_output=True, timeout=20, check=False)


# --------------------------------------------------------------------------- model server

@dataclass
class ModelServer:
    port: int
    log_path: Path
    isolated: bool            # runs inside the loopback-only namespace

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()
                if line.strip()]


# --------------------------------------------------------------------------- installed CLIs

def installed_version(cli: str, root: Path | None = None) -> str | None:
    root = root or cache_dir()
    package, _, exe = PINNED[cli]
    if not (root / exe).exists():
        return None
    if cli == "aider":
        site = list((root / "aider-venv").glob("lib/python*/site-packages/aider_chat-*.dist-info"))
        return site[0].name.removesuffix(".dist-info").split("-", 1)[1] if site else None
    pj = root / "npm" / "node_modules" / package / "package.json"
    try:
        return json.loads(pj.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def need_cli(cli_paths: dict[str, Path], cli: str) -> Path:
    if cli not in cli_paths:
        hint = " with SEQHARNESS_WITH_AIDER=1" if cli == "aider" else ""
        pytest.skip(f"{cli} {PINNED[cli][1]} is not installed in {cache_dir()}: run "
                    f"scripts/install-agent-clis.sh{hint}")
    return cli_paths[cli]


# --------------------------------------------------------------------------- HOME per run

def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


@dataclass
class CliHome:
    """A throwaway HOME seeded so every CLI talks to the fake server without dialogs."""

    home: Path
    workdir: Path
    server: ModelServer
    paths: dict[str, Path] = field(default_factory=dict)

    def seed(self) -> None:
        base = self.server.base_url
        work = str(self.workdir)
        # codex: a custom provider (plain HTTP at once; no WebSocket attempt), no retries
        # (the harness retries), the workdir trusted in case it is a git repo.
        codex = self.home / ".codex"
        codex.mkdir(parents=True, exist_ok=True)
        (codex / "config.toml").write_text(
            f'model = "{MODEL_CODEX}"\n'
            'model_provider = "mock"\n'
            'approval_policy = "never"\n'
            "\n"
            "[analytics]\n"              # else exit waits ~5 s on an OTLP export to chatgpt.com
            "enabled = false\n"
            "\n"
            "[features]\n"
            "plugins = false\n"          # no curated-plugin sync with GitHub at start
            "remote_plugin = false\n"
            "apps = false\n"
            "unbounded_connection_retries = false\n"  # refused connection: exit 1, not loop
            "\n"
            "[model_providers.mock]\n"
            'name = "Mock"\n'
            f'base_url = "{base}/v1"\n'
            'env_key = "MOCK_API_KEY"\n'
            'wire_api = "responses"\n'
            "request_max_retries = 0\n"
            "stream_max_retries = 0\n"
            "\n"
            f"[projects.{json.dumps(work)}]\n"
            'trust_level = "trusted"\n', encoding="utf-8")
        # claude: onboarding done (its onboarding needs api.anthropic.com), the
        # workdir trusted, the fake key approved, bypass warning accepted.
        _write_json(self.home / ".claude.json", {
            "hasCompletedOnboarding": True,
            "projects": {work: {"hasTrustDialogAccepted": True}},
            "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
        })
        _write_json(self.home / ".claude" / "settings.json",
                    {"skipDangerousModePermissionPrompt": True})
        # opencode: an openai-compatible provider; the bundled SDK needs no download.
        _write_json(self.home / ".config" / "opencode" / "opencode.json", {
            "$schema": "https://opencode.ai/config.json",
            "provider": {"mock": {
                "npm": "@ai-sdk/openai-compatible", "name": "Mock LLM",
                "options": {"baseURL": f"{base}/v1", "apiKey": API_KEY},
                "models": {MODEL_CHAT: {"name": "Mock Model", "tool_call": True}}}},
            "model": f"mock/{MODEL_CHAT}", "small_model": f"mock/{MODEL_CHAT}",
            "autoupdate": False, "share": "disabled",
        })
        # gemini: API-key auth chosen (env detection alone says "gateway" and fails with
        # exit 41), the workdir trusted, no update checks or usage statistics.
        _write_json(self.home / ".gemini" / "settings.json", {
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "privacy": {"usageStatisticsEnabled": False},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        })
        _write_json(self.home / ".gemini" / "trustedFolders.json", {work: "TRUST_FOLDER"})
        # aider: a fresh, non-empty model-price cache, else it downloads litellm's
        # price list from GitHub at every start (and prints the failure offline).
        info = {"max_input_tokens": 128000, "max_output_tokens": 4096,
                "input_cost_per_token": 0, "output_cost_per_token": 0,
                "litellm_provider": "openai", "mode": "chat"}
        _write_json(self.home / ".aider" / "caches" / "model_prices_and_context_window.json",
                    {MODEL_CHAT: info, f"openai/{MODEL_CHAT}": info})

    def env(self, cli: str) -> dict[str, str]:
        """Environment for *cli*: nothing of the caller's except PATH basics."""
        path_dirs = []
        if cli in self.paths:
            path_dirs.append(str(self.paths[cli].parent))
        node = shutil.which("node")
        if node:
            path_dirs.append(str(Path(node).parent))
        path_dirs += ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        env = {"HOME": str(self.home), "PATH": os.pathsep.join(dict.fromkeys(path_dirs)),
               "USER": os.environ.get("USER", "root"), "SHELL": "/bin/bash",
               "TMPDIR": str(self.home / "tmp"), **TERM_ENV}
        (self.home / "tmp").mkdir(exist_ok=True)
        base = self.server.base_url
        if cli == "codex":
            env["MOCK_API_KEY"] = API_KEY
        elif cli == "claude":
            env.update(ANTHROPIC_BASE_URL=base, ANTHROPIC_API_KEY=API_KEY,
                       CLAUDE_CODE_MAX_RETRIES="0",
                       CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
                       DISABLE_AUTOUPDATER="1", DISABLE_TELEMETRY="1",
                       DISABLE_ERROR_REPORTING="1")
            if os.geteuid() == 0:
                env["IS_SANDBOX"] = "1"   # else bypass mode is refused as root
        elif cli == "opencode":
            env.update(OPENCODE_DISABLE_MODELS_FETCH="1", OPENCODE_DISABLE_AUTOUPDATE="1",
                       OPENCODE_DISABLE_LSP_DOWNLOAD="1")
        elif cli == "gemini":
            env.update(GEMINI_API_KEY=API_KEY, GOOGLE_GEMINI_BASE_URL=base)
        elif cli == "aider":
            env.update(AIDER_CHECK_UPDATE="false", AIDER_ANALYTICS="false")
        return env

    def argv(self, cli: str, prompt: str, *extra: str) -> list[str]:
        """The headless command line of *cli* (see ../shared/notes/agent-clis.md)."""
        exe = str(self.paths.get(cli, cli))
        if cli == "codex":
            return [exe, "exec", "--json", "--skip-git-repo-check",
                    "--dangerously-bypass-approvals-and-sandbox", *extra, prompt]
        if cli == "claude":
            return [exe, "-p", prompt, "--output-format", "stream-json", "--verbose",
                    "--dangerously-skip-permissions", *extra]
        if cli == "opencode":
            return [exe, "run", "--format", "json", "--auto", *extra, prompt]
        if cli == "gemini":
            return [exe, "--skip-trust", "--yolo", "-o", "stream-json", *extra, "-p", prompt]
        if cli == "aider":
            return [exe, "--model", f"openai/{MODEL_CHAT}",
                    "--openai-api-base", f"{self.server.base_url}/v1",
                    "--openai-api-key", API_KEY, "--edit-format", "whole",
                    "--yes-always", "--no-git", "--no-check-update", "--no-analytics",
                    "--no-show-model-warnings", "--no-show-release-notes",
                    "--no-fancy-input", "--no-pretty", *extra, "--message", prompt]
        raise ValueError(cli)


# --------------------------------------------------------------------------- PTY runs

@dataclass
class PtyRun:
    argv: list[str]
    raw: bytes
    exitstatus: int | None
    signalstatus: int | None
    seconds: float
    timed_out: bool

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", errors="replace")

    def lines(self) -> list[str]:
        return self.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    def json_lines(self) -> list[dict]:
        """Every line that is a JSON object (stderr lines share the PTY: skip those)."""
        out = []
        for line in self.lines():
            s = line.strip()
            if s.startswith("{") and s.endswith("}"):
                try:
                    obj = json.loads(s)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
        return out

    def describe(self) -> str:
        tail = self.text[-3000:]
        return (f"argv={self.argv!r} exit={self.exitstatus} signal={self.signalstatus} "
                f"timed_out={self.timed_out} seconds={self.seconds:.1f}\n--- output tail ---\n"
                f"{tail}")


def run_in_pty(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 120,
               dimensions: tuple[int, int] = (50, 200)) -> PtyRun:
    """Run *argv* in a new PTY (its stdin, stdout and stderr) until it exits.

    Output is read in bytes, exactly as the terminal delivers it.  On *timeout*
    the whole process group is killed.
    """
    start = time.monotonic()
    child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(cwd), dimensions=dimensions,
                          echo=False, timeout=timeout)
    chunks: list[bytes] = []
    timed_out = False
    deadline = start + timeout
    while True:
        try:
            data = child.read_nonblocking(65536, timeout=max(0.05, min(1.0,
                                                                    deadline - time.monotonic())))
            chunks.append(data)
        except pexpect.TIMEOUT:
            if time.monotonic() >= deadline:
                timed_out = True
                break
        except pexpect.EOF:
            break
    if timed_out:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(1)
    child.close(force=True)
    return PtyRun(list(argv), b"".join(chunks), child.exitstatus, child.signalstatus,
                  time.monotonic() - start, timed_out)


def record_stream(name: str, run: PtyRun, header: dict) -> Path | None:
    """Write a PTY recording to fixtures/streams/NAME.txt when SEQHARNESS_RECORD_STREAMS=1."""
    if os.environ.get("SEQHARNESS_RECORD_STREAMS") != "1":
        return None
    STREAMS_DIR.mkdir(parents=True, exist_ok=True)
    target = STREAMS_DIR / f"{name}.txt"
    target.write_bytes(run.raw)
    meta = STREAMS_DIR / f"{name}.meta.json"
    meta.write_text(json.dumps({**header, "exitstatus": run.exitstatus,
                                "seconds": round(run.seconds, 1)}, indent=2) + "\n")
    return target
