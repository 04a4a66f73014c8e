"""The smoke test's worker checks: what django-q2 did with the decisions, on its own.

The refund executor, evaluation capture, the expiry and reminder sweeps, the agent's
webhooks, and no failed task. `manage.py shell` reads what the worker left in the database.
"""

import os
import time
from datetime import UTC, datetime

from smoke_api import EDITED_TEXT
from smoke_http import (
    LOG_DIR,
    WAIT,
    CheckFailed,
    Client,
    Webhooks,
    check,
    django,
    ok,
    shorten,
    until,
)

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


def wake_sweeps(expiring: dict) -> float:
    """Make the expiry and reminder schedules due; returns the deadline for the worker."""
    # Expiry needs the review past its expires_at before the sweep runs.
    expires_at = datetime.fromisoformat(expiring["expires_at"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds() + 1))
    nudged = django(
        "from django.utils import timezone\n"
        "from django_q.models import Schedule\n"
        "result = Schedule.objects.filter(name__in=['expire reviews', 'send reminders'])"
        ".update(next_run=timezone.now())"
    )
    check(nudged == 2, "the expiry and reminder schedules are due now", f"updated {nudged}")
    return time.monotonic() + WAIT


def check_executor(agent: Client, refund: dict, deadline: float) -> None:
    """The worker ran the approved refund through its registered executor."""

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


def check_capture(draft: dict, delete: dict, deadline: float) -> None:
    """Evaluation capture of the edit and the rejection."""
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
        and (edit_case["correction"] or {}).get("content") == EDITED_TEXT,
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


def check_expiry(agent: Client, expiring: dict, deadline: float) -> None:
    """The expiry sweep expired the short-lived review."""

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


def check_reminders(remind: dict, deadline: float) -> None:
    """The reminder sweep recorded a reminder and mailed it."""
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


def check_sweeps() -> None:
    """Both sweeps ran as django-q2 tasks and did work."""
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


def check_webhooks(hooks: Webhooks, secret: str, reviews: dict[str, dict], deadline: float) -> None:
    """The worker delivered signed callbacks to the agent."""
    wanted = {
        ("review.decided", reviews["email"]["review_id"]),
        ("review.decided", reviews["draft"]["review_id"]),
        ("review.decided", reviews["delete"]["review_id"]),
        ("execution.succeeded", reviews["email"]["review_id"]),
        ("execution.succeeded", reviews["refund"]["review_id"]),
        ("review.expired", reviews["expiring"]["review_id"]),
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


def check_no_failures() -> None:
    """Nothing failed in the worker."""
    failures = django(FAILURES_SQL)
    check(failures["count"] == 0, "django-q2 has no failed task", failures_text(failures))
