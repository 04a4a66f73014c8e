"""Who sees and who may decide what: queues, tenants, reviews, grants."""

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Q, QuerySet

from policies.authority import check_authority
from policies.engine import QUEUE_OWNER
from policies.models import Tenant
from policies.selectors import action_type_for, amount_for

from ..models import (
    Decision,
    Queue,
    ReviewRequest,
    ReviewState,
)


def queues_for(*, user: AbstractBaseUser) -> QuerySet[Queue]:
    """The queues a person works in or owns (all of them for a superuser)."""
    if user.is_superuser:
        return Queue.objects.all()
    return Queue.objects.filter(
        Q(members=user) | Q(owner=user) | Q(escalation_owner=user)
    ).distinct()


def tenants_of(*, user: AbstractBaseUser) -> list[str]:
    """The tenants whose reviews this person may see, sorted (every one for a superuser)."""
    if user.is_superuser:
        return [slug for slug, _ in Tenant.choices()]
    return sorted(set(queues_for(user=user).values_list("tenant", flat=True)))


def visible_where(*, user: AbstractBaseUser, escalated: Q) -> Q | None:
    """What an active person may see of rows that name a queue, given how a row tells it
    was escalated: the queues they work in or own, and the escalated rows of the queues
    whose escalations they own. None: everything (a superuser)."""
    if user.is_superuser:
        return None
    works_in = Queue.objects.filter(Q(members=user) | Q(owner=user)).values("pk")
    escalations_of = Queue.objects.filter(escalation_owner=user).values("pk")
    return Q(queue__in=works_in) | (Q(queue__in=escalations_of) & escalated)


def reviews_visible_to(
    *, user: AbstractBaseUser, queryset: QuerySet[ReviewRequest] | None = None
) -> QuerySet[ReviewRequest]:
    """Reviews of the queues a person works in or owns, and the escalated ones of the
    queues whose escalations they own, as of this query. Assignment grants nothing:
    someone removed from a queue stops seeing its reviews, the ones assigned to them too."""
    qs = ReviewRequest.objects.all() if queryset is None else queryset
    if not user.is_active:
        return qs.none()
    # Once escalated, always theirs to look at: the one they decided stays on their screen.
    was_escalated = Exists(
        Decision.objects.filter(review=OuterRef("pk"), state_after=ReviewState.ESCALATED)
    )
    where = visible_where(user=user, escalated=Q(state=ReviewState.ESCALATED) | Q(was_escalated))
    return qs if where is None else qs.filter(where)


def sees_whole_run(*, user: AbstractBaseUser, run) -> bool:
    """Whether every review of the run is visible to this person (then its checkpoint is)."""
    if user.is_superuser:
        return True
    total = run.reviews.count()
    return reviews_visible_to(user=user).filter(run=run).count() == total


def can_decide(*, user: AbstractBaseUser, review: ReviewRequest) -> bool:
    """Whether this person may decide this review now, before any authority limit: the
    queue's members and owner (for an escalated review: its owner, its escalation owner,
    or the member it was handed to). Assignment alone never lets anyone decide."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    queue = review.queue
    if user.pk == queue.owner_id:
        return True
    if review.state == ReviewState.ESCALATED:
        # Once escalated, ownership has moved: a member who took the case over (or was
        # given it) keeps it only while they still work in the queue.
        if user.pk == queue.escalation_owner_id:
            return True
        return review.assignee_id == user.pk and _is_member(queue, user)
    return _is_member(queue, user)


def works_in(*, user: AbstractBaseUser, queue: Queue) -> bool:
    """Whether this person still works the queue (member, owner or escalation owner): a
    decision of someone who left it no longer carries weight when it is executed."""
    if not user.is_active:
        return False
    if user.is_superuser or user.pk in (queue.owner_id, queue.escalation_owner_id):
        return True
    return _is_member(queue, user)


def _is_member(queue: Queue, user: AbstractBaseUser) -> bool:
    return queue.members.filter(pk=user.pk).exists()


def needs_queue_owner(review: ReviewRequest) -> bool:
    """Whether only the queue's owner may let this review's action happen: the policy that
    routed it did not know the action (policies.engine, unknown actions)."""
    policy = review.policy if isinstance(review.policy, dict) else {}
    if policy.get("escalate_to") == QUEUE_OWNER:
        return True
    # Reviews opened before the policy said so still carry its failed catalogue check.
    return any(
        isinstance(check, dict)
        and check.get("name") == "known_action_type"
        and check.get("passed") is False
        for check in policy.get("checks") or ()
    )


def may_act_as_queue_owner(*, review: ReviewRequest, user: AbstractBaseUser) -> bool:
    """Whether this person may let the action happen as far as the owner-only rule goes:
    always, unless the review needs the queue owner and they are not it (nor a superuser)."""
    if user.is_superuser or user.pk == review.queue.owner_id:
        return True
    return not needs_queue_owner(review)


def authority_refusal(
    *,
    review: ReviewRequest,
    user: AbstractBaseUser,
    arguments: Mapping[str, Any] | None = None,
    amount_matters: bool = True,
) -> str | None:
    """Why this person's grants do not cover deciding this review (None if they do).
    The amount (read from `arguments`, by default the proposed ones) limits only the
    choices that let the action happen: anyone may still stop or escalate it."""
    amount = None
    if amount_matters:
        args = review.arguments if arguments is None else arguments
        amount = amount_for(action_name=review.action_name, args=args)
        action_type = action_type_for(review.action_name)
        unreadable = amount is None and action_type is not None and action_type.amount_path
        if unreadable and not user.is_superuser:
            # An amount nobody can read is no amount within anyone's limit.
            return (
                f"The amount at '{action_type.amount_path}' cannot be read, so no limit covers it."
            )
    verdict = check_authority(
        user=user, action_name=review.action_name, tenant=review.tenant, amount=amount
    )
    return None if verdict.allowed else f"Not within your authority: {verdict.reason}."
