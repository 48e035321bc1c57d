#!/usr/bin/env bash
# Install the real agent CLIs that tests/realcli drives, at pinned versions,
# into a cache folder OUTSIDE the repository:
#
#   $SEQHARNESS_CLI_CACHE (default ~/.cache/seqharness-clis)/
#       npm/node_modules/.bin/{codex,claude,opencode,gemini}
#       aider-venv/bin/aider            (only with SEQHARNESS_WITH_AIDER=1)
#       versions.txt                    (what is installed, one "name version" a line)
#
# Idempotent: a package already installed at its pinned version is not touched,
# so a second run takes about a second.  Installs run with a throwaway HOME
# (npm/opencode otherwise leave dot-folders in the real one) and need only the
# npm registry and PyPI.  Prints how long each step took.
#
# Why these versions: see ../shared/notes/agent-clis.md.  npm 11 on Node 20
# resolves @anthropic-ai/claude-code to 2.1.197 (the newest one whose
# engines.node accepts Node 20); pinning it makes that explicit and stable.
#
# Usage:  bash scripts/install-agent-clis.sh           # the four npm CLIs
#         SEQHARNESS_WITH_AIDER=1 bash scripts/install-agent-clis.sh   # + aider
set -euo pipefail

CACHE="${SEQHARNESS_CLI_CACHE:-$HOME/.cache/seqharness-clis}"
WITH_AIDER="${SEQHARNESS_WITH_AIDER:-0}"

NPM_PKGS=(
    "@openai/codex@0.169.0"
    "@anthropic-ai/claude-code@2.1.197"
    "opencode-ai@1.18.33"
    "@google/gemini-cli@0.61.0"
)
AIDER_PKG="aider-chat"
AIDER_VERSION="0.86.2"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf 'install-agent-clis: %s\n' "$*" >&2; }

mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
case "$CACHE/" in
    "$(cd "$(dirname "$0")/.." && pwd)/"*)
        log "refusing to install inside the repository: $CACHE"; exit 2 ;;
esac

# One installer at a time (two pytest sessions, or CI and a developer).
exec 9>"$CACHE/.install.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi

THROWAWAY_HOME="$(mktemp -d "${TMPDIR:-/tmp}/seqharness-install-home.XXXXXX")"
trap 'rm -rf "$THROWAWAY_HOME"' EXIT
# The system-wide npm/pip configuration (CA file, find-links, index) still
# applies; only per-user dot-files go to the throwaway HOME.
export HOME="$THROWAWAY_HOME"
export npm_config_cache="$THROWAWAY_HOME/.npm"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
export DISABLE_AUTOUPDATER=1

T_ALL="$(now)"

# ---- npm CLIs ---------------------------------------------------------------
npm_installed_version() {  # $1 = package name -> prints its installed version or nothing
    local pj="$CACHE/npm/node_modules/$1/package.json"
    [[ -f "$pj" ]] || return 0
    node -e 'process.stdout.write(require(process.argv[1]).version || "")' "$pj"
}

missing=()
for spec in "${NPM_PKGS[@]}"; do
    name="${spec%@*}"
    want="${spec##*@}"
    have="$(npm_installed_version "$name")"
    if [[ "$have" == "$want" ]]; then
        log "$name $want already installed"
    else
        missing+=("$spec")
    fi
done
# codex ships its Rust binary in an optional dependency; a half-done install
# can lack it.
if [[ ${#missing[@]} -eq 0 && ! -d "$CACHE/npm/node_modules/@openai/codex-linux-x64" ]]; then
    missing+=("@openai/codex@0.169.0")
fi

if [[ ${#missing[@]} -gt 0 ]]; then
    T="$(now)"
    mkdir -p "$CACHE/npm"
    [[ -f "$CACHE/npm/package.json" ]] || printf '{"name":"seqharness-clis","private":true}\n' >"$CACHE/npm/package.json"
    log "npm install ${missing[*]}"
    # All four pins in one command so npm resolves one consistent tree.
    npm install --prefix "$CACHE/npm" --no-audit --no-fund --loglevel=error \
        "${NPM_PKGS[@]}" >&2
    log "npm install took $(elapsed "$T") s"
fi

for spec in "${NPM_PKGS[@]}"; do
    name="${spec%@*}"
    want="${spec##*@}"
    have="$(npm_installed_version "$name")"
    if [[ "$have" != "$want" ]]; then
        log "ERROR: $name is '$have' after install, wanted $want"; exit 1
    fi
done

# ---- aider (optional, big) --------------------------------------------------
aider_ok=0
if [[ -x "$CACHE/aider-venv/bin/python" ]] &&
   [[ "$("$CACHE/aider-venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aider-chat"))' 2>/dev/null)" == "$AIDER_VERSION" ]]; then
    aider_ok=1
fi
if [[ "$WITH_AIDER" == "1" ]]; then
    if [[ $aider_ok == 1 ]]; then
        log "$AIDER_PKG $AIDER_VERSION already installed"
    else
        T="$(now)"
        PY="${SEQHARNESS_AIDER_PYTHON:-python3}"
        log "pip install $AIDER_PKG==$AIDER_VERSION into $CACHE/aider-venv (with $PY)"
        rm -rf "$CACHE/aider-venv"
        "$PY" -m venv "$CACHE/aider-venv"
        "$CACHE/aider-venv/bin/python" -m pip install -q --no-cache-dir "$AIDER_PKG==$AIDER_VERSION" >&2
        log "aider install took $(elapsed "$T") s"
        aider_ok=1
    fi
fi

# ---- record what is there -----------------------------------------------------
{
    for spec in "${NPM_PKGS[@]}"; do
        echo "${spec%@*} ${spec##*@}"
    done
    if [[ $aider_ok == 1 ]]; then echo "$AIDER_PKG $AIDER_VERSION"; fi
} >"$CACHE/versions.txt.tmp"
mv "$CACHE/versions.txt.tmp" "$CACHE/versions.txt"

log "done in $(elapsed "$T_ALL") s; cache: $CACHE"
cat "$CACHE/versions.txt" >&2
