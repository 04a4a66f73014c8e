#!/usr/bin/env bash
# The production topology, run here: Redis as the django-q2 broker, two gunicorn processes
# and two qclusters on one PostgreSQL database, under load from agents and reviewers over
# HTTP (scripts/topology_check.py); one qcluster is killed with SIGKILL half-way; then SQL
# checks that nothing was lost or done twice. Prints a JSON summary line; exits 1 on any
# loss or duplicate. Every process it started is stopped on exit (Redis too, if it had to
# start it).
#
#   scripts/topology.sh [--quick] [--seconds N]
#   TOPO_DB=hitl_topo                          database to drop and create (default)
#   TOPO_PG=postgres://postgres@127.0.0.1:5432 the PostgreSQL server
#   TOPO_REDIS_URL=redis://127.0.0.1:6379/3    Redis database (flushed at start)
#   TOPO_PORTS=8160,8161 TOPO_HOOK_PORT=8169   gunicorn ports, the webhook receiver's
#   TOPO_KEEP=1                                keep the database and logs after a pass
#   TOPO_FRESH=1                               rebuild the template ${TOPO_DB}_tpl first
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
PY=.venv/bin/python

seconds=120
drain=240
while [ $# -gt 0 ]; do
    case $1 in
        --quick) seconds=30; drain=120 ;;
        --seconds) seconds=$2; shift ;;
        *) echo "usage: $0 [--quick] [--seconds N]" >&2; exit 2 ;;
    esac
    shift
done
[[ $seconds =~ ^[0-9]+$ ]] || { echo "FAIL: --seconds takes whole seconds." >&2; exit 2; }

DB=${TOPO_DB:-hitl_topo}
PG=${TOPO_PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${TOPO_REDIS_URL:-redis://127.0.0.1:6379/3}
PORTS=${TOPO_PORTS:-8160,8161}
HOOK_PORT=${TOPO_HOOK_PORT:-8169}
if ! [[ $DB =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || [[ $DB =~ ^(postgres|template[01]|hitl_ci)$ ]]; then
    echo "FAIL: TOPO_DB=$DB is not a database this script may drop and create." >&2
    exit 2
fi

# drop NAME | create NAME [TEMPLATE] | exists NAME, through psycopg (no client tools needed).
DBTOOL='
import sys, psycopg
server, what, name, *template = sys.argv[1:]
with psycopg.connect(server + "/postgres", autocommit=True, connect_timeout=10) as conn:
    if what == "exists":
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        sys.exit(0 if row else 1)
    conn.execute(f"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")
    if what == "create":
        source = f" TEMPLATE \"{template[0]}\"" if template else ""
        conn.execute(f"CREATE DATABASE \"{name}\"{source}")
'
REDISTOOL='
import sys, redis
client = redis.Redis.from_url(sys.argv[1], socket_timeout=2)
client.ping() if sys.argv[2] == "ping" else client.flushdb()
'

logs=$(mktemp -d "${TMPDIR:-/tmp}/hitl-topology.XXXXXX")
groups=()
started_redis=""
status=1

stop() {
    # TERM to each leader (gunicorn's master and qcluster stop their children in order),
    # then KILL whatever is left of their process groups (setsid gave each its own).
    for pid in "${groups[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 40); do
        alive=""
        for pid in "${groups[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.5
    done
    for pid in "${groups[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$started_redis" ]; then
        redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || true
    fi
}
cleanup() {
    set +e
    stop
    if [ "$status" -ne 0 ]; then
        for name in gunicorn-0 gunicorn-1 qcluster-0 qcluster-1 migrate; do
            [ -s "$logs/$name.log" ] || continue
            echo "---- last lines of $name.log ----"
            grep -v " INFO " "$logs/$name.log" | tail -n 20
        done
        echo "Topology FAILED; logs in $logs, database $DB kept."
    elif [ -z "${TOPO_KEEP:-}" ]; then
        rm -rf "$logs"
        timeout 60 "$PY" -c "$DBTOOL" "$PG" drop "$DB" >/dev/null 2>&1
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { echo "== $(date -u +%T) $*"; }
fail() { echo "FAIL: $*"; exit 1; }

if ! timeout 10 "$PY" -c "$REDISTOOL" "$REDIS" ping 2>/dev/null; then
    step "Starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --logfile "$logs/redis.log" || fail "redis-server did not start"
    started_redis=1
    for _ in $(seq 1 20); do
        timeout 5 "$PY" -c "$REDISTOOL" "$REDIS" ping 2>/dev/null && break
        sleep 0.5
    done
fi
timeout 10 "$PY" -c "$REDISTOOL" "$REDIS" flush || fail "Redis at $REDIS does not answer"

export DATABASE_URL="$PG/$DB" REDIS_URL="$REDIS"
export DEBUG=0 SECRET_KEY="topology-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export ALLOWED_HOSTS=127.0.0.1 LOG_LEVEL=INFO PYTHONUNBUFFERED=1
# Plain http on loopback: no TLS proxy in front of this run.
export SECURE_SSL_REDIRECT=0 SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0
export HITL_FAKE_PAYMENTS_FILE="$logs/payments.json" HITL_AGENT_RATE=100000/min
# Short leases so the killed cluster's tasks come back within the run (production: 60/120).
export Q_WORKERS=2 Q_TIMEOUT=20 Q_RETRY=30 HITL_EXECUTION_STALE_SECONDS=40
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

# Migrating and seeding a fresh database takes this machine a minute or two: it is done
# once into $TEMPLATE, which every run copies (then migrates, for migrations added since).
TEMPLATE=${DB}_tpl
if [ -n "${TOPO_FRESH:-}" ] || ! "$PY" -c "$DBTOOL" "$PG" exists "$TEMPLATE"; then
    step "Template database $TEMPLATE: migrate; seed_demo"
    timeout 60 "$PY" -c "$DBTOOL" "$PG" create "$TEMPLATE" || fail "could not create $TEMPLATE"
    DATABASE_URL="$PG/$TEMPLATE" timeout 300 "$PY" manage.py migrate --noinput \
        >"$logs/migrate.log" 2>&1 || fail "migrate failed"
    DATABASE_URL="$PG/$TEMPLATE" timeout 300 "$PY" manage.py seed_demo --force \
        >>"$logs/migrate.log" 2>&1 || fail "seed_demo failed"
    timeout 10 "$PY" -c "$REDISTOOL" "$REDIS" flush  # the seed's tasks belong to the template
fi
step "Database $DB copied from $TEMPLATE; migrate"
timeout 60 "$PY" -c "$DBTOOL" "$PG" create "$DB" "$TEMPLATE" || fail "could not create $DB"
timeout 300 "$PY" manage.py migrate --noinput >>"$logs/migrate.log" 2>&1 || fail "migrate failed"

IFS=, read -r -a ports <<<"$PORTS"
step "gunicorn on ${ports[*]} (2 workers x 4 threads each), 2 x manage.py qcluster"
for i in "${!ports[@]}"; do
    setsid .venv/bin/gunicorn hitl.wsgi -w 2 --threads 4 -b "127.0.0.1:${ports[$i]}" \
        --timeout 60 --error-logfile - >"$logs/gunicorn-$i.log" 2>&1 &
    groups+=("$!")
done
clusters=()
for i in 0 1; do
    setsid "$PY" manage.py qcluster >"$logs/qcluster-$i.log" 2>&1 &
    groups+=("$!")
    clusters+=("$!")
done
for port in "${ports[@]}"; do
    up=""
    for _ in $(seq 1 60); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/admin/login/" && up=1 && break
        sleep 0.5
    done
    [ -n "$up" ] || fail "gunicorn on $port did not answer within 30 s"
done

step "Load for $seconds s; SIGKILL to qcluster ${clusters[0]} half-way; drain; SQL checks"
rc=0
timeout $((seconds + drain + 120)) "$PY" scripts/topology_check.py --ports "$PORTS" \
    --hook-port "$HOOK_PORT" --seconds "$seconds" --drain-seconds "$drain" \
    --kill-group "${clusters[0]}" || rc=$?
kill -0 "${clusters[1]}" 2>/dev/null || fail "the surviving qcluster died"
[ "$rc" -eq 0 ] || fail "the load or its checks failed (exit $rc; see above)"
status=0
echo "Topology OK: nothing lost, nothing done twice."
