"""The production topology under load: agents and reviewers over HTTP, then SQL checks.

Run by scripts/topology.sh once the gunicorns and qclusters are up (it passes their ports
and the process group of the cluster to kill). Eight agent threads propose through the
real API with their own keys, round-robin over the gunicorns; two reviewers decide through
the API with their sessions; agents claim and report what has no executor; the platform's
executor pays refunds into the fake ledger; webhooks go to a receiver in this process.
Half-way through, one qcluster is killed with SIGKILL. After a drain, SQL says whether
anything was lost or done twice; the last line is a JSON summary; the exit status is 1 on
any loss or duplicate.
"""

# Every SQL statement here is assembled from this file's constants, never from input.
# ruff: noqa: S608

import argparse
import itertools
import json
import os
import queue
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")

import django

django.setup()

from django.db import connection  # noqa: E402

ORDERS = 64
# The sweeps whose work the checks wait for: every minute here (their usual interval is
# up to five), so a drain after the load sees them run.
SWEEPS = ["retry webhooks", "expire reviews", "reconcile executions", "retry notifications"]
# Who decides which kind of proposal: the demo's reviewer works operations, reviewer2 access.
REVIEWER_OF = {"refund": "reviewer", "email": "reviewer", "permission": "reviewer2"}
PASSWORD = "demo"  # noqa: S105 - the seeded demo users' password


# The reviews the topology agents opened (the demo's seeded history is not part of it).
OURS = """WITH ours AS (SELECT rr.* FROM reviews_reviewrequest rr
    JOIN reviews_agentrun r ON r.id = rr.run_id JOIN reviews_agent a ON a.id = r.agent_id
    WHERE a.name LIKE 'topology-agent-%') """
EXECS = "reviews_execution e JOIN ours ON ours.id = e.review_id"
CHECKS = {
    "reviews": "SELECT count(*) FROM ours",
    "approved": "SELECT count(*) FROM ours WHERE state IN ('approved', 'edited')",
    "rejected": "SELECT count(*) FROM ours WHERE state = 'rejected'",
    "expired": "SELECT count(*) FROM ours WHERE state = 'expired'",
    "executions": f"SELECT count(*) FROM {EXECS}",
    "executor_runs": f"SELECT count(*) FROM {EXECS} WHERE e.mode = 'executor'",
    "agent_claims": f"SELECT count(*) FROM {EXECS} WHERE e.mode = 'agent'",
    "webhooks": "SELECT count(*) FROM reviews_webhookdelivery w JOIN ours ON ours.id = w.review_id",
    "notifications": """SELECT count(*) FROM reviews_notification n
        JOIN ours ON ours.id = n.review_id""",
    "dup_executions": f"SELECT count(*) - count(DISTINCT e.review_id) FROM {EXECS}",
    "dup_webhooks": """SELECT count(*) FROM (SELECT 1 FROM reviews_webhookdelivery w
        JOIN ours ON ours.id = w.review_id GROUP BY w.review_id, w.event, w.agent_id
        HAVING count(*) > 1) d""",
    "dup_notifications": """SELECT count(*) FROM (SELECT 1 FROM reviews_notification n
        JOIN ours ON ours.id = n.review_id GROUP BY n.review_id, n.event, n.recipient_key,
        n.channel HAVING count(*) > 1) d""",
    "dup_expired_executed": f"SELECT count(*) FROM {EXECS} WHERE ours.state = 'expired'",
    "dup_decisions": """SELECT count(*) FROM (SELECT 1 FROM reviews_decision d
        JOIN ours ON ours.id = d.review_id GROUP BY d.review_id, d.reviewer_id
        HAVING count(*) > 1) d""",
}
# What the worker still owes once the load stops; all zero after the drain, or work was lost.
DRAINED = {
    "refunds_approved_not_run": """SELECT count(*) FROM ours WHERE state = 'approved'
        AND action_name = 'issue_refund'
        AND NOT EXISTS (SELECT 1 FROM reviews_execution e WHERE e.review_id = ours.id)""",
    "executions_unfinished": f"SELECT count(*) FROM {EXECS} WHERE e.state = 'claimed' "
    "AND e.mode = 'executor'",
    "agent_claims_unreported": f"SELECT count(*) FROM {EXECS} WHERE e.state = 'claimed' "
    "AND e.mode = 'agent'",
    "decisions_uncaptured": """SELECT count(*) FROM reviews_decision d
        JOIN ours ON ours.id = d.review_id WHERE NOT EXISTS
        (SELECT 1 FROM evaluation_decisioncapture c WHERE c.decision_id = d.id)""",
    "open_reviews_unnotified": """SELECT count(*) FROM ours WHERE state = 'pending'
        AND NOT EXISTS (SELECT 1 FROM reviews_notification n
        WHERE n.review_id = ours.id AND n.event = 'arrived')""",
    "webhooks_undelivered": """SELECT count(*) FROM reviews_webhookdelivery w
        JOIN ours ON ours.id = w.review_id WHERE w.status <> 'delivered'""",
    "notifications_unsent": """SELECT count(*) FROM reviews_notification n
        JOIN ours ON ours.id = n.review_id WHERE n.status = 'pending'""",
    "expiry_overdue": """SELECT count(*) FROM ours WHERE state IN ('pending', 'escalated',
        'awaiting_evidence') AND expires_at < now()""",
}


class Receiver(BaseHTTPRequestHandler):
    """The agents' webhook endpoint: counts every delivery it is handed."""

    seen: Counter = Counter()
    effects: dict = {}
    lock = threading.Lock()

    def do_POST(self):  # http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = json.loads(body or b"{}")
        delivery = self.headers.get("X-HITL-Delivery", "")
        with self.lock:
            self.seen[delivery] += 1
            # What the agent acts on: one event of one review at its own endpoint. The same
            # delivery id again is a resend it already handled (its answer may have been
            # lost), so only a second id for the same event would make it act twice.
            about = payload.get("review_id") or payload.get("run_id")
            key = (self.path, about, payload.get("event"))
            self.effects.setdefault(key, set()).add(delivery)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def prepare(hook_port: int) -> list[str]:
    """Agents with keys and a callback, a fast-expiring access queue, orders in the ledger,
    sweeps every minute: what the load needs, written directly (no HTTP entry point)."""
    from datetime import timedelta

    from django_q.models import Schedule

    from examples.refund_agent import payments
    from hitl.kernel import Actor
    from reviews.models import Queue
    from reviews.services import agent_create, queue_save

    for n in range(ORDERS):
        order = {"version": "1", "total": "100000.00", "currency": "EUR"}
        with payments._ledger() as data:
            data["orders"][f"t{n}"] = {**order, "refund_window_valid": True}
    keys = []
    for n in range(8):
        _, key = agent_create(
            actor=Actor.system("topology"),
            name=f"topology-agent-{n}",
            callback_url=f"http://127.0.0.1:{hook_port}/hook/{n}",
        )
        keys.append(key)
    access = Queue.objects.get(tenant="", slug="access")
    access.sla, access.expiry = timedelta(seconds=10), timedelta(seconds=20)
    from django.contrib.auth import get_user_model

    queue_save(actor=get_user_model().objects.get(username="lead"), queue=access)
    Schedule.objects.filter(name__in=SWEEPS).update(minutes=1)
    return keys


def proposal(n: int, kind: str, tag: str) -> dict:
    base = {
        "run_id": f"topo-{tag}-{n}",
        "confidence": 0.9,
        "estimated_cost_usd": 0.01,
        "versions": {"agent": "topology/1", "model": "m", "prompt": "p1"},
    }
    if kind == "refund":
        order = f"t{n % ORDERS}"
        return {
            **base,
            "action": {
                "name": "issue_refund",
                "target_system": "billing",
                "args": {"order_id": order, "amount": "1.00", "currency": "EUR"},
            },
            "summary": f"Refund 1.00 EUR on {order}.",
            "facts": {"refund_window_valid": True},
            "affected_resources": [{"type": "order", "id": order, "version": "1"}],
        }
    if kind == "email":
        args = {"template_id": "shipping-delay", "customer_id": f"c-{n}"}
        return {
            **base,
            "action": {"name": "send_email", "target_system": "mailer", "args": args},
            "summary": f"Tell customer c-{n} their parcel is late.",
            "audience": "external",
        }
    args = {"user_id": "u-77", "permission": "reports-read", "change": "grant"}
    return {
        **base,
        "action": {"name": "change_permission", "target_system": "iam", "args": args},
        "summary": f"Grant reports-read to u-77 ({n}).",
    }


class Load:
    def __init__(self, ports: list[int], keys: list[str], seconds: float):
        self.ports = ports
        self.keys = keys
        self.until = time.monotonic() + seconds
        self.to_decide = {name: queue.Queue() for name in set(REVIEWER_OF.values())}
        self.to_claim: queue.Queue = queue.Queue()
        self.accepted: list[str] = []
        self.errors: Counter = Counter()
        self.samples: dict[str, str] = {}
        self.counter = itertools.count()
        self.lock = threading.Lock()
        self.tag = f"{int(time.time())}"

    def url(self, n: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[n % len(self.ports)]}{path}"

    def post(self, session, n, path, body, headers=None, expect=(200, 201)):
        # One idempotency key per logical call: a retry after a lost answer is the same call.
        headers = {"Idempotency-Key": f"k-{self.tag}-{n}-{path}", **(headers or {})}
        for attempt in range(5):
            try:
                answer = session.post(self.url(n + attempt, path), json=body, headers=headers)
            except requests.RequestException:
                self.errors["connection"] += 1
                time.sleep(0.2)
                continue
            if answer.status_code not in expect:
                what = f"{path.split('/')[3]} {answer.status_code}"
                self.errors[what] += 1
                self.samples.setdefault(what, answer.text[:300])
            return answer
        return None

    def agent(self, index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.keys[index]}"
        while time.monotonic() < self.until:
            try:
                item = self.to_claim.get_nowait()
            except queue.Empty:
                self._propose(session, index)
            else:
                self._claim(session, item)

    def _propose(self, session, index: int) -> None:
        if sum(q.qsize() for q in self.to_decide.values()) > 1000:
            time.sleep(0.05)  # reviewers are behind: a human queue is not infinite either
            return
        n = next(self.counter)
        kind = random.choice(["refund", "refund", "email", "permission"])
        answer = self.post(session, n, "/api/v1/actions/", proposal(n, kind, self.tag))
        if answer is None or answer.status_code != 201:
            return
        review = answer.json().get("review") or {}
        if review.get("review_id"):
            with self.lock:
                self.accepted.append(review["review_id"])
            self.to_decide[REVIEWER_OF[kind]].put((review["review_id"], kind, self.keys[index]))

    def _claim(self, session, item) -> None:
        review_id, key = item
        claim = f"/api/v1/reviews/{review_id}/execution/claim/"
        n = next(self.counter)
        owner = {"Authorization": f"Bearer {key}"}  # the agent that proposed it claims it
        first = self.post(session, n, claim, {}, owner)
        # A second claim of the same review (another agent instance) must be refused.
        again = session.post(self.url(n + 1, claim), json={}, headers=owner, timeout=30)
        if again.status_code != 409:
            self.errors[f"second claim {again.status_code}"] += 1
        if first is not None and first.status_code in (200, 201):
            report = f"/api/v1/reviews/{review_id}/execution/report/"
            body = {"outcome": "succeeded", "result": {"sent": True}}
            self.post(session, n, report, body, owner)

    def reviewer(self, index: int, username: str) -> None:
        session = login(self.url(index, ""), username)
        while time.monotonic() < self.until + 5:
            try:
                review_id, kind, key = self.to_decide[username].get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "permission" and random.random() < 0.5:
                continue  # left for the expiry sweep
            choice = "reject" if random.random() < 0.1 else "approve"
            n = next(self.counter)
            body = {"choice": choice, "reason": "topology run"}
            answer = self.post(
                session, n, f"/api/v1/reviews/{review_id}/decisions/", body, expect=(201, 409)
            )
            decided = answer is not None and answer.status_code == 201
            if decided and kind == "email" and answer.json().get("state") == "approved":
                self.to_claim.put((review_id, key))


def login(base: str, username: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/admin/login/", timeout=30).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    answer = session.post(f"{base}/admin/login/", data=form, allow_redirects=False, timeout=30)
    if answer.status_code != 302:
        raise SystemExit(f"FAIL: {username} could not sign in ({answer.status_code})")
    session.headers["X-CSRFToken"] = session.cookies.get("csrftoken", "")
    return session


def query(sql: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(OURS + sql if "ours" in sql else sql)
        return int(cursor.fetchone()[0] or 0)


def ledger_figures() -> dict[str, int]:
    """The fake payment system's side: one refund per succeeded refund execution."""
    from examples.refund_agent import payments

    refunds = payments.state()["refunds"]
    with connection.cursor() as cursor:
        cursor.execute(
            OURS + f"SELECT e.idempotency_key FROM {EXECS} WHERE e.state = 'succeeded' "
            "AND ours.action_name = 'issue_refund'"
        )
        paid = {key for (key,) in cursor.fetchall()}
    return {
        "ledger_refunds": len(refunds),
        "ledger_calls": payments.state()["calls"],
        "lost_ledger": len(paid - set(refunds)),
        "dup_ledger_unrecorded": len(set(refunds) - paid),
    }


def drain(limit: float) -> bool:
    """Wait for the worker to finish what the load left (executions, webhooks, expiry)."""
    deadline = time.monotonic() + limit
    shown = 0.0
    while time.monotonic() < deadline:
        owed = {name: query(sql) for name, sql in DRAINED.items()}
        owed = {name: n for name, n in owed.items() if n}
        if not owed:
            return True
        if time.monotonic() - shown > 15:
            print(f"== draining: {json.dumps(owed)}", flush=True)
            shown = time.monotonic()
        time.sleep(2)
    return False


def run_load(options: argparse.Namespace) -> tuple["Load", float]:
    """Agents and reviewers for `options.seconds`; the SIGKILL half-way."""
    load = Load([int(p) for p in options.ports.split(",")], prepare(options.hook_port), 0)
    load.until = time.monotonic() + options.seconds
    started = time.monotonic()
    threads = [threading.Thread(target=load.agent, args=(i,)) for i in range(8)]
    threads += [
        threading.Thread(target=load.reviewer, args=(i, name))
        for i, name in enumerate(["reviewer", "reviewer", "reviewer2"])
    ]
    for thread in threads:
        thread.start()
    time.sleep(options.seconds / 2)
    if options.kill_group:
        os.killpg(options.kill_group, signal.SIGKILL)
        print(f"== killed qcluster process group {options.kill_group} (SIGKILL)", flush=True)
    for thread in threads:
        thread.join()
    return load, time.monotonic() - started


def webhook_figures() -> dict[str, int]:
    """The receiver's side: every delivered webhook arrived, no event under two ids."""
    with connection.cursor() as cursor:
        cursor.execute(
            OURS + "SELECT w.delivery_id FROM reviews_webhookdelivery w "
            "JOIN ours ON ours.id = w.review_id WHERE w.status = 'delivered'"
        )
        delivered = {delivery_id for (delivery_id,) in cursor.fetchall()}
    return {
        "dup_webhook_effects": sum(len(ids) - 1 for ids in Receiver.effects.values()),
        "webhooks_resent_same_id": sum(n - 1 for n in Receiver.seen.values() if n > 1),
        "webhooks_received": sum(Receiver.seen.values()),
        "lost_webhooks": len(delivered - set(Receiver.seen)),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", required=True, help="gunicorn ports, comma-separated")
    parser.add_argument("--hook-port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--kill-group", type=int, help="process group of the qcluster to kill")
    parser.add_argument("--drain-seconds", type=float, default=150)
    options = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", options.hook_port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    load, elapsed = run_load(options)
    drained = drain(options.drain_seconds)
    figures = {name: query(sql) for name, sql in CHECKS.items()}
    accepted = "','".join(load.accepted)
    figures["lost_reviews"] = len(load.accepted) - query(
        f"SELECT count(*) FROM reviews_reviewrequest WHERE review_id IN ('{accepted}')"
    )
    figures.update(ledger_figures())
    figures.update(webhook_figures())
    server.shutdown()
    from django_q.brokers import get_broker

    broker = get_broker()
    figures["tasks_redelivered"] = broker.requeued() if hasattr(broker, "requeued") else None
    lost = sum(v for k, v in figures.items() if k.startswith("lost_"))
    lost += sum(query(sql) for sql in DRAINED.values())
    duplicates = sum(v for k, v in figures.items() if k.startswith("dup_"))
    summary = {
        "topology": "2 gunicorn + 2 qcluster + redis + postgresql",
        "proposals": len(load.accepted),
        "proposals_per_s": round(len(load.accepted) / elapsed, 1),
        "drained": drained,
        "lost": lost,
        "duplicates": duplicates,
        **figures,
        "client_errors": dict(load.errors),
        "client_error_samples": load.samples,
    }
    print(json.dumps(summary), flush=True)
    return 0 if drained and lost == 0 and duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
