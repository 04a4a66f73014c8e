"""Reads shared by the admin screens, the API and the services, one module per concern."""

from .access import (
    authority_refusal,
    can_decide,
    may_act_as_queue_owner,
    needs_queue_owner,
    queues_for,
    reviews_visible_to,
    sees_whole_run,
    tenants_of,
    works_in,
)
from .guard import ChoiceVerdict, available_choices, choice_verdict, choice_verdicts
from .inbox import inbox_counts
from .packets import (
    blocked_checks,
    blocked_next_step,
    choice_consequences,
    claim_requirements,
    execution_of,
    execution_summary,
    packet_queryset,
    resume_instruction,
)
from .resources import resource_history
from .runs import call_view, run_body, run_wait
from .trace import RunTrace, run_trace

__all__ = [
    "ChoiceVerdict",
    "RunTrace",
    "authority_refusal",
    "available_choices",
    "blocked_checks",
    "blocked_next_step",
    "call_view",
    "can_decide",
    "choice_consequences",
    "choice_verdict",
    "choice_verdicts",
    "claim_requirements",
    "execution_of",
    "execution_summary",
    "inbox_counts",
    "may_act_as_queue_owner",
    "needs_queue_owner",
    "packet_queryset",
    "queues_for",
    "resource_history",
    "resume_instruction",
    "reviews_visible_to",
    "run_body",
    "run_trace",
    "run_wait",
    "sees_whole_run",
    "tenants_of",
    "works_in",
]
