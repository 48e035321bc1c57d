#!/usr/bin/env bash
# Install pytest-html and pytest-json-report, pinned, into a folder OUTSIDE the
# repository and outside the test venv:
#
#   $SEQHARNESS_REPORT_PLUGINS (default ~/.cache/seqharness-report-plugins)
#
# tests/e2e/test_report_plugins.py puts that folder on PYTHONPATH for the
# seqharness runs it starts, so the two plugins autoload there and nowhere
# else: the rest of the suite (and its start-up time) is unchanged.
# Idempotent: a second run with the same pins installs nothing.
set -euo pipefail

TARGET="${SEQHARNESS_REPORT_PLUGINS:-$HOME/.cache/seqharness-report-plugins}"
PINS=("pytest-html==4.2.0" "pytest-json-report==1.5.0")
STAMP="$TARGET/.pins"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${PINS[*]}" ]; then
    echo "install-report-plugins: ${PINS[*]} already in $TARGET" >&2
    exit 0
fi
rm -rf "$TARGET"
mkdir -p "$TARGET"
# Their dependencies (pytest-metadata, jinja2, markupsafe) go there too; pytest
# itself comes from the test venv that runs seqharness, so it is not installed here.
python -m pip install -q --target "$TARGET" "${PINS[@]}"
rm -rf "$TARGET"/pytest "$TARGET"/_pytest "$TARGET"/pytest-*.dist-info "$TARGET"/pluggy* \
       "$TARGET"/iniconfig* "$TARGET"/packaging* "$TARGET"/pygments* "$TARGET"/py.py "$TARGET"/bin
echo "${PINS[*]}" > "$STAMP"
echo "install-report-plugins: installed ${PINS[*]} into $TARGET" >&2
