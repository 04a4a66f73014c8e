"""The worker's execution, kept going when a task is lost or the trusted facts fail.

A fact provider that cannot answer (its system is down) must not run the action and must
not end the review silently either: the attempt is recorded on the review's history and
tried again later with a growing delay, through a one-off django-q2 schedule written in
the same transaction; after `HITL_EXECUTION_ATTEMPTS` the execution is closed as blocked,
so the agent hears that the action did not run. The task that runs an approved review can
also be lost outright (a broker without delivery guarantees, an enqueue after commit that
failed): the reconcile sweep finds approved reviews that have no execution and runs them.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from policies.selectors import action_type_for

from ..exceptions import AlreadyClaimed, FactsUnavailable, NotExecutable
from ..models import ReviewRequest, ReviewState
from ._common import lock_review, stamp
from .execution import EXECUTOR_ACTOR, execution_block, execution_run_executor

logger = logging.getLogger(__name__)

RETRY_PREFIX = "execute retry "
# Older approvals are left alone by the lost-task sweep: whatever kept them from running
# for a day (a guidance choice, an action type that gained an executor later) is not a
# lost task, and re-reading them every five minutes forever would be.
LOST_WINDOW = timedelta(days=1)


def retry_name(review_id: str) -> str:
    return f"{RETRY_PREFIX}{review_id}"


def execution_run_with_retry(*, review_id: str, attempt: int = 1) -> str:
    """Run the registered executor of a decided review; when its trusted facts cannot be
    read, record it and schedule the next attempt (or block after the last one)."""
    try:
        execution = execution_run_executor(review_id=review_id)
    except FactsUnavailable:
        return _after_facts_failure(review_id, attempt)
    return "skipped" if execution is None else execution.state


def _after_facts_failure(review_id: str, attempt: int) -> str:
    limit = settings.HITL_EXECUTION_ATTEMPTS
    if attempt >= limit:
        detail = (
            f"The trusted facts for this action could not be read in {limit} attempts, "
            "so the platform could not check that the approval still holds; the action "
            "did not run."
        )
        try:
            execution_block(
                review_id=review_id,
                actor=EXECUTOR_ACTOR,
                checks=[{"check": "facts_unavailable", "detail": detail}],
            )
        except (AlreadyClaimed, NotExecutable):
            return "skipped"  # decided otherwise or claimed meanwhile: nothing to close
        return "blocked"
    delay = min(settings.HITL_EXECUTION_RETRY_SECONDS * 2 ** (attempt - 1), 3600)
    with transaction.atomic():
        review = lock_review(review_id)
        stamp(
            review,
            EXECUTOR_ACTOR,
            f"the trusted facts could not be read (attempt {attempt} of {limit}); "
            f"the platform tries again in {delay} s",
        )
        review.save(update_fields=["updated_at"])
        Schedule.objects.update_or_create(
            name=retry_name(review_id),
            defaults={
                "func": "reviews.tasks.execute_review",
                "args": repr(review_id),
                "kwargs": repr({"attempt": attempt + 1}),
                "schedule_type": Schedule.ONCE,
                "repeats": -1,  # django-q2 deletes a ONCE schedule with repeats < 0 once run
                "next_run": timezone.now() + timedelta(seconds=delay),
            },
        )
    return f"retry {attempt + 1} of {limit} in {delay} s"


def execution_recover_lost(*, stale_after: timedelta = timedelta(minutes=5)) -> int:
    """Run the executor of approved reviews whose task never ran (lost with a dead worker
    or a failed enqueue); returns how many it ran. Reviews waiting for a facts retry are
    the retry's to run."""
    now = timezone.now()
    candidates = ReviewRequest.objects.filter(
        state__in=[ReviewState.APPROVED, ReviewState.EDITED],
        audit=False,
        execution__isnull=True,
        decided_at__lt=now - stale_after,
        decided_at__gte=now - LOST_WINDOW,
    ).values_list("review_id", "action_name")
    waiting = set(
        Schedule.objects.filter(name__startswith=RETRY_PREFIX).values_list("name", flat=True)
    )
    ran = 0
    for review_id, action_name in list(candidates):
        action_type = action_type_for(action_name)
        if action_type is None or not action_type.executor or retry_name(review_id) in waiting:
            continue
        try:
            outcome = execution_run_with_retry(review_id=review_id)
        except NotExecutable:
            continue  # approved with guidance: nothing of it executes
        logger.warning("Ran the lost execution of %s: %s", review_id, outcome)
        ran += 1
    return ran
