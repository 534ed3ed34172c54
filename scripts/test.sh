#!/usr/bin/env bash
# One command: install what the tests need into .venv, lint, and run the whole suite.
# Set RUNYARD_TEST_DATABASE_URL=postgresql://… to run storage tests on PostgreSQL too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "server,test"
# tests/ui drive the system's chromium through Playwright (never a downloaded browser).
command -v chromium >/dev/null || (apt-get update -qq >/dev/null && \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
.venv/bin/ruff check src tests benchmarks
set +e
# Test files run three at a time (whole files per worker, so a module's servers start once):
# most of the suite's time is spent waiting on servers and child processes, not computing,
# so three workers finish in about half the time of one even on 2 cores.
# RUNYARD_TEST_WORKERS=N runs N at a time; 0 runs everything in this process.
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${RUNYARD_TEST_WORKERS:-3}" --dist loadfile "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$code"
