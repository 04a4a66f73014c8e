"""Fill PostgreSQL quickly with realistic reviews (COPY, not the ORM)."""

import json
import random
from datetime import UTC, datetime, timedelta

from django.db import connection

REVIEW_COLUMNS = [
    "review_id", "run_id", "kind", "tenant", "state", "action_name", "target_system",
    "arguments", "summary", "consequence", "content", "affected_resources", "confidence",
    "uncertainty", "options_considered", "policy", "risk", "queue_id", "choices",
    "required_approvals", "due_at", "expires_at", "versions", "proposed_by", "expiry_action",
    "created_at", "updated_at",
]  # fmt: skip

ACTIONS = [
    ("issue_refund", "billing", lambda r: {"order_id": str(r.randint(1, 10**6)),
                                          "amount": f"{r.randint(5, 900)}.00", "currency": "EUR"}),
    ("send_email", "mailer", lambda r: {"template_id": "shipping-delay",
                                        "customer_id": f"c-{r.randint(1, 10**6)}"}),
    ("delete_record", "crm", lambda r: {"record_type": "contact",
                                        "record_id": str(r.randint(1, 10**6))}),
]  # fmt: skip


def base_objects(queues: int = 20):
    """An agent, a run and `queues` queues to hang the generated reviews on."""
    from reviews.models import Agent, AgentRun, Queue

    agent, _ = Agent.objects.get_or_create(name="bench-agent")
    run, _ = AgentRun.objects.get_or_create(run_id="bench-run", defaults={"agent": agent})
    made = [
        Queue.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench {i}"})[0]
        for i in range(queues)
    ]
    return agent, run, made


def fill_reviews(*, n: int, run_id: int, queue_ids: list[int], open_share: float = 0.3,
                 overdue: bool = False, seed: int = 1) -> None:  # fmt: skip
    """COPY `n` reviews: `open_share` pending, the rest decided; `overdue` makes the open
    ones past their expiry (for the expiry sweep)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    policy = json.dumps({"outcome": "human_review", "rule": "writes_need_review", "version": "b"})
    choices = json.dumps(["approve", "reject", "request_more_evidence", "escalate"])
    versions = json.dumps({"agent": "bench/1.0", "model": "m", "prompt": "p"})
    with connection.cursor() as cursor:
        raw = cursor.cursor
        columns = ", ".join(REVIEW_COLUMNS)
        with raw.copy(f"COPY reviews_reviewrequest ({columns}) FROM STDIN") as copy:
            for i in range(n):
                action, target, make_args = ACTIONS[i % len(ACTIONS)]
                created = now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
                is_open = rng.random() < open_share
                state = "pending" if is_open else rng.choice(["approved", "rejected", "edited"])
                due = created + timedelta(hours=4)
                expires = now - timedelta(minutes=1) if overdue else created + timedelta(days=60)
                copy.write_row(
                    (
                        f"B{seed:02d}{i:023d}"[:26], run_id, "approval", "", state, action,
                        target, json.dumps(make_args(rng)), f"Bench review {i}", "", "",
                        "[]", 0.9, "", "[]", policy, rng.choice(["low", "medium", "high"]),
                        queue_ids[i % len(queue_ids)], choices, 1, due, expires, versions,
                        "agent:bench-agent", "", created, created,
                    )
                )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviews_reviewrequest")


def history_copy_sql(
    history: dict[str, str], *, source: str = "reviews_reviewrequest", extra_from: str = ""
) -> str:
    """INSERT ... SELECT of the reviews in `source` (the table, or a CTE of its rows) into
    their history table: each history column from the review's column of the same name, the
    history's own columns from `history` (SQL expressions). Built from the models, so a new
    field needs no edit here."""
    from reviews.models import ReviewRequest

    columns = [
        f.column
        for f in ReviewRequest.history.model._meta.concrete_fields
        if f.column != "history_id"
    ]
    values = [history.get(column, f"{source}.{column}") for column in columns]
    sources = source + (f", {extra_from}" if extra_from else "")
    return (
        f"INSERT INTO reviews_historicalreviewrequest ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM {sources}"
    )


def clear_reviews() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE reviews_reviewrequest, reviews_historicalreviewrequest, reviews_evidence, "
            "reviews_historicalevidence, reviews_decision, reviews_execution, "
            "reviews_historicalexecution, reviews_reminder, reviews_webhookdelivery, "
            "evaluation_evalcase, evaluation_historicalevalcase, evaluation_datasetitem "
            "CASCADE"
        )
