"""B1: proposals per second through the real HTTP API under gunicorn (8 clients) against
psycopg INSERTs of the same rows, one transaction per proposal, 8 connections, and against
LangGraph's own durable pause (bench/peer.py) with the same payloads."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import peer
from .common import database_url, emit

PORT = 8123
CLIENTS = 8
AGENT = f"bench-ingest-{int(time.time())}"


def proposal(i: int) -> bytes:
    return json.dumps(
        {
            "run_id": f"bench-ingest-{i}-{time.time_ns()}",
            "action": {
                "name": "issue_refund",
                "target_system": "billing",
                "args": {"order_id": str(i), "amount": "20.00", "currency": "EUR"},
            },
            "summary": f"Refund order {i}",
            "confidence": 0.96,
            "estimated_cost_usd": 0.02,
            "facts": {"refund_window_valid": True},
            "evidence": [
                {"id": "order", "title": "Order", "url": "https://shop.example.com/o/1",
                 "excerpt": "1x mug"},
                {"id": "ticket", "title": "Ticket", "excerpt": "It arrived broken"},
            ],
            "affected_resources": [{"type": "order", "id": str(i), "version": "1"}],
            "versions": {"agent": "bench/1", "model": "m", "prompt": "p"},
        }
    ).encode()  # fmt: skip


def in_threads(count: int, work) -> float:
    per = count // CLIENTS
    errors: list[BaseException] = []

    def guarded(index: int, n: int) -> None:
        try:
            work(index, n)
        except BaseException as exc:  # a dead client must fail the run, not speed it up
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=guarded, args=(c, per)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def _agent_key() -> str:
    from hitl.kernel import Actor
    from policies.seed import seed_policy
    from reviews.models import Queue
    from reviews.services import agent_create

    seed_policy()
    Queue.objects.get_or_create(slug="operations", defaults={"name": "Operations"})
    _, key = agent_create(actor=Actor.system("bench"), name=AGENT)
    return key


# Redis as production uses it (task broker, rate limits), on an empty database of the
# bench's own, emptied after.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


@contextmanager
def serving(settings_module: str = "hitl.settings"):
    """gunicorn as docs/deployment.md runs it in production: 2 sync workers, DEBUG off,
    kept DB connections, Redis as the task broker and rate limits."""
    redis = _redis()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only",
        "ALLOWED_HOSTS": "127.0.0.1",
        "HITL_AGENT_RATE": "100000000/min",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(  # noqa: S603 - our own server
        [str(Path(sys.executable).parent / "gunicorn"), "hitl.wsgi", "-w", "2", "-b",
         f"127.0.0.1:{PORT}", "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    try:
        _wait_for_port()
        yield
    finally:
        server.terminate()
        server.wait(timeout=20)
        # The notices the proposals queued: no worker runs here to take them.
        redis.flushdb()


def _redis():
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    try:
        used = connection.dbsize()
    except redis.ConnectionError as exc:
        raise SystemExit(f"B1 serves as production does, with Redis at {REDIS_URL}: {exc}") from exc
    if used:
        # Emptied after the run: it must hold nothing of anyone else's.
        raise SystemExit(
            f"B1 needs an empty Redis database of its own; {REDIS_URL} holds {used} keys "
            "(set BENCH_REDIS_URL, or empty it if a crashed run left them)."
        )
    return connection


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """Per process: its kind (the web server, PostgreSQL, the bench's own HTTP clients) and
    the CPU seconds it used so far, read from /proc (Linux; {} elsewhere)."""
    found, tick = {}, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            comm = (entry / "comm").read_text().strip()
            command = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry.name)
        if pid == os.getpid():
            kind = "clients"
        elif comm.startswith("postgres"):
            kind = "postgres"
        elif b"gunicorn" in command:
            kind = "server"
        else:
            continue
        found[pid] = (kind, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
    return found


def cpu_spent(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each kind of process used between two `cpu_seconds()`: a process that
    started meanwhile counts whole, one that ended meanwhile is lost (never negative)."""
    spent: dict[str, float] = {}
    for pid, (kind, seconds) in after.items():
        spent[kind] = spent.get(kind, 0.0) + seconds - before.get(pid, (kind, 0.0))[1]
    return spent


def post_all(n: int, path: str, key: str) -> tuple[float, int]:
    """POST n proposals from 8 clients; (seconds, 201 answers). Stops on any other answer."""
    created, failures = [], []

    def client(index: int, count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        ok = 0
        for i in range(count):
            conn.request(
                "POST",
                path,
                body=proposal(index * 1_000_000 + i),
                # As the TLS-terminating proxy in front of a production server sends it.
                headers={"Authorization": f"Bearer {key}",
                         "Content-Type": "application/json", "X-Forwarded-Proto": "https"},
            )  # fmt: skip
            response = conn.getresponse()
            body = response.read()
            if response.status != 201:
                failures.append(f"{response.status} {body[:300]!r}")
                return
            ok += 1
        created.append(ok)

    seconds = in_threads(n, client)
    if failures:
        raise SystemExit(f"B1: {path} refused a request: {failures[0]}")
    return seconds, sum(created)


def _wait_for_port() -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


RUN_SQL = """INSERT INTO reviews_agentrun (run_id, thread_id, agent_id, tenant, agent_version,
 model_version, prompt_version, checkpoint, pending_tool_call, status, created_at, updated_at)
 VALUES (%s, '', %s, '', 'bench/1', 'm', 'p', '{}', %s, 'waiting', now(), now()) RETURNING id"""
REVIEW_COLUMNS = (
    "review_id, run_id, kind, tenant, state, action_name, target_system, arguments, summary, "
    "consequence, content, affected_resources, confidence, uncertainty, options_considered, "
    "policy, risk, queue_id, choices, required_approvals, due_at, expires_at, versions, "
    "proposed_by, expiry_action, created_at, updated_at"
)
REVIEW_VALUES = (
    "%s, %s, 'approval', '', 'pending', 'issue_refund', 'billing', %s, %s, %s, '', %s, 0.96, '',"
    " '[]', %s, 'medium', %s, %s, 1, %s, %s, %s, 'agent:bench', '', now(), now()"
)
EVIDENCE_SQL = """INSERT INTO reviews_evidence (review_id, evidence_id, title, url, excerpt,
 fresh_until, position, supplied_at) VALUES (%s, %s, %s, %s, %s, NULL, %s, now())"""
EVIDENCE_HISTORY_SQL = """INSERT INTO reviews_historicalevidence (id, review_id, evidence_id,
 title, url, excerpt, fresh_until, position, supplied_at, history_actor, history_date,
 history_change_reason, history_type) VALUES (%s, %s, %s, %s, %s, %s, NULL, %s, now(),
 'agent:bench', now(), 'supplied', '+')"""


def raw(n: int) -> float:
    import psycopg

    from hitl.internals import history_tracked_columns
    from reviews.models import Agent, Queue, ReviewRequest

    agent_id = Agent.objects.get(name=AGENT).pk
    queue_id = Queue.objects.get(tenant="", slug="operations").pk
    body = json.loads(proposal(0))
    args = json.dumps(body["action"]["args"])
    policy = json.dumps({"outcome": "human_review", "rule": "writes_need_review"})
    choices = json.dumps(["approve", "edit", "reject", "request_more_evidence", "escalate"])
    versions = json.dumps(body["versions"])
    resources = json.dumps(body["affected_resources"])
    url = database_url()
    # The history row copies what the model's history tracks (not the packet), as ours does.
    tracked = ", ".join(f'"{c}"' for c in history_tracked_columns(ReviewRequest))
    review_history = (
        f"INSERT INTO reviews_historicalreviewrequest ({tracked}, history_actor, history_date,"  # noqa: S608
        f" history_change_reason, history_type) SELECT {tracked}, 'agent:bench', now(),"
        " 'created', '+' FROM reviews_reviewrequest WHERE id = %s"
    )

    def writer(index: int, count: int) -> None:
        with psycopg.connect(url) as conn:
            for i in range(count):
                with conn.transaction():
                    review_id = f"R{index:02d}{i:010d}{time.time_ns() % 10**13:013d}"[:26]
                    run_id = conn.execute(RUN_SQL, [f"raw-{review_id}", agent_id, args]).fetchone()[
                        0
                    ]
                    conn.execute(
                        "INSERT INTO reviews_historicalagentrun (id, run_id, thread_id, agent_id,"
                        " tenant, agent_version, model_version, prompt_version, checkpoint,"
                        " pending_tool_call, status, created_at, updated_at, history_actor,"
                        " history_date, history_change_reason, history_type) SELECT id, run_id,"
                        " thread_id, agent_id, tenant, agent_version, model_version,"
                        " prompt_version, checkpoint, pending_tool_call, status, created_at,"
                        " updated_at, 'agent:bench', now(), 'paused', '+' FROM reviews_agentrun"
                        " WHERE id = %s",
                        [run_id],
                    )
                    now = datetime.now(UTC)
                    values = [review_id, run_id, args, body["summary"], "Refund 20.00 EUR",
                              resources, policy, queue_id, choices, now + timedelta(hours=4),
                              now + timedelta(days=3), versions]  # fmt: skip
                    pk = conn.execute(
                        f"INSERT INTO reviews_reviewrequest ({REVIEW_COLUMNS}) "  # noqa: S608
                        f"VALUES ({REVIEW_VALUES}) RETURNING id",
                        values,
                    ).fetchone()[0]
                    conn.execute(review_history, [pk])
                    for position, item in enumerate(body["evidence"]):
                        row = [item["id"], item["title"], item.get("url", ""), item["excerpt"]]
                        ev = conn.execute(
                            EVIDENCE_SQL + " RETURNING id", [pk, *row, position]
                        ).fetchone()[0]
                        conn.execute(EVIDENCE_HISTORY_SQL, [ev, pk, *row, position])
                    conn.execute(
                        "INSERT INTO policies_policyevaluation (actor_label, action_name, tenant,"
                        " outcome, rule, proposal, decision, created_at, source, tool_call_id)"
                        " VALUES ('agent:bench', 'issue_refund', '', 'human_review',"
                        " 'writes_need_review', %s, %s, now(), 'server', '')",
                        [json.dumps(body), policy],
                    )

    return in_threads(n, writer)


# Ours and the peer take turns in slices, so a machine whose load changes (it is shared)
# weighs on both alike.
ROUNDS = 4
WARM_UP = CLIENTS * 10


def run(*, n: int) -> None:
    from .floor_urls import LAYERS

    key = _agent_key()
    ours_s = peer_s = 0.0
    created = paused = 0
    with serving(), peer.pausing(proposal) as pauses:
        # Warmed up as the peer is (its pausing() runs one invocation first): each worker's
        # first requests import and build what every later request reuses.
        post_all(WARM_UP, "/api/v1/actions/", key)
        cpu: dict[str, float] = {}
        for _ in range(ROUNDS):
            before = cpu_seconds()
            seconds, answered = post_all(n // ROUNDS, "/api/v1/actions/", key)
            for kind, spent in cpu_spent(before, cpu_seconds()).items():
                cpu[kind] = cpu.get(kind, 0.0) + spent
            ours_s, created = ours_s + seconds, created + answered
            peer_s += pauses(n // ROUNDS)
            paused += n // ROUNDS // CLIENTS * CLIENTS
    raw_s = raw(n)
    done = n // CLIENTS * CLIENTS
    raw_rate = done / raw_s
    ours, peer_rate = created / ours_s, paused / peer_s
    emit(
        {
            "bench": "B1",
            "ratio": round(ours / raw_rate, 3),
            "ours": round(ours, 1),
            "raw": round(raw_rate, 1),
            # LangGraph's interrupt() with its PostgreSQL checkpointer, the same payloads.
            "peer": round(peer_rate, 1),
            "peer_ratio": round(ours / peer_rate, 3),
            "unit": "proposals/s",
            "n": created,
            "created": created,
        }
    )
    # Where a proposal's CPU goes, over our rounds only (the peer idles meanwhile).
    emit(
        {"bench": "B1 cpu", "unit": "CPU ms per proposal", "n": created}
        | {kind: round(spent * 1000 / max(created, 1), 2) for kind, spent in sorted(cpu.items())}
    )
    # What limits the ratio: the same requests stopped after each layer, same server.
    with serving("bench.floor_settings"):
        for layer, path in LAYERS.items():
            seconds, answered = post_all(n, path, key)
            emit(
                {
                    "bench": "B1 layer",
                    "layer": layer,
                    "ratio": round((answered / seconds) / raw_rate, 3),
                    "ours": round(answered / seconds, 1),
                    "raw": round(raw_rate, 1),
                    "unit": "requests/s",
                    "n": answered,
                }
            )
