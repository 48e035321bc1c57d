"""Command-line options and ini keys of the seqharness plugin.

Every option lives in pytest's ``seqharness`` group, so ``seqharness --help``
and ``pytest -p seqharness.plugin --help`` show the same thing.  Options whose
natural name clashes with a popular plugin are registered under a
``--task-`` name (pytest-timeout owns ``--timeout``, pytest-retry owns
``--retries``); the ``seqharness`` command translates the short spellings
(see :mod:`seqharness.cli`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from seqharness.config import PROJECT_KEYS, SPEC_CONFIG, SPEC_KEYS, read_settings

GRANULARITIES = ("parent", "leaf")


#: dest -> default of every option registered here: an option whose value
#: differs was given on the command line, and beats the configuration files.
DEFAULTS: dict[str, object] = {}

#: Config-file key (long name, ``_`` for ``-``) -> (dest, default, kind) of the
#: options plugins add (``--notify-url``, ``--git``, ...): a project file may set them too.
PLUGIN_OPTIONS: dict[str, tuple[str, object, str]] = {}


class OptionGroup:
    """pytest's ``seqharness`` option group, noting each option's dest and
    default, so the configuration files can set it (``[tool.seqharness]``)."""

    def __init__(self, group: pytest.OptionGroup) -> None:
        self.group = group

    def addoption(self, *names: str, **attrs: Any) -> None:
        dest = str(attrs["dest"])
        if dest not in DEFAULTS:
            DEFAULTS[dest] = attrs.get("default")
            long = next((n for n in names if n.startswith("--")), None)
            if long is not None and dest not in FIELD_OF and dest not in _NOT_CONFIGURABLE:
                PLUGIN_OPTIONS[long[2:].replace("-", "_")] = (dest, attrs.get("default"), _kind(attrs))
        self.group.addoption(*names, **attrs)


def _kind(attrs: dict[str, Any]) -> str:
    from seqharness.config import BOOL, FLOAT, INT, STR

    if attrs.get("action") in ("store_true", "store_false") or isinstance(attrs.get("const"), bool):
        return BOOL
    kinds: dict[object, str] = {float: FLOAT, int: INT}
    return kinds.get(attrs.get("type"), STR)


def option_group(parser: pytest.Parser) -> OptionGroup:
    """The ``seqharness`` option group, for every plugin that adds options
    (whichever asks first names it in ``--help``)."""
    return OptionGroup(parser.getgroup("seqharness", "seqharness: run Kiro spec tasks through a coding agent"))


def addoption(parser: pytest.Parser) -> None:
    group = option_group(parser)
    group.addoption("--backend", dest="sh_backend", default=None,
                    help="agent backend: 'cmd:COMMAND LINE' (placeholders {prompt_file} {prompt} "
                         "{task_id} {workdir} {spec_dir}) or a registered name. ini: seqharness_backend")
    group.addoption("--delay", dest="sh_delay", type=float, default=None,
                    help="seconds to wait between attempts and tasks (not after the last). default 0")
    group.addoption("--max-iterations", dest="sh_max_iterations", type=int, default=None,
                    help="most agent attempts in this run (default 50); the rest is skipped, exit 1")
    group.addoption("--task-retries", dest="sh_retries", type=int, default=None,
                    help="extra attempts for a failing task (default 0). `seqharness --retries` too")
    group.addoption("--task-timeout", dest="sh_timeout", type=float, default=None,
                    help="seconds one attempt may take (default: none; env CODEX_TIMEOUT in ms). "
                         "`seqharness --timeout` too")
    group.addoption("--idle-timeout", dest="sh_idle_timeout", type=float, default=None,
                    help="end an attempt that prints nothing for this many seconds (default: none)")
    group.addoption("--question-idle", dest="sh_question_idle", type=float, default=120.0,
                    metavar="SECONDS",
                    help="an agent silent this long with a question on its screen ('...?', [y/n], a menu) "
                         "is blocked on a prompt: halt with that screen as the question (default 120; 0: off)")
    group.addoption("--granularity", dest="sh_granularity", choices=GRANULARITIES, default=None,
                    help="'parent': a task with its subtasks is one dispatch (default); 'leaf': every leaf task")
    group.addoption("--include-optional", dest="sh_include_optional", action="store_true", default=False,
                    help="also run optional tasks (- [ ]*)")
    group.addoption("--trust-exit-code", dest="sh_trust_exit", action="store_true", default=False,
                    help="count exit 0 without <promise>TASK_DONE</promise> as a pass (the original's behaviour)")
    group.addoption("--reset", dest="sh_reset", action="store_true", default=False,
                    help="forget this spec's recorded state before running")
    group.addoption("--no-tasks-update", dest="sh_no_tasks_update", action="store_true", default=False,
                    help="never write checkboxes into tasks.md")
    group.addoption("--leave-failed-marked", dest="sh_leave_failed", action="store_true", default=False,
                    help="leave [-] on a task that failed instead of restoring its checkbox")
    group.addoption("--workdir", dest="sh_workdir", default=None,
                    help="where the agent runs (default: the folder above .kiro/)")
    group.addoption("--no-tmux", dest="sh_no_tmux", action="store_true", default=False,
                    help="do not show agents in tmux (also: CODEAGENT_NO_TMUX=1)")
    group.addoption("--tmux-session", dest="sh_tmux_session", default=None,
                    help="tmux session name (default: sequential-<spec name>)")
    group.addoption("--tmux-socket", dest="sh_tmux_socket", default=None,
                    help="tmux server socket name, as tmux -L (default: env SEQHARNESS_TMUX_SOCKET or tmux's own)")
    group.addoption("--tmux-keep-windows", dest="sh_tmux_keep", type=int, default=20,
                    help="task windows kept open in tmux; older ones are closed (transcripts stay). default 20")
    group.addoption("--wait-lock", dest="sh_wait_lock", type=float, default=None, metavar="SECONDS",
                    help="wait up to SECONDS for another run of the same spec to finish instead of failing")
    group.addoption("--assign-backend", dest="sh_assign_backend", default=None,
                    help="backend asked once per task (cached in the state) which type and agent it is; "
                         "types map to backends by --assign-map")
    group.addoption("--assign-opencode-agent", dest="sh_assign_opencode_agent", default=None,
                    help="opencode agent (opencode run --agent NAME) for an opencode assignment backend")
    group.addoption("--assign-map", dest="sh_assign_map", default=None,
                    help="type or owner to backend, e.g. 'code=codex,ui=gemini,review=codex' (the default)")
    group.addoption("--assign-timeout", dest="sh_assign_timeout", type=float, default=300.0,
                    help="seconds one assignment call may take (default 300)")
    group.addoption("--limit-wait-max", dest="sh_limit_wait_max", type=float, default=6 * 3600,
                    metavar="SECONDS",
                    help="longest wait for a usage-limit reset; a later reset halts the run (default 6h)")
    group.addoption("--limit-wait-default", dest="sh_limit_wait_default", type=float, default=900,
                    metavar="SECONDS",
                    help="wait after a usage limit whose reset time is not given (default 900)")
    group.addoption("--verify", dest="sh_verify", default=None, metavar="CMD",
                    help="after an agent says done, run CMD in the workdir (split like a shell, never run "
                         "by one); the task passes only if CMD exits 0, e.g. --verify 'python -m pytest -q -x'. "
                         "ini: seqharness_verify")
    group.addoption("--verify-timeout", dest="sh_verify_timeout", type=float, default=None,
                    metavar="SECONDS", help="longest run of the --verify command (default 900)")
    group.addoption("--live", dest="sh_live", choices=("auto", "on", "off"), default="auto",
                    help="rich live view: auto (only on a terminal), on, off")
    group.addoption("--strict-spec-paths", dest="sh_strict_paths", action="store_true", default=False,
                    help="every path argument must be a spec folder or tasks.md (the seqharness command sets it)")
    parser.addini("seqharness_backend", "default --backend", default=None)
    parser.addini("seqharness_delay", "default --delay", default="0")
    parser.addini("seqharness_max_iterations", "default --max-iterations", default="50")
    parser.addini("seqharness_retries", "default --task-retries", default="0")
    parser.addini("seqharness_verify", "default --verify", default=None)
    parser.addini("seqharness_routes", "routing rules, one per line: 'type:ui = gemini', "
                  "'title:/login/ = claude'", type="linelist", default=[])


#: Settings field <- option dest (fields of inverted flags: see _given()).
FIELD_OF = {
    "sh_backend": "backend", "sh_delay": "delay", "sh_max_iterations": "max_iterations",
    "sh_retries": "retries", "sh_timeout": "timeout", "sh_idle_timeout": "idle_timeout",
    "sh_question_idle": "question_idle", "sh_granularity": "granularity",
    "sh_include_optional": "include_optional", "sh_trust_exit": "trust_exit_code",
    "sh_no_tasks_update": "update_tasks", "sh_leave_failed": "leave_failed", "sh_workdir": "workdir",
    "sh_no_tmux": "tmux", "sh_tmux_session": "tmux_session", "sh_tmux_socket": "tmux_socket",
    "sh_tmux_keep": "tmux_keep", "sh_wait_lock": "wait_lock", "sh_live": "live",
    "sh_limit_wait_max": "limit_wait_max", "sh_limit_wait_default": "limit_wait_default",
    "sh_assign_backend": "assign_backend", "sh_assign_opencode_agent": "assign_opencode_agent",
    "sh_assign_map": "assign_map", "sh_assign_timeout": "assign_timeout", "sh_verify": "verify",
    "sh_verify_timeout": "verify_timeout",
}


_NOT_CONFIGURABLE = {"sh_reset", "sh_strict_paths"}


def _given(opt: object) -> set[str]:
    """Settings fields whose option was given on the command line (or by env)."""
    fields = {field for dest, field in FIELD_OF.items()
              if dest in DEFAULTS and getattr(opt, dest, None) != DEFAULTS[dest]}
    if os.environ.get("CODEAGENT_NO_TMUX", "") in ("1", "true", "yes"):
        fields.add("tmux")
    if os.environ.get("CODEX_TIMEOUT"):
        fields.add("timeout")
    if os.environ.get("SEQHARNESS_TMUX_SOCKET"):
        fields.add("tmux_socket")
    return fields


@dataclass
class Settings:
    """Resolved options: command line, then the spec folder's ``seqharness.toml``
    (:meth:`for_spec`), then ``[tool.seqharness]`` in pyproject.toml, then the
    pytest ini keys, then defaults."""

    backend: str | None
    delay: float
    max_iterations: int
    retries: int
    timeout: float | None
    idle_timeout: float | None
    granularity: str
    include_optional: bool
    trust_exit_code: bool
    reset: bool
    update_tasks: bool
    leave_failed: bool
    workdir: str | None
    tmux: bool
    tmux_session: str | None
    tmux_socket: str | None
    tmux_keep: int
    wait_lock: float | None
    live: str
    limit_wait_max: float = 6 * 3600
    limit_wait_default: float = 900
    assign_backend: str | None = None
    assign_opencode_agent: str | None = None
    assign_map: str | None = None
    assign_timeout: float = 300.0
    question_idle: float | None = 120.0
    verify: str | None = None
    verify_timeout: float = 900.0
    given: frozenset[str] = field(default_factory=frozenset, repr=False)  # from the command line
    sources: tuple[str, ...] = ()                                          # config files read

    def for_spec(self, spec_dir: Path) -> Settings:
        """These settings with the spec folder's ``seqharness.toml`` over them
        (the command line still wins).  Without that file: ``self``."""
        path = spec_dir / SPEC_CONFIG
        values = read_settings(path, table=None, allowed=SPEC_KEYS)
        if values is None:
            return self
        settings = replace(self, sources=(*self.sources, str(path)),
                           **{k: v for k, v in values.items() if k not in self.given})
        settings.validate()
        return settings

    def validate(self) -> None:
        counts: tuple[tuple[str, float], ...] = (
            ("--delay", self.delay), ("--max-iterations", self.max_iterations),
            ("--retries", self.retries))
        for name, count in counts:
            if count < 0:
                raise pytest.UsageError(f"{name} must not be negative, got {count:g}")
        for name, limit in (("--timeout", self.timeout), ("--idle-timeout", self.idle_timeout),
                            ("--verify-timeout", self.verify_timeout)):
            if limit is not None and limit <= 0:
                raise pytest.UsageError(f"{name} must be positive, got {limit:g}")
        if self.granularity not in GRANULARITIES:
            raise pytest.UsageError(f"granularity must be one of {', '.join(GRANULARITIES)}, "
                                    f"got {self.granularity!r}")

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        opt = config.option

        def ini(name: str) -> str | None:
            value = config.getini(name)
            return value if value not in (None, "") else None

        timeout = opt.sh_timeout
        if timeout is None and os.environ.get("CODEX_TIMEOUT"):
            try:
                timeout = float(os.environ["CODEX_TIMEOUT"]) / 1000.0
            except ValueError:
                raise pytest.UsageError(
                    f"CODEX_TIMEOUT must be milliseconds, got {os.environ['CODEX_TIMEOUT']!r}") from None
        settings = cls(
            backend=opt.sh_backend or ini("seqharness_backend"),
            delay=opt.sh_delay if opt.sh_delay is not None else float(ini("seqharness_delay") or 0),
            max_iterations=(opt.sh_max_iterations if opt.sh_max_iterations is not None
                            else int(ini("seqharness_max_iterations") or 50)),
            retries=opt.sh_retries if opt.sh_retries is not None else int(ini("seqharness_retries") or 0),
            timeout=timeout,
            idle_timeout=opt.sh_idle_timeout,
            granularity=opt.sh_granularity or "parent",
            include_optional=opt.sh_include_optional,
            trust_exit_code=opt.sh_trust_exit,
            reset=opt.sh_reset,
            update_tasks=not opt.sh_no_tasks_update,
            leave_failed=opt.sh_leave_failed,
            workdir=opt.sh_workdir,
            tmux=not opt.sh_no_tmux and os.environ.get("CODEAGENT_NO_TMUX", "") not in ("1", "true", "yes"),
            tmux_session=opt.sh_tmux_session,
            tmux_socket=opt.sh_tmux_socket or os.environ.get("SEQHARNESS_TMUX_SOCKET") or None,
            tmux_keep=opt.sh_tmux_keep,
            wait_lock=opt.sh_wait_lock,
            live=opt.sh_live,
            limit_wait_max=opt.sh_limit_wait_max,
            limit_wait_default=opt.sh_limit_wait_default,
            assign_backend=opt.sh_assign_backend,
            assign_opencode_agent=opt.sh_assign_opencode_agent,
            assign_map=opt.sh_assign_map,
            assign_timeout=opt.sh_assign_timeout,
            question_idle=opt.sh_question_idle or None,
            verify=opt.sh_verify or ini("seqharness_verify"),
            verify_timeout=opt.sh_verify_timeout if opt.sh_verify_timeout is not None else 900.0,
        )
        given = frozenset(_given(opt))
        project = Path(config.rootpath) / "pyproject.toml"
        plugin_keys = {key: kind for key, (_, _, kind) in PLUGIN_OPTIONS.items()}
        values = read_settings(project, table=("tool", "seqharness"), allowed={**PROJECT_KEYS, **plugin_keys})
        if values:
            for key in [k for k in values if k in plugin_keys]:
                dest, default, _ = PLUGIN_OPTIONS[key]
                value = values.pop(key)
                if getattr(opt, dest, default) == default:  # the command line wins
                    setattr(opt, dest, value)
            settings = replace(settings, sources=(str(project),),
                               **{k: v for k, v in values.items() if k not in given})
        settings = replace(settings, given=given)
        settings.validate()
        return settings
