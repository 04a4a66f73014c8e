"""django-q2 entry points: thin wrappers over services, safe to run twice."""

from .services.execution_retry import execution_run_with_retry
from .services.webhooks import webhook_deliver, webhook_retry_due


def execute_review(review_id: str, attempt: int = 1) -> str:
    """Run the registered executor of a decided review (exactly once, whatever the retries);
    `attempt` counts the retries scheduled while its trusted facts could not be read."""
    return execution_run_with_retry(review_id=review_id, attempt=attempt)


def deliver_webhook(delivery_id: int) -> str:
    """Attempt one webhook delivery now."""
    delivery = webhook_deliver(delivery_id=delivery_id)
    return "skipped" if delivery is None else delivery.status


def retry_webhooks() -> int:
    """The scheduled sweep: retry the deliveries whose backoff has elapsed."""
    return webhook_retry_due()


def expire_reviews() -> str:
    """The scheduled expiry sweep."""
    from .services.sweeps import expire_due

    return expire_due().line("expired")


def send_reminders() -> str:
    """The scheduled reminder sweep."""
    from .services.sweeps import send_reminders as sweep

    return sweep().line("reminders sent")


def reconcile_executions() -> int:
    """The scheduled sweep: finish executions a dead worker left claimed, and run those
    whose task was lost before it claimed anything."""
    from datetime import timedelta

    from django.conf import settings

    from .services.execution import execution_reconcile
    from .services.execution_retry import execution_recover_lost

    stale = timedelta(seconds=settings.HITL_EXECUTION_STALE_SECONDS)
    return execution_reconcile(stale_after=stale) + execution_recover_lost(stale_after=stale)


def notify(review_id: str, event: str) -> str:
    """Tell the people (and the chat) of one event about a review; safe to run twice."""
    from .services.notifications import notify as send

    return f"sent {send(review_id=review_id, event=event)}"


def retry_notifications() -> int:
    """The scheduled sweep: retry the emails and chat posts whose backoff has elapsed."""
    from .services.notifications import notifications_retry_due

    return notifications_retry_due()


def send_digests() -> str:
    """The hourly digest of new reviews and breaches, for people who chose it."""
    from .services.notifications import digests_send

    return f"digests sent: {digests_send()}"


def apply_retention() -> str:
    """The daily retention purge: archive, then delete, what is past its window."""
    from .services.retention import retention_apply

    report = retention_apply(actor=None)
    return (
        f"archived and deleted {report.total} rows into {report.archive} "
        f"(exported first: {report.exported})"
    )


def export_archive() -> str:
    """The hourly export: copy the append-only tables' new rows to the archive."""
    from .services.retention import archive_export

    report = archive_export(actor=None)
    return f"exported {report.exported} rows into {report.archive or 'nothing new'}"


def log_decisions(rows: list) -> int:
    """Bulk-insert the decision log rows a web process deferred (HITL_DECISION_LOG)."""
    from policies.services import evaluations_insert

    return len(evaluations_insert(rows=rows))


def refresh_metric_rollups() -> str:
    """The scheduled refresh: rebuild the metric rollups of the days touched since."""
    from .services.rollups import rollups_refresh

    report = rollups_refresh(actor=None)
    return f"rebuilt {report.days} rollup days ({report.reviews} reviews)"
