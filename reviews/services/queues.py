"""A queue's settings and members, validated and audited."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from hitl.db import for_update
from hitl.kernel import Actor

from ..exceptions import InvalidReviewInput
from ..models import Queue
from ._common import full_clean_or_refuse, stamp


def queue_save(
    *,
    actor: AbstractBaseUser,
    queue: Queue,
    members: Iterable[AbstractBaseUser] | None = None,
) -> Queue:
    """Create or change a queue's settings and, when given, who works it (None: the members
    stay); validated (an owner or members, no fallback loops, the SLA within the expiry)
    and audited, the members in the history row."""
    who = Actor.of_user(actor)
    members = None if members is None else list(members)
    with transaction.atomic():
        if queue.pk is not None:
            stored = for_update(Queue.objects.all()).filter(pk=queue.pk).first()
            if stored is not None and stored.tenant != queue.tenant:
                # Its reviews, and every queue falling back to it, would change tenant.
                raise InvalidReviewInput(
                    "A queue's tenant never changes; create a queue in the other tenant.",
                    field_errors={"tenant": ["Set when the queue is created; it never changes."]},
                )
        full_clean_or_refuse(queue)
        _someone_hears(queue, members)
        if queue.pk is None:
            stamp(queue, who, "created")
            queue.save()
            if members:
                # The members need the queue's id: a second row names them.
                stamp(queue, who, _members_change(queue, members))
                queue.members.set(members)
            return queue
        reason = "settings changed"
        if stored is not None and stored.chat_webhook_url != queue.chat_webhook_url:
            # The URL is a credential, kept out of the history; that it changed is not.
            reason += "; chat webhook " + ("set" if queue.chat_webhook_url else "removed")
        if members is not None:
            reason = "; ".join(filter(None, [reason, _members_change(queue, members)]))
            # Set without a row of their own: the save's one row holds settings and members.
            queue.skip_history_when_saving = True
            try:
                queue.members.set(members)
            finally:
                del queue.skip_history_when_saving
        stamp(queue, who, reason)
        queue.save()
    return queue


def _someone_hears(queue: Queue, members: list[AbstractBaseUser] | None) -> None:
    # A queue nobody owns or works in fails silently: its reviews are announced to nobody,
    # and nobody is escalated to when they pass their SLA.
    if queue.owner_id is not None:
        return
    if members is None:
        members = list(queue.members.all()) if queue.pk is not None else []
    if not members:
        problem = "A queue needs an owner or at least one member: nobody would hear of its reviews."
        raise InvalidReviewInput(
            problem, field_errors={"owner": [problem], "members": ["Or add a member."]}
        )


def _members_change(queue: Queue, members: list[AbstractBaseUser]) -> str:
    before = {user.pk: user.get_username() for user in queue.members.all()}
    after = {user.pk: user.get_username() for user in members}
    added = sorted(after[pk] for pk in after.keys() - before.keys())
    removed = sorted(before[pk] for pk in before.keys() - after.keys())
    return "; ".join(
        f"members {verb}: {', '.join(names)}"
        for verb, names in (("added", added), ("removed", removed))
        if names
    )


def queue_delete(*, actor: AbstractBaseUser, queue: Queue) -> None:
    """Delete a queue nobody depends on: one that holds reviews, or that another queue falls
    back to, is refused (its history and its reviews' routing would lose their meaning)."""
    with transaction.atomic():
        locked = for_update(Queue.objects.all()).filter(pk=queue.pk).first()
        if locked is None:
            return
        if locked.reviews.exists():
            raise InvalidReviewInput(
                f"{locked} holds reviews; it cannot be deleted. Remove its members instead."
            )
        leaning = list(Queue.objects.filter(fallback=locked).values_list("slug", flat=True))
        if leaning:
            raise InvalidReviewInput(
                f"{locked} is the fallback of {', '.join(sorted(leaning))}; change those first."
            )
        stamp(locked, Actor.of_user(actor), "deleted")
        locked.delete()
