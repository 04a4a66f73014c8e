"""Retention: what is past its window is archived (JSONL + manifest) and then deleted, per
table and per tenant; open work and what is inside its window stay."""

import hashlib
import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from policies.models import PolicyEvaluation
from policies.selectors import evaluate_proposal
from policies.services import evaluation_record
from reviews.models import (
    Agent,
    ArchiveCursor,
    DeliveryStatus,
    Evidence,
    IdempotencyRecord,
    ReviewRequest,
    ReviewState,
    WebhookDelivery,
)
from reviews.services.archive import MARGIN, safe_point
from reviews.services.retention import archive_export, retention_apply, retention_windows
from reviews.services.sweeps import expire_due
from reviews.tests.factories import QueueFactory, make_review

pytestmark = pytest.mark.django_db(transaction=True)

WINDOWS = {
    "review_history": 365,
    "policy_evaluations": 90,
    "idempotency_records": 30,
    "webhook_deliveries": 30,
    # Globex keeps its reviews' history for good.
    "tenants": {"globex": {"review_history": None}},
}


def _history(review):
    return ReviewRequest.history.model.objects.filter(id=review.pk)


@pytest.fixture
def aged(clock, settings, tmp_path):
    """Two tenants' reviews made 400 days ago: closed ones and one still open, with the
    logs around them; then the clock moves to today."""
    settings.HITL_RETENTION = WINDOWS
    settings.HITL_ARCHIVE_DIR = str(tmp_path / "archive")
    acme_agent = Agent.objects.create(name="acme-bot")
    globex_agent = Agent.objects.create(name="globex-bot", tenant="globex")
    acme_queue, globex_queue = QueueFactory(), QueueFactory(tenant="globex")
    closed = make_review(queue=acme_queue, agent="acme-bot")
    still_open = make_review(
        queue=acme_queue, agent="acme-bot", expires_at=timezone.now() + timedelta(days=1000)
    )
    globex_closed = make_review(queue=globex_queue, agent="globex-bot", tenant="globex")
    proposal = {"action": {"name": "search_docs"}, "tenant": ""}
    evaluation_record(
        proposal=proposal,
        decision=evaluate_proposal(proposal=proposal),
        actor_label="agent:acme-bot",
    )
    IdempotencyRecord.objects.create(agent=acme_agent, key="k1", fingerprint="f" * 64)
    for status in (DeliveryStatus.DELIVERED, DeliveryStatus.PENDING):
        WebhookDelivery.objects.create(
            agent=globex_agent,
            event="review.decided",
            url="https://x.test/h",
            payload={},
            status=status,
        )
    clock.shift(timedelta(days=30))
    expire_due()
    clock.shift(timedelta(days=370))
    return {"closed": closed, "open": still_open, "globex": globex_closed}


def test_a_dry_run_counts_what_would_go_and_changes_nothing(aged, tmp_path):
    before = _history(aged["closed"]).count()
    report = retention_apply(actor=None, dry_run=True)
    by_scope = {(s.target, s.tenants): s.rows for s in report.scopes}
    assert by_scope[("review_history", "all but globex")] == before
    # Globex keeps its history: no scope for it at all.
    assert ("review_history", "globex") not in by_scope
    assert by_scope[("policy_evaluations", "globex")] == 0  # globex logged nothing
    assert by_scope[("idempotency_records", "all but globex")] == 1
    assert by_scope[("webhook_deliveries", "globex")] == 1  # the pending one stays
    assert _history(aged["closed"]).count() == before
    assert not (tmp_path / "archive").exists()


def test_the_purge_archives_then_deletes_only_closed_work_past_its_window(aged, tmp_path):
    closed_rows = list(_history(aged["closed"]).order_by("pk").values_list("pk", flat=True))
    open_before = _history(aged["open"]).count()
    globex_before = _history(aged["globex"]).count()
    assert ReviewRequest.objects.get(pk=aged["closed"].pk).state == ReviewState.EXPIRED

    report = retention_apply(actor=None)

    assert _history(aged["closed"]).count() == 0
    assert _history(aged["open"]).count() == open_before  # still open: kept
    assert _history(aged["globex"]).count() == globex_before  # its tenant keeps it
    assert ReviewRequest.objects.filter(pk=aged["closed"].pk).exists()
    assert PolicyEvaluation.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0
    assert list(WebhookDelivery.objects.values_list("status", flat=True)) == ["pending"]

    folder = Path(report.archive)
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = {(s["target"], s["tenants"]): s["rows"] for s in manifest["scopes"]}
    assert manifest["rows"] == report.total == sum(rows.values())
    assert rows[("review_history", "all but globex")] == len(closed_rows)
    # The closed review's evidence and call history went with it; the open one's stayed.
    evidence_history = Evidence.history.model.objects
    assert not evidence_history.filter(review_id=aged["closed"].pk).exists()
    assert evidence_history.filter(review_id=aged["open"].pk).exists()
    assert rows[("evidence_history", "all but globex")] == 1
    assert rows[("call_history", "all but globex")] >= 1
    assert (
        rows[("policy_evaluations", "all but globex")],
        rows[("webhook_deliveries", "globex")],
    ) == (1, 1)
    # History went to the archive ahead of the purge, in the export of the same run: every
    # row of every review (open ones, globex's) in key order, once.
    history_scope = next(s for s in manifest["scopes"] if s["target"] == "review_history")
    assert history_scope["file"] == "" and history_scope["exported_through"]
    export = next(e for e in manifest["exported"] if e["target"] == "review_history")
    archived = (folder / export["file"]).read_bytes()
    assert hashlib.sha256(archived).hexdigest() == export["sha256"]
    lines = [json.loads(line) for line in archived.splitlines()]
    keys = [row["history_id"] for row in lines]
    assert keys == sorted(set(keys)) and export["rows"] == len(lines)
    assert set(closed_rows) <= set(keys)
    assert {row["id"] for row in lines} == {r.pk for r in aged.values()}
    # The mutable tables are archived by the purge itself, in its own file.
    hooks = next(s for s in manifest["scopes"] if s["target"] == "webhook_deliveries")
    (delivered,) = [json.loads(line) for line in (folder / hooks["file"]).read_bytes().splitlines()]
    assert delivered["status"] == "delivered"

    # A second run finds nothing more and archives nothing twice.
    again = retention_apply(actor=None)
    assert (again.total, again.exported) == (0, 0)


def test_the_command_says_what_would_go_and_refuses_a_bad_configuration(aged, settings):
    out = StringIO()
    call_command("apply_retention", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "review_history (all but globex, older than 365 days" in text
    assert "would archive and delete" in text
    assert _history(aged["closed"]).exists()

    settings.HITL_RETENTION = {"reviews": 30, "policy_evaluations": 0}
    with pytest.raises(CommandError) as refused:
        call_command("apply_retention", "--dry-run", stdout=StringIO())
    assert "unknown target 'reviews'" in str(refused.value)
    assert "policy_evaluations must be at least 1 day" in str(refused.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"review_history": "a year"}, "whole number of days or null"),
        ({"tenants": ["globex"]}, "must map tenant slugs"),
        ({"tenants": {"globex": {"nope": 3}}}, "HITL_RETENTION.tenants.globex: unknown target"),
    ],
)
def test_windows_name_what_is_wrong(config, message):
    with pytest.raises(Exception, match=message):
        retention_windows(config)


@pytest.mark.postgres
def test_a_second_purge_at_the_same_time_refuses_to_start(aged):
    import psycopg
    from django.db import connection

    from reviews.services.retention import _ADVISORY_LOCK, RetentionBusy

    params = connection.get_connection_params()
    other = psycopg.connect(
        dbname=params["dbname"],
        user=params.get("user"),
        host=params.get("host"),
        port=params.get("port"),
        autocommit=True,
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [_ADVISORY_LOCK])
        with pytest.raises(RetentionBusy, match="Another retention purge is running"):
            retention_apply(actor=None)
        assert _history(aged["closed"]).exists()  # nothing went
        other.execute("SELECT pg_advisory_unlock(%s)", [_ADVISORY_LOCK])
    finally:
        other.close()
    assert retention_apply(actor=None).total > 0


def test_the_daily_task_purges(aged):
    from reviews import tasks

    assert tasks.apply_retention().startswith("archived and deleted")
    assert not _history(aged["closed"]).exists()


def test_the_export_copies_each_row_once_and_the_purge_deletes_only_what_it_copied(aged, tmp_path):
    first = archive_export(actor=None, archive_dir=tmp_path / "a")
    by_target = {section.target: section.rows for section in first.exports}
    assert by_target["review_history"] == ReviewRequest.history.count()
    assert archive_export(actor=None, archive_dir=tmp_path / "a").exported == 0
    (folder,) = (tmp_path / "a").iterdir()  # nothing new: no second folder
    files = {path.name for path in folder.iterdir()}
    assert files == {"manifest.json"} | {f"{s.target}.jsonl" for s in first.exports if s.rows}

    # A row the last export could not see (dated before its end, committed after it) is
    # past its window: the purge exports it before it deletes it.
    newest = ReviewRequest.history.order_by("-history_date").first()
    ArchiveCursor.objects.filter(target="review_history").update(
        through=newest.history_date + timedelta(seconds=1)
    )
    template = _history(aged["closed"]).first()
    late = ReviewRequest.history.create(
        **{f.attname: getattr(template, f.attname) for f in template._meta.concrete_fields
           if f.attname not in ("history_id", "history_date")},
        history_date=newest.history_date + timedelta(seconds=2),
    )  # fmt: skip
    purged = retention_apply(actor=None, only=["review_history"], archive_dir=tmp_path / "b")
    assert purged.exported == 1  # the purge exported it first...
    assert not _history(aged["closed"]).exists()  # ...then deleted it with the others
    export = purged.exports[0]
    lines = (Path(purged.archive) / export.file).read_bytes().splitlines()
    assert [json.loads(line)["history_id"] for line in lines] == [late.history_id]


def test_the_export_refuses_bad_arguments():
    with pytest.raises(ImproperlyConfigured, match="Unknown target nope"):
        archive_export(actor=None, only=["nope"])
    with pytest.raises(ImproperlyConfigured, match="batch_size must be at least 1"):
        archive_export(actor=None, batch_size=0)


def test_the_hourly_task_exports(aged):
    from reviews import tasks

    assert tasks.export_archive().startswith("exported ")
    assert ArchiveCursor.objects.filter(target="review_history").exists()
    assert tasks.export_archive() == "exported 0 rows into nothing new"


@pytest.mark.postgres
def test_the_export_stops_before_the_oldest_open_transaction(caplog):
    """A row is dated when it is written and visible when its transaction commits: the
    export must not pass a transaction still open, or that row would never be archived."""
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    other = psycopg.connect(
        dbname=params["dbname"], user=params.get("user"), host=params.get("host"),
        port=params.get("port"),
    )  # fmt: skip
    later = timezone.now() + timedelta(days=3650)
    try:
        (started,) = other.execute("SELECT now()").fetchone()  # opens its transaction
        assert safe_point(later) == started - MARGIN
        # Held back for long, it says so: retention would delete nothing newer.
        assert "a transaction of this database has been open since" in caplog.text
    finally:
        other.close()
    assert safe_point(later) == later - MARGIN


def test_the_command_exports_only_when_asked(aged):
    out = StringIO()
    call_command("apply_retention", "--export-only", stdout=out)
    history = ReviewRequest.history.count()
    assert f"review_history: exported {history} rows to the archive" in out.getvalue()
    assert _history(aged["closed"]).exists()  # nothing deleted
    again = StringIO()
    call_command("apply_retention", "--export-only", stdout=again)
    assert "total: exported 0 (nothing new)" in again.getvalue()
    with pytest.raises(CommandError, match="do not go together"):
        call_command("apply_retention", "--export-only", "--dry-run")
