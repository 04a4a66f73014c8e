"""The smoke test's driver: an agent and two reviewers work the deployed product over HTTP.

scripts/smoke.sh prepares a fresh PostgreSQL database, seeds the demo, starts gunicorn and
the django-q2 worker, then runs this file. Everything the agent and the reviewers do goes
over HTTP, as a TLS-terminating proxy would forward it (`X-Forwarded-Proto: https`, the
server runs with DEBUG off). `manage.py shell` is used only to set up what has no HTTP
entry point (a queue's timings, the worker's schedule) and to read what the worker left in
the database (evaluation cases, reminders, django-q2 tasks). Standard library only.

Exits 1 with `FAIL: ...` on the first check that does not hold.
"""

import hashlib
import hmac
import http.client
import http.cookies
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
from datetime import UTC, datetime

PORT = int(os.environ["SMOKE_PORT"])
HOST = "127.0.0.1"
ORIGIN = f"https://{HOST}:{PORT}"
LOG_DIR = os.environ.get("SMOKE_LOG_DIR", ".")
WAIT = float(os.environ.get("SMOKE_WAIT_SECONDS", "120"))
PYTHON = sys.executable
TAG = time.strftime("%Y%m%d%H%M%S")
PASSWORD = "demo"  # noqa: S105 - the seeded demo users' password

passed: list[str] = []


class CheckFailed(Exception):
    pass


def ok(what: str) -> None:
    passed.append(what)
    print(f"  ok  {what}", flush=True)


def check(condition: bool, what: str, detail: str = "") -> None:
    if not condition:
        raise CheckFailed(f"{what}" + (f"\n      {detail}" if detail else ""))
    ok(what)


def shorten(value, limit: int = 1500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."


# --- HTTP -------------------------------------------------------------------------------


class Client:
    """One HTTP client (an agent key or a browser-like session) with its own cookies."""

    def __init__(self, name: str, headers: dict[str, str] | None = None):
        self.name = name
        self.headers = headers or {}
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body=None, headers=None, form=False):
        conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
        sent = {"X-Forwarded-Proto": "https", "Accept": "application/json", **self.headers}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                sent["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise CheckFailed(f"{self.name}: {method} {path} got no answer: {exc}") from exc
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = http.cookies.SimpleCookie()
            jar.load(header)
            for key, morsel in jar.items():
                self.cookies[key] = morsel.value
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return response.status, response.headers, payload

    def expect(self, status: int, method: str, path: str, body=None, headers=None):
        code, answer_headers, payload = self.request(method, path, body, headers)
        if code != status:
            raise CheckFailed(
                f"{self.name}: {method} {path} answered {code}, expected {status}\n"
                f"      request: {shorten(body) if body is not None else '(no body)'}\n"
                f"      response: {shorten(payload)}"
            )
        return payload, answer_headers


def login(username: str) -> Client:
    """Sign in through the admin's login form, as a reviewer's browser does."""
    client = Client(username, {"Origin": ORIGIN, "Referer": f"{ORIGIN}/admin/login/"})
    code, _, page = client.request("GET", "/admin/login/?next=/admin/")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', str(page))
    if code != 200 or match is None:
        raise CheckFailed(f"{username}: GET /admin/login/ answered {code} without a CSRF token")
    form = {
        "username": username,
        "password": PASSWORD,
        "csrfmiddlewaretoken": match.group(1),
        "next": "/admin/",
    }
    code, headers, page = client.request("POST", "/admin/login/?next=/admin/", form, form=True)
    if code != 302 or "sessionid" not in client.cookies:
        raise CheckFailed(
            f"{username}: login with password '{PASSWORD}' failed ({code}, "
            f"Location {headers.get('Location')}): {shorten(page, 300)}"
        )
    # Unsafe API calls need the session's CSRF token, as a front end sends it.
    client.headers["X-CSRFToken"] = client.cookies.get("csrftoken", "")
    return client


# --- manage.py --------------------------------------------------------------------------


def manage(*args: str, timeout: float = 120) -> str:
    try:
        proc = subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
            [PYTHON, "manage.py", *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"manage.py {args[0]} did not finish in {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise CheckFailed(
            f"manage.py {args[0]} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def django(code: str):
    """Run code in `manage.py shell`; it leaves its answer in the variable `result`."""
    wrapped = code + "\nimport json as _j\nprint('SMOKE_JSON ' + _j.dumps(result, default=str))"
    out = manage("shell", "--no-imports", "-c", wrapped)
    for line in out.splitlines():
        if line.startswith("SMOKE_JSON "):
            return json.loads(line[len("SMOKE_JSON ") :])
    raise CheckFailed(f"manage.py shell printed no answer:\n{out[-2000:]}")


FAILURES_SQL = """
from django_q.models import Failure
def _where(text):
    lines = [line for line in text.splitlines() if line.strip()]
    frames = [i for i, line in enumerate(lines)
              if line.strip().startswith("File ") and "site-packages" not in line]
    place = (lines[frames[-1]].strip() + " " + lines[frames[-1] + 1].strip()) if frames else ""
    return (lines[-1] if lines else "") + (" at " + place if place else "")
failed = Failure.objects.order_by("stopped")
result = {
    "count": failed.count(),
    "first": [{"func": f.func, "name": f.name, "error": _where(str(f.result))}
              for f in failed[:3]],
}
"""


def failures_text(failures) -> str:
    lines = [f"      {failures['count']} failed task(s) in django_q_task, first ones:"]
    lines += [f"      - {f['func']} ({f['name']}): {f['error']}" for f in failures["first"]]
    return "\n".join(lines)


# --- webhooks ---------------------------------------------------------------------------


class Webhooks:
    """The agent's callback endpoint: records every POST the worker delivers."""

    def __init__(self):
        self.received: list[dict] = []
        self.lock = threading.Lock()
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with hooks.lock:
                    hooks.received.append(
                        {
                            "body": body,
                            "timestamp": self.headers.get("X-HITL-Timestamp", ""),
                            "signature": self.headers.get("X-HITL-Signature", ""),
                        }
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, secret: str) -> list[tuple[str, str, bool]]:
        """(event, review_id, signature valid) per delivery received so far."""
        out = []
        with self.lock:
            received = list(self.received)
        for item in received:
            mac = hmac.new(
                secret.encode(), f"{item['timestamp']}.".encode() + item["body"], hashlib.sha256
            )
            valid = hmac.compare_digest("v1=" + mac.hexdigest(), item["signature"])
            payload = json.loads(item["body"])
            out.append((payload.get("event"), payload.get("review_id"), valid))
        return out


# --- the scenario -----------------------------------------------------------------------


def evidence(evidence_id: str, title: str, excerpt: str) -> dict:
    return {
        "id": evidence_id,
        "title": title,
        "url": f"https://example.com/{evidence_id}",
        "excerpt": excerpt,
    }


def proposal(suffix: str, action: dict, summary: str, **extra) -> dict:
    return {
        "run_id": f"smoke-{TAG}-{suffix}",
        "action": action,
        "summary": summary,
        "confidence": 0.9,
        "estimated_cost_usd": 0.01,
        "versions": {"agent": "smoke-agent/1", "model": "smoke-model", "prompt": "smoke-1"},
        **extra,
    }


EMAIL = proposal(
    "email",
    {
        "name": "send_email",
        "target_system": "mailer",
        "args": {"template_id": "shipping-delay", "customer_id": "c-1"},
    },
    "Tell customer c-1 their parcel is delayed.",
    audience="external",
    evidence=[evidence("carrier-1", "Carrier status", "Held at depot, new ETA in 2 days.")],
)
DRAFT = proposal(
    "draft",
    {"name": "draft_reply", "target_system": "helpdesk", "args": {"ticket_id": "t-1"}},
    "Reply to a customer asking about a late refund.",
    content="Hi,\n\nYour refund will arrive soon.\n\nSupport",
    audience="external",
    evidence=[evidence("refund-1", "Refund 1", "Refund of 35.00 EUR issued Monday 09:12.")],
)
DELETE = proposal(
    "delete",
    {
        "name": "delete_record",
        "target_system": "crm",
        "args": {"record_type": "contact", "record_id": "c-88"},
    },
    "Delete a duplicate contact after a merge.",
    evidence=[evidence("merge-1", "Merge log", "Contact c-88 merged into contact c-12.")],
)
REFUND = proposal(
    "refund",
    {
        "name": "issue_refund",
        "target_system": "billing",
        "args": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
    },
    "Refund a damaged mug on order 17.",
    facts={"refund_window_valid": True},
    affected_resources=[{"type": "order", "id": "17", "version": "4"}],
    evidence=[evidence("order-17", "Order 17", "1x mug, 20.00 EUR, arrived broken.")],
)


def permission(suffix: str) -> dict:
    return proposal(
        suffix,
        {
            "name": "change_permission",
            "target_system": "iam",
            "args": {"user_id": f"u-{suffix}", "permission": "reports-read", "change": "grant"},
        },
        f"Grant reports-read to u-{suffix}.",
    )


QUEUE_SETUP = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from reviews.models import Queue
from reviews.services import queue_save
queue = Queue.objects.get(tenant="", slug="access")
{changes}
queue_save(actor=get_user_model().objects.get(username="lead"), queue=queue)
result = {{"sla": queue.sla.total_seconds(), "expiry": queue.expiry.total_seconds()}}
"""


def propose(agent: Client, body: dict, kind: str, queue: str, key: str | None = None) -> dict:
    headers = {"Idempotency-Key": key} if key else None
    answer, _ = agent.expect(201, "POST", "/api/v1/actions/", body, headers)
    review = answer.get("review") or {}
    expected = {"kind": kind, "queue": queue, "state": "pending"}
    check(
        {field: review.get(field) for field in expected} == expected,
        f"agent proposed {body['action']['name']}: pending {kind} review in {queue} "
        f"({review.get('review_id')})",
        shorten(answer),
    )
    return review


def decide(reviewer: Client, review: dict, choice: str, state: str, **fields) -> dict:
    body = {"choice": choice, **fields}
    packet, _ = reviewer.expect(
        201, "POST", f"/api/v1/reviews/{review['review_id']}/decisions/", body
    )
    check(
        packet.get("state") == state,
        f"{reviewer.name} decided {review['proposed_action']['name']} via the API: "
        f"{choice} -> {state}",
        shorten(packet),
    )
    return packet


def until(deadline: float, what: str, probe, interval: float = 2.0):
    """Call probe() until it returns something truthy; fail at the deadline."""
    last = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {WAIT:.0f} s")
        time.sleep(interval)


def run() -> None:
    hooks = Webhooks()

    # The agent: registered with the management command, as the README shows.
    out = manage("create_agent", f"smoke-agent-{TAG}", "--callback-url", hooks.url)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    secret = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("Webhook signing")),
        "",
    )
    key = lines[-1] if lines else ""
    check(key.startswith("hitl_") and bool(secret), "create_agent printed an API key and secret")
    agent = Client("agent", {"Authorization": f"Bearer {key}"})

    # Reminder and expiry, set up first so their clocks run while the rest happens. The
    # access queue reminds 2 h before a 1 h SLA, so a new review is due a reminder at once.
    django(
        QUEUE_SETUP.format(
            changes="queue.sla = timedelta(hours=1)\nqueue.remind_before = timedelta(hours=2)"
        )
    )
    remind = propose(agent, permission("remind"), "approval", "access")
    # A review that expires 15 s after it is proposed.
    django(QUEUE_SETUP.format(changes="queue.expiry = timedelta(seconds=15)"))
    expiring = propose(agent, permission("expire"), "approval", "access")
    django(QUEUE_SETUP.format(changes="queue.expiry = timedelta(days=3)"))

    # Proposals: one with an idempotency key, retried.
    email = propose(agent, EMAIL, "approval", "operations", key=f"smoke-{TAG}-email")
    replay, headers = agent.expect(
        201, "POST", "/api/v1/actions/", EMAIL, {"Idempotency-Key": f"smoke-{TAG}-email"}
    )
    check(
        replay["review"]["review_id"] == email["review_id"]
        and headers.get("Idempotent-Replayed") == "true",
        "a retried proposal with the same Idempotency-Key returns the same review",
        shorten(replay),
    )
    draft = propose(agent, DRAFT, "edit", "operations")
    delete = propose(agent, DELETE, "approval", "operations")
    refund = propose(agent, REFUND, "approval", "operations")

    # The agent's key cannot decide.
    code, _, payload = agent.request(
        "POST", f"/api/v1/reviews/{email['review_id']}/decisions/", {"choice": "approve"}
    )
    check(code == 403, "an agent key cannot decide (403)", f"{code} {shorten(payload)}")

    # Reviewers sign in with the demo password and decide through the API.
    reviewer = login("reviewer")
    ok("reviewer signed in (session + CSRF, DEBUG off, behind https)")
    reviewer2 = login("reviewer2")
    code, _, payload = reviewer2.request("GET", f"/api/v1/reviews/{email['review_id']}/")
    check(code == 404, "reviewer2 cannot see another queue's review (404)", f"{code}")
    # The demo's second tenant: its lead sees none of the default tenant's reviews.
    globex = login("globex")
    code, _, payload = globex.request("GET", f"/api/v1/reviews/{email['review_id']}/")
    check(code == 404, "another tenant's lead cannot see this tenant's review (404)", f"{code}")
    code, _, payload = globex.request("POST", f"/api/v1/reviews/{email['review_id']}/decisions/",
                                      {"choice": "approve"})  # fmt: skip
    check(code == 404, "nor decide it (404)", f"{code} {shorten(payload)}")

    decide(reviewer, email, "approve", "approved", reason="Carrier confirms the delay.")
    edited_text = "Hi,\n\nYour refund was issued on Monday; expect it within 3-5 days.\n\nSupport"
    decide(
        reviewer,
        draft,
        "edit",
        "edited",
        content=edited_text,
        reason="Give the customer the date and the delay, not 'soon'.",
    )
    decide(
        reviewer,
        delete,
        "reject",
        "rejected",
        reason="Contact c-88 still has open invoices; merging is not enough.",
    )
    decide(reviewer, refund, "approve", "approved", reason="Photo shows the broken mug.")
    code, _, payload = reviewer.request(
        "POST",
        f"/api/v1/reviews/{delete['review_id']}/decisions/",
        {"choice": "approve", "reason": "changed my mind"},
    )
    check(code == 409, "deciding a decided review again is refused (409)", f"{code}")

    # The agent resumes.
    packet, _ = agent.expect(200, "GET", f"/api/v1/reviews/{draft['review_id']}/")
    resume = packet.get("resume") or {}
    check(
        resume.get("action") == "continue_with_edits" and resume.get("content") == edited_text,
        "agent sees the edit: resume continue_with_edits with the reviewer's text",
        shorten(resume),
    )
    packet, _ = agent.expect(200, "GET", f"/api/v1/reviews/{delete['review_id']}/")
    resume = packet.get("resume") or {}
    check(
        resume.get("action") == "stop" and "open invoices" in resume.get("reason", ""),
        "agent sees the rejection: resume stop with the reason",
        shorten(resume),
    )
    packet, _ = agent.expect(200, "GET", f"/api/v1/reviews/{email['review_id']}/")
    check(
        (packet.get("resume") or {}).get("action") == "execute",
        "agent sees the approval: resume execute",
        shorten(packet.get("resume")),
    )
    path = f"/api/v1/reviews/{email['review_id']}/execution"
    claimed, _ = agent.expect(200, "POST", f"{path}/claim/", {})
    check(claimed.get("state") == "claimed", "agent claimed the approved action", shorten(claimed))
    code, _, payload = agent.request("POST", f"{path}/claim/", {})
    check(
        code == 409 and (payload or {}).get("error") == "already_claimed",
        "a second claim is refused (409 already_claimed)",
        f"{code} {shorten(payload)}",
    )
    reported, _ = agent.expect(
        200, "POST", f"{path}/report/", {"outcome": "succeeded", "result": {"message": "m-1"}}
    )
    check(reported.get("state") == "succeeded", "agent reported the execution", shorten(reported))
    run, _ = agent.expect(200, "GET", f"/api/v1/runs/{EMAIL['run_id']}/")
    resume = (run.get("reviews") or [{}])[0].get("resume") or {}
    check(
        resume.get("action") == "done" and run.get("pending_reviews") == [],
        "the run says done: nothing pending",
        shorten(run),
    )

    # The worker. Expiry needs the review past its expires_at before the sweep runs.
    expires_at = datetime.fromisoformat(expiring["expires_at"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds() + 1))
    nudged = django(
        "from django.utils import timezone\n"
        "from django_q.models import Schedule\n"
        "result = Schedule.objects.filter(name__in=['expire reviews', 'send reminders'])"
        ".update(next_run=timezone.now())"
    )
    check(nudged == 2, "the expiry and reminder schedules are due now", f"updated {nudged}")
    deadline = time.monotonic() + WAIT

    def refund_done():
        packet, _ = agent.expect(200, "GET", f"/api/v1/reviews/{refund['review_id']}/")
        execution = packet.get("execution") or {}
        return execution if execution.get("state") not in (None, "claimed") else None

    execution = until(deadline, "the worker runs the approved refund's executor", refund_done)
    check(
        execution.get("state") == "succeeded" and execution.get("mode") == "executor",
        "the worker ran the registered refund executor once: succeeded",
        shorten(execution),
    )

    # (a) evaluation capture of the edit and the rejection.
    cases_sql = f"""
from evaluation.models import EvalCase
from django_q.models import Failure
result = {{
    "cases": list(EvalCase.objects.filter(
        review_id__in=["{draft["review_id"]}", "{delete["review_id"]}"]
    ).values("review_id", "label", "status", "correction", "reason")),
    "capture_failures": Failure.objects.filter(func="evaluation.tasks.capture").count(),
}}
"""

    def captured():
        answer = django(cases_sql)
        if len(answer["cases"]) == 2 or answer["capture_failures"]:
            return answer
        return None

    answer = until(deadline, "the worker captures the edit and the rejection", captured)
    if answer["capture_failures"]:
        raise CheckFailed(
            "evaluation capture tasks failed in the worker; the edit and the rejection: "
            f"{len(answer['cases'])} of 2 captured\n" + failures_text(django(FAILURES_SQL))
        )
    cases = {case["review_id"]: case for case in answer["cases"]}
    edit_case, reject_case = cases.get(draft["review_id"]), cases.get(delete["review_id"])
    check(
        edit_case is not None
        and edit_case["label"] == "edit"
        and edit_case["status"] == "candidate"
        and (edit_case["correction"] or {}).get("content") == edited_text,
        "the edit became a candidate EvalCase with the reviewer's text",
        shorten(edit_case),
    )
    check(
        reject_case is not None
        and reject_case["label"] == "reject"
        and reject_case["status"] == "candidate"
        and "open invoices" in reject_case["reason"],
        "the rejection became a candidate EvalCase with its reason",
        shorten(reject_case),
    )

    # (c) the expiry sweep expired the short-lived review; the reminder sweep reminded.
    def expired():
        packet, _ = agent.expect(200, "GET", f"/api/v1/reviews/{expiring['review_id']}/")
        return packet if packet.get("state") != "pending" else None

    packet = until(deadline, "the expiry sweep expires the review past expires_at", expired)
    resume = packet.get("resume") or {}
    check(
        packet.get("state") == "expired" and resume.get("action") == "expired",
        "the expiry sweep expired the review; the agent is told (resume expired)",
        shorten({"state": packet.get("state"), "resume": resume}),
    )
    reminder_sql = f"""
from reviews.models import Reminder
result = list(Reminder.objects.filter(review__review_id="{remind["review_id"]}")
              .values("kind", "recipients", "error"))
"""
    reminders = until(
        deadline, "the reminder sweep reminds about the due review", lambda: django(reminder_sql)
    )
    first = reminders[0]
    check(
        first["kind"] == "before_sla"
        and "reviewer2@example.com" in first["recipients"]
        and not first["error"],
        "the reminder sweep recorded a before-SLA reminder to the queue's member",
        shorten(reminders),
    )

    def mailed():
        try:
            with open(os.path.join(LOG_DIR, "worker.log"), errors="replace") as log:
                text = log.read()
        except OSError:
            return False
        return remind["review_id"] in text and "[hitl] Due in" in text

    until(deadline, "the reminder email in the worker's output", mailed, interval=1)
    ok("the reminder email went out (console backend, worker log)")
    sweeps_sql = """
from django_q.models import Task
result = {
    func: [str(t.result) for t in Task.objects.filter(func=func, success=True)]
    for func in ["reviews.tasks.expire_reviews", "reviews.tasks.send_reminders"]
}
"""
    sweeps = django(sweeps_sql)

    def counted(results, prefix):
        return any(r.startswith(prefix) and not r.startswith(f"{prefix} 0") for r in results)

    check(
        counted(sweeps["reviews.tasks.expire_reviews"], "expired:")
        and counted(sweeps["reviews.tasks.send_reminders"], "reminders sent:"),
        "django-q2 ran both sweeps as scheduled tasks (each did work at least once)",
        shorten(sweeps),
    )

    # Webhooks: the worker delivered signed callbacks to the agent.
    wanted = {
        ("review.decided", email["review_id"]),
        ("review.decided", draft["review_id"]),
        ("review.decided", delete["review_id"]),
        ("execution.succeeded", email["review_id"]),
        ("execution.succeeded", refund["review_id"]),
        ("review.expired", expiring["review_id"]),
    }

    def delivered():
        got = {(event, review_id) for event, review_id, valid in hooks.events(secret) if valid}
        return wanted <= got

    try:
        until(deadline, "the worker delivers the agent's webhooks", delivered, interval=1)
    except CheckFailed as exc:
        raise CheckFailed(
            f"{exc}\n      received: {hooks.events(secret)}\n      wanted: {sorted(wanted)}"
        ) from None
    ok("the worker delivered signed webhooks: decided, executed, expired")

    # (b) nothing failed in the worker.
    failures = django(FAILURES_SQL)
    check(failures["count"] == 0, "django-q2 has no failed task", failures_text(failures))


def main() -> int:
    started = time.monotonic()
    try:
        run()
    except Exception as exc:
        if isinstance(exc, CheckFailed):
            message = str(exc)
        else:
            # An answer of an unexpected shape is a failed check too, not a driver crash.
            traceback.print_exc()
            message = f"unexpected {type(exc).__name__} in the driver: {exc}"
        message += f"\n({len(passed)} checks passed before this one)"
        print(f"\nFAIL: {message}", flush=True)
        if os.environ.get("SMOKE_FAILURE_FILE"):
            with open(os.environ["SMOKE_FAILURE_FILE"], "w") as out:
                out.write(message)
        return 1
    print(f"\nSmoke passed: {len(passed)} checks in {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
