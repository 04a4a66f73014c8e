"""The signals of the reviews app, each sent after the transaction that caused it committed.

`review_decided` (with `review_id`, the public id, and `decision_id`) tells apps downstream
(evaluation) of decisions without reviews importing them. `review_opened` (with `review_id`)
tells the notifications that a review arrived. Neither drives the workflow.
"""

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

review_decided = Signal()
review_opened = Signal()


def send_on_commit(signal: Signal, **kwargs: Any) -> None:
    """Send `signal` once the current transaction commits; a failing receiver is logged,
    never raised into the caller (the write it follows is already committed)."""

    def send() -> None:
        from .models import ReviewRequest

        for receiver, result in signal.send_robust(sender=ReviewRequest, **kwargs):
            if isinstance(result, Exception):
                logger.error(
                    "receiver %r failed for %s", receiver, kwargs.get("review_id"), exc_info=result
                )

    transaction.on_commit(send)
