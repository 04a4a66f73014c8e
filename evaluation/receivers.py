"""How evaluation hears of decisions: the reviews app's one signal, sent after commit."""

from django.conf import settings
from django.dispatch import receiver

from hitl.tasks import enqueue
from reviews.signals import review_decided


@receiver(review_decided, dispatch_uid="evaluation.capture")
def queue_capture(sender, review_id: str, decision_id: int, **kwargs) -> None:
    # review_decided is sent from transaction.on_commit, so the decision is committed and
    # the task can read it. PII scanning costs milliseconds per field: the worker does it,
    # not the reviewer's request. HITL_EVAL_CAPTURE_SYNC runs it at once (tests, demos).
    if settings.HITL_EVAL_CAPTURE_SYNC:
        from .services import capture_decision

        capture_decision(decision_id=decision_id)
        return
    enqueue("evaluation.tasks.capture", decision_id, task_name=f"capture-{decision_id}")
