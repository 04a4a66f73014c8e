"""The smoke test's API checks: the agent proposes and resumes, reviewers decide, tenants hold.

Everything here goes over HTTP; `manage.py` only registers the agent (as the README shows)
and sets the access queue's timings, which have no HTTP entry point.
"""

from smoke_http import TAG, Client, check, django, login, manage, ok, shorten


def evidence(evidence_id: str, title: str, excerpt: str) -> dict:
    return {
        "id": evidence_id,
        "title": title,
        "url": f"https://example.com/{evidence_id}",
        "excerpt": excerpt,
    }


def action(name: str, target_system: str, **args) -> dict:
    return {"name": name, "target_system": target_system, "args": args}


def proposal(suffix: str, proposed: dict, summary: str, **extra) -> dict:
    return {
        "run_id": f"smoke-{TAG}-{suffix}",
        "action": proposed,
        "summary": summary,
        "confidence": 0.9,
        "estimated_cost_usd": 0.01,
        "versions": {"agent": "smoke-agent/1", "model": "smoke-model", "prompt": "smoke-1"},
        **extra,
    }


EMAIL = proposal(
    "email",
    action("send_email", "mailer", template_id="shipping-delay", customer_id="c-1"),
    "Tell customer c-1 their parcel is delayed.",
    audience="external",
    evidence=[evidence("carrier-1", "Carrier status", "Held at depot, new ETA in 2 days.")],
)
DRAFT = proposal(
    "draft",
    action("draft_reply", "helpdesk", ticket_id="t-1"),
    "Reply to a customer asking about a late refund.",
    content="Hi,\n\nYour refund will arrive soon.\n\nSupport",
    audience="external",
    evidence=[evidence("refund-1", "Refund 1", "Refund of 35.00 EUR issued Monday 09:12.")],
)
DELETE = proposal(
    "delete",
    action("delete_record", "crm", record_type="contact", record_id="c-88"),
    "Delete a duplicate contact after a merge.",
    evidence=[evidence("merge-1", "Merge log", "Contact c-88 merged into contact c-12.")],
)
REFUND = proposal(
    "refund",
    action("issue_refund", "billing", order_id="17", amount="20.00", currency="EUR"),
    "Refund a damaged mug on order 17.",
    facts={"refund_window_valid": True},
    affected_resources=[{"type": "order", "id": "17", "version": "4"}],
    evidence=[evidence("order-17", "Order 17", "1x mug, 20.00 EUR, arrived broken.")],
)


def permission(suffix: str) -> dict:
    # A user the demo directory knows: the policy denies access for anyone else at once.
    return proposal(
        suffix,
        action(
            "change_permission", "iam", user_id="u-77", permission="reports-read", change="grant"
        ),
        f"Grant reports-read to u-77 ({suffix}).",
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

EDITED_TEXT = "Hi,\n\nYour refund was issued on Monday; expect it within 3-5 days.\n\nSupport"


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


def resume_of(agent: Client, review: dict) -> dict:
    packet, _ = agent.expect(200, "GET", f"/api/v1/reviews/{review['review_id']}/")
    return packet.get("resume") or {}


def register_agent(callback_url: str) -> tuple[Client, str]:
    """The agent, registered with the management command; returns it and its webhook secret."""
    out = manage("create_agent", f"smoke-agent-{TAG}", "--callback-url", callback_url)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    secret = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("Webhook signing")),
        "",
    )
    key = lines[-1] if lines else ""
    check(key.startswith("hitl_") and bool(secret), "create_agent printed an API key and secret")
    return Client("agent", {"Authorization": f"Bearer {key}"}), secret


def propose_all(agent: Client) -> dict[str, dict]:
    """Every review of the scenario, by name; the timed ones first so their clocks run."""
    # The access queue reminds 2 h before a 1 h SLA, so a new review is due a reminder at once.
    django(
        QUEUE_SETUP.format(
            changes="queue.sla = timedelta(hours=1)\nqueue.remind_before = timedelta(hours=2)"
        )
    )
    reviews = {"remind": propose(agent, permission("remind"), "approval", "access")}
    # A review that expires 15 s after it is proposed (a queue's SLA must fit its expiry).
    short = "queue.sla = timedelta(seconds=10)\nqueue.expiry = timedelta(seconds=15)"
    django(QUEUE_SETUP.format(changes=short))
    reviews["expiring"] = propose(agent, permission("expire"), "approval", "access")
    usual = "queue.sla = timedelta(hours=1)\nqueue.expiry = timedelta(days=3)"
    django(QUEUE_SETUP.format(changes=usual))

    # One proposal with an idempotency key, retried.
    key = f"smoke-{TAG}-email"
    reviews["email"] = propose(agent, EMAIL, "approval", "operations", key=key)
    replay, headers = agent.expect(201, "POST", "/api/v1/actions/", EMAIL, {"Idempotency-Key": key})
    check(
        replay["review"]["review_id"] == reviews["email"]["review_id"]
        and headers.get("Idempotent-Replayed") == "true",
        "a retried proposal with the same Idempotency-Key returns the same review",
        shorten(replay),
    )
    reviews["draft"] = propose(agent, DRAFT, "edit", "operations")
    reviews["delete"] = propose(agent, DELETE, "approval", "operations")
    reviews["refund"] = propose(agent, REFUND, "approval", "operations")
    return reviews


def check_access(agent: Client, review: dict) -> Client:
    """Who may see and decide a review; returns the signed-in reviewer of its queue."""
    decisions = f"/api/v1/reviews/{review['review_id']}/decisions/"
    code, _, payload = agent.request("POST", decisions, {"choice": "approve"})
    check(code == 403, "an agent key cannot decide (403)", f"{code} {shorten(payload)}")

    # Reviewers sign in with the demo password and decide through the API.
    reviewer = login("reviewer")
    ok("reviewer signed in (session + CSRF, DEBUG off, behind https)")
    reviewer2 = login("reviewer2")
    code, _, _ = reviewer2.request("GET", f"/api/v1/reviews/{review['review_id']}/")
    check(code == 404, "reviewer2 cannot see another queue's review (404)", f"{code}")
    # The demo's second tenant: its lead sees none of the default tenant's reviews.
    globex = login("globex")
    code, _, _ = globex.request("GET", f"/api/v1/reviews/{review['review_id']}/")
    check(code == 404, "another tenant's lead cannot see this tenant's review (404)", f"{code}")
    code, _, payload = globex.request("POST", decisions, {"choice": "approve"})
    check(code == 404, "nor decide it (404)", f"{code} {shorten(payload)}")
    return reviewer


def decide_all(reviewer: Client, reviews: dict[str, dict]) -> None:
    """The reviewer approves, edits and rejects; a decided review stays decided."""
    decide(reviewer, reviews["email"], "approve", "approved", reason="Carrier confirms the delay.")
    decide(
        reviewer,
        reviews["draft"],
        "edit",
        "edited",
        content=EDITED_TEXT,
        reason="Give the customer the date and the delay, not 'soon'.",
    )
    decide(
        reviewer,
        reviews["delete"],
        "reject",
        "rejected",
        reason="Contact c-88 still has open invoices; merging is not enough.",
    )
    decide(reviewer, reviews["refund"], "approve", "approved", reason="Photo shows the broken mug.")
    code, _, _ = reviewer.request(
        "POST",
        f"/api/v1/reviews/{reviews['delete']['review_id']}/decisions/",
        {"choice": "approve", "reason": "changed my mind"},
    )
    check(code == 409, "deciding a decided review again is refused (409)", f"{code}")


def check_resume(agent: Client, reviews: dict[str, dict]) -> None:
    """The agent reads each decision as the instruction to resume with."""
    resume = resume_of(agent, reviews["draft"])
    check(
        resume.get("action") == "continue_with_edits" and resume.get("content") == EDITED_TEXT,
        "agent sees the edit: resume continue_with_edits with the reviewer's text",
        shorten(resume),
    )
    resume = resume_of(agent, reviews["delete"])
    check(
        resume.get("action") == "stop" and "open invoices" in resume.get("reason", ""),
        "agent sees the rejection: resume stop with the reason",
        shorten(resume),
    )
    resume = resume_of(agent, reviews["email"])
    check(
        resume.get("action") == "execute",
        "agent sees the approval: resume execute",
        shorten(resume),
    )


def check_execution(agent: Client, email: dict) -> None:
    """The agent claims the approved action once, reports it, and its run is done."""
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
