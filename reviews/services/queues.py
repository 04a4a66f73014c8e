"""A queue's settings, validated and audited."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from hitl.db import for_update
from hitl.kernel import Actor

from ..exceptions import (
    InvalidReviewInput,
)
from ..models import (
    Queue,
)
from ._common import (
    stamp,
    summarise,
)


def queue_save(*, actor: AbstractBaseUser, queue: Queue) -> Queue:
    """Create or change a queue's settings, validated (no fallback loops) and audited."""
    with transaction.atomic():
        if queue.pk is not None:
            stored = for_update(Queue.objects.all()).filter(pk=queue.pk).first()
            if stored is not None and stored.tenant != queue.tenant:
                # Its reviews, and every queue falling back to it, would change tenant.
                raise InvalidReviewInput(
                    "A queue's tenant never changes; create a queue in the other tenant.",
                    field_errors={"tenant": ["Set when the queue is created; it never changes."]},
                )
        try:
            queue.full_clean()
        except ValidationError as exc:
            raise InvalidReviewInput(
                summarise(exc.message_dict), field_errors=exc.message_dict
            ) from exc
        stamp(queue, Actor.of_user(actor), "settings changed" if queue.pk else "created")
        queue.save()
    return queue
