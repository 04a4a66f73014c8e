"""Builders for evaluation data: the ML engineers' role, and cases captured from decisions."""

from datetime import timedelta

import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone

from evaluation.services import capture_decision
from reviews.tests.factories import make_decision, make_review, role_groups

# What evaluation's seed_demo adds to the ML engineers group, model by model: they curate
# cases, build datasets and read the tenants' evaluation settings.
ML_ENGINEER_ACTIONS = {
    "evalcase": ["view", "change"],
    "dataset": ["view", "add", "change"],
    "datasetversion": ["view"],
    "tenantevaluationsetting": ["view"],
}


def evaluation_role_groups():
    """role_groups(), with what evaluation's seed_demo adds: ML engineers curate cases."""
    groups = role_groups()
    groups["ML engineers"].permissions.add(
        *Permission.objects.filter(
            content_type__app_label="evaluation",
            codename__in=[
                f"{action}_{model}"
                for model, actions in ML_ENGINEER_ACTIONS.items()
                for action in actions
            ],
        )
    )
    return groups


def make_case(*, queue, reviewer, reason, seconds_on_screen=None, **review_fields):
    """A candidate case: a review the reviewer rejects, captured by the capture service.
    With seconds_on_screen the reviewer had the review open that long (the had_context
    check); without, the decision came from no screen."""
    opened = timezone.now() - timedelta(seconds=seconds_on_screen or 0)
    with time_machine.travel(opened, tick=False):
        review = make_review(queue=queue, reviewers=[reviewer], **review_fields)
    decision = make_decision(
        review,
        reviewer=reviewer,
        choice="reject",
        reason=reason,
        opened_at=review.created_at if seconds_on_screen else None,
    )
    return capture_decision(decision_id=decision.pk)
