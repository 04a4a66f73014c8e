#!/usr/bin/env bash
# Smoke test of the product as deployed: a fresh PostgreSQL database, migrate, seed_demo,
# gunicorn (DEBUG off, behind a pretend TLS proxy) and the django-q2 worker; then
# scripts/smoke.py works it over HTTP as an agent and two reviewers and checks what the
# worker did (evaluation capture, executor, expiry and reminder sweeps, webhooks, no failed
# task). Exits non-zero with "FAIL: ..." on the first check that does not hold, after the
# tails of the logs; every step has a time limit and the services stop on any exit.
#
#   SMOKE_DB=hitl_smoke                          database to drop and create (default)
#   SMOKE_PG=postgres://postgres@127.0.0.1:5432  the PostgreSQL server
#   SMOKE_WAIT_SECONDS=120                       how long to wait for the worker
#   SMOKE_KEEP=1                                 keep the database and logs after a pass
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
PY=.venv/bin/python

DB=${SMOKE_DB:-hitl_smoke}
PG=${SMOKE_PG:-postgres://postgres@127.0.0.1:5432}
WAIT=${SMOKE_WAIT_SECONDS:-120}
if ! [[ $DB =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || [[ $DB =~ ^(postgres|template[01]|hitl_ci)$ ]]; then
    echo "FAIL: SMOKE_DB=$DB is not a database this script may drop and create." >&2
    exit 2
fi
[[ $WAIT =~ ^[0-9]+$ ]] || { echo "FAIL: SMOKE_WAIT_SECONDS must be whole seconds." >&2; exit 2; }

# Drops (closing other sessions) and creates the database through psycopg, which the
# requirements install: no PostgreSQL client tools needed.
DBTOOL='
import sys, psycopg
server, name, what = sys.argv[1:4]
with psycopg.connect(server + "/postgres", autocommit=True, connect_timeout=10) as conn:
    conn.execute(f"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")
    if what == "create":
        conn.execute(f"CREATE DATABASE \"{name}\"")
'

logs=$(mktemp -d "${TMPDIR:-/tmp}/hitl-smoke.XXXXXX")
server=""
worker=""
child=""
status=1
reason=""
show_logs=""

summary() {
    [ "$status" -eq 0 ] && return
    for name in $show_logs server worker; do
        [ -s "$logs/$name.log" ] || continue
        echo "---- last lines of $name.log ----"
        tail -n 40 "$logs/$name.log"
    done
    [ -s "$logs/failure.txt" ] && reason=$(cat "$logs/failure.txt")
    echo "----"
    echo "Smoke FAILED: ${reason:-interrupted}"
    echo "Logs kept in $logs; database $DB kept for inspection."
}
stop() {
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
    # TERM to each leader (gunicorn's master and qcluster stop their own children in
    # order), then KILL whatever is left of their process groups (setsid made one each),
    # so nothing this script started outlives it.
    for pid in $server $worker; do
        kill -TERM "$pid" 2>/dev/null
    done
    for _ in $(seq 1 60); do
        alive=""
        for pid in $server $worker; do
            kill -0 -- "-$pid" 2>/dev/null && alive=1
        done
        [ -z "$alive" ] && break
        sleep 0.5
    done
    for pid in $server $worker; do
        kill -KILL -- "-$pid" 2>/dev/null
    done
    wait 2>/dev/null
}
cleanup() {
    set +e
    stop
    summary
    if [ "$status" -eq 0 ] && [ -z "${SMOKE_KEEP:-}" ]; then
        rm -rf "$logs"
        timeout 60 "$PY" -c "$DBTOOL" "$PG" "$DB" drop >/dev/null 2>&1
    fi
}
trap cleanup EXIT
trap 'reason="interrupted by a signal"; exit 130' INT TERM

# fail MESSAGE [LOG]: stop at the first failed check; the summary repeats MESSAGE last.
fail() {
    reason=$1
    show_logs=${2:-}
    echo "FAIL: $reason"
    exit 1
}
step() { echo "== $*"; }
# bounded SECONDS COMMAND...: run with a time limit, in the background so a signal to this
# script is handled at once (bash runs traps only between foreground commands).
bounded() {
    local limit=$1
    shift
    timeout "$limit" "$@" &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    [ "$rc" -eq 124 ] && echo "(timed out after $limit s: $*)"
    return "$rc"
}

export DATABASE_URL="$PG/$DB"
export DEBUG=0
export SECRET_KEY="smoke-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export ALLOWED_HOSTS=127.0.0.1
export LOG_LEVEL=INFO
export HITL_FAKE_PAYMENTS_FILE="$logs/payments.json"
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export PYTHONUNBUFFERED=1

step "Fresh database $DB"
bounded 60 "$PY" -c "$DBTOOL" "$PG" "$DB" create || fail "could not drop and create $DB at $PG"

step "manage.py migrate"
bounded 300 "$PY" manage.py migrate --noinput >"$logs/migrate.log" 2>&1 \
    || fail "manage.py migrate failed" migrate

step "manage.py seed_demo --force"
bounded 300 "$PY" manage.py seed_demo --force >"$logs/seed_demo.log" 2>&1 \
    || fail "manage.py seed_demo --force failed" seed_demo
tail -n 3 "$logs/seed_demo.log"

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HITL_BASE_URL="http://127.0.0.1:$port"

step "gunicorn hitl.wsgi on 127.0.0.1:$port and manage.py qcluster"
setsid .venv/bin/gunicorn hitl.wsgi -w 2 -b "127.0.0.1:$port" --timeout 60 \
    --access-logfile - --error-logfile - >"$logs/server.log" 2>&1 &
server=$!
setsid "$PY" manage.py qcluster >"$logs/worker.log" 2>&1 &
worker=$!

PROBE='
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
conn.request("GET", "/admin/login/", headers={"X-Forwarded-Proto": "https"})
sys.exit(0 if conn.getresponse().status == 200 else 1)
'
answers() { timeout 10 "$PY" -c "$PROBE" "$port" 2>/dev/null; }
up=""
for _ in $(seq 1 60); do
    answers && up=1 && break
    kill -0 "$server" 2>/dev/null || fail "gunicorn exited at start"
    sleep 0.5
done
[ -n "$up" ] || fail "gunicorn did not answer GET /admin/login/ with 200 within 30 s"
kill -0 "$worker" 2>/dev/null || fail "qcluster exited at start"

step "Agent and reviewers over HTTP"
export SMOKE_PORT=$port SMOKE_LOG_DIR=$logs SMOKE_FAILURE_FILE=$logs/failure.txt
export SMOKE_WAIT_SECONDS=$WAIT
# The driver prints its own FAIL line and leaves it in failure.txt for the summary.
bounded $((WAIT * 2 + 240)) "$PY" scripts/smoke.py || {
    reason="scripts/smoke.py stopped without saying why (timed out?)"
    exit 1
}
kill -0 "$worker" 2>/dev/null || fail "qcluster died during the smoke run"
kill -0 "$server" 2>/dev/null || fail "gunicorn died during the smoke run"
status=0
echo "Smoke OK: database $DB, gunicorn and the django-q2 worker on PostgreSQL, DEBUG off."
