"""django-q2 entry points: thin wrappers over services, safe to run twice."""

from .services.execution import execution_run_executor
from .services.webhooks import webhook_deliver, webhook_retry_due


def execute_review(review_id: str) -> str:
    """Run the registered executor of a decided review (exactly once, whatever the retries)."""
    execution = execution_run_executor(review_id=review_id)
    return "skipped" if execution is None else execution.state


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
    """The scheduled sweep: finish executions a dead worker left claimed."""
    from .services.execution import execution_reconcile

    return execution_reconcile()


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
    return f"archived and deleted {report.total} rows into {report.archive}"
