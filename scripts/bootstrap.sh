#!/usr/bin/env bash
# Creates .venv and installs runyard into it with the given extras. Idempotent and quick
# when nothing changed (uv resolves against its cache).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-server}"
PY="${PYTHON:-python3}"
"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 11):
    raise SystemExit(f"runyard needs Python 3.11+, found {sys.version.split()[0]}")
PYCHECK
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
.venv/bin/uv pip install --quiet --python .venv/bin/python -e ".[${extras}]"
# Bytecode for everything installed and for runyard itself, once: where the environment sets
# PYTHONDONTWRITEBYTECODE (some CI images do), no process would ever cache its imports, and
# every server start, CLI call and worker would compile them again (seconds each).
# compileall skips what is up to date, so this is quick after the first time.
.venv/bin/python -m compileall -q -j 0 src .venv/lib/python3*/site-packages >/dev/null 2>&1 || true
