#!/usr/bin/env bash
# Brings the product up on the SQLite default: installs, migrates, seeds the demo, then
# serves the admin on http://127.0.0.1:8000/admin/ with the django-q2 worker beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
export DEBUG=${DEBUG:-1}
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo
.venv/bin/python manage.py qcluster &
worker=$!
.venv/bin/python manage.py runserver 127.0.0.1:8000 &
server=$!
# Stopping this script (Ctrl-C or kill) stops both; waiting lets the trap run at once.
trap 'kill $server $worker 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
echo "Admin: http://127.0.0.1:8000/admin/  (users admin, lead, reviewer, reviewer2, ml, and globex of the second tenant; password demo)"
wait $server
