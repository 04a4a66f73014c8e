#!/usr/bin/env bash
# Runs the whole suite. DATABASE_URL=postgres://... runs it on PostgreSQL instead of SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
exec .venv/bin/python -m pytest "$@"
