"""Writes of the reviews app; every change of a review's state goes through here.

Each service is one complete change: keyword-only, it runs in one transaction, locks the
row it changes, checks who is acting, moves the state machine, records the decision and
the history row (`history_user` or the acting agent, and a change reason), and queues
follow-up work only after commit. One module per part of the workflow: creation,
decisions, lifecycle (evidence, withdrawal, expiry), assignment, queues; the run status rule
is `_common.run_status_after`.
"""

from .agents import agent_create, agent_key_issue, agent_key_revoke, key_digest
from .assignment import review_assign
from .creation import ReviewDraft, review_create
from .decisions import (
    review_approve,
    review_decide,
    review_edit,
    review_escalate,
    review_guide,
    review_reject,
    review_request_more_evidence,
    review_take_over,
)
from .lifecycle import review_cancel, review_expire, review_supply_evidence
from .queues import queue_save
from .runs import checkpoint_save, run_finish
from .tenants import tenant_create

__all__ = [
    "ReviewDraft",
    "agent_create",
    "agent_key_issue",
    "agent_key_revoke",
    "checkpoint_save",
    "key_digest",
    "queue_save",
    "review_approve",
    "review_assign",
    "review_cancel",
    "review_create",
    "review_decide",
    "review_edit",
    "review_escalate",
    "review_expire",
    "review_guide",
    "review_reject",
    "review_request_more_evidence",
    "review_supply_evidence",
    "review_take_over",
    "run_finish",
    "tenant_create",
]
