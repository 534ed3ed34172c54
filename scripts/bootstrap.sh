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
