"""Reads shared by the admin screens, the API and the services."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from .models import Queue, ReviewRequest, ReviewState


def queues_for(*, user: AbstractBaseUser) -> QuerySet[Queue]:
    """The queues a person works in or owns (all of them for a superuser)."""
    if user.is_superuser:
        return Queue.objects.all()
    return Queue.objects.filter(
        Q(members=user) | Q(owner=user) | Q(escalation_owner=user)
    ).distinct()


def reviews_visible_to(
    *, user: AbstractBaseUser, queryset: QuerySet[ReviewRequest] | None = None
) -> QuerySet[ReviewRequest]:
    """Reviews of the queues a person works in or owns, plus those assigned to them."""
    qs = ReviewRequest.objects.all() if queryset is None else queryset
    if not user.is_active:
        return qs.none()
    if user.is_superuser:
        return qs
    queue_ids = queues_for(user=user).values("pk")
    return qs.filter(Q(queue__in=queue_ids) | Q(assignee=user))


def can_decide(*, user: AbstractBaseUser, review: ReviewRequest) -> bool:
    """Whether this person may decide this review, before any authority limit applies."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    queue = review.queue
    if review.state == ReviewState.ESCALATED:
        # Once escalated, ownership has moved: only the owner of the escalation decides.
        return user.pk in {review.assignee_id, queue.escalation_owner_id, queue.owner_id}
    if user.pk == queue.owner_id or review.assignee_id == user.pk:
        return True
    return queue.members.filter(pk=user.pk).exists()
