"""The reviews app: its configuration, its system checks, the receivers that queue
notifications, and the gate and suggestions it lends the policy app."""

from django.apps import AppConfig
from django.conf import settings


def queue_notice(review_id: str, event: str) -> None:
    """Send an event's notices in a worker task (HITL_NOTIFY_SYNC: here, at once)."""
    if settings.HITL_NOTIFY_SYNC:
        from .services.notifications import notify

        notify(review_id=review_id, event=event)
        return
    from hitl.tasks import enqueue

    enqueue("reviews.tasks.notify", review_id, event, task_name=f"notify-{event}-{review_id}")


def on_review_opened(sender, review_id: str, **kwargs) -> None:
    # Sent after commit: the review is there for the task to read.
    queue_notice(review_id, "arrived")


def on_review_decided(sender, review_id: str, decision_id: int, **kwargs) -> None:
    # Only an escalation hands the review to someone who must hear of it.
    from .models import Choice, Decision

    choice = Decision.objects.filter(pk=decision_id).values_list("choice", flat=True).first()
    if choice == Choice.ESCALATE:
        queue_notice(review_id, "escalated")


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self):
        # The policy app cannot import reviews: the gate that replays reviewers' verdicts
        # under a draft, and the suggestions drawn from them, are handed to it here.
        from policies import gates, insights

        from . import checks  # noqa: F401 - registers the system checks
        from .selectors.policy_gate import rule_set_gate
        from .selectors.suggestions import rule_set_insights
        from .signals import review_decided, review_opened

        gates.register(rule_set_gate)
        insights.register(rule_set_insights)
        review_opened.connect(on_review_opened, dispatch_uid="reviews.notify_opened")
        review_decided.connect(on_review_decided, dispatch_uid="reviews.notify_escalated")
