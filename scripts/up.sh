#!/usr/bin/env bash
# One command: install runyard (server extra) into .venv and start it (API + workers,
# SQLite and local files in ./.runyard). Arguments pass through to `runyard up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh server
exec .venv/bin/runyard up "$@"
