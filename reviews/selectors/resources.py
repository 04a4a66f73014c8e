"""A resource's history: the other reviews of the same order, user or record, and what
became of them, so a reviewer sees "order 17 was refunded already" before approving."""

from datetime import datetime
from typing import Any

from django.db.models import Prefetch, Q
from django.utils import timezone

from policies.selectors import render_consequence

from ..models import (
    Decision,
    Execution,
    ExecutionState,
    ResourceRef,
    ReviewRequest,
    ReviewState,
)

# The most reviews a packet lists: the newest matter, and a packet stays small.
HISTORY_LIMIT = 10


def resource_history(*, review: ReviewRequest, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """The other reviews of the same tenant that touched one of this review's affected
    resources (same type and id), newest first, at most `limit`: each with its state, its
    last decision and its execution, and a warning when it went ahead. Two queries."""
    keys = _keys(review)
    if not keys:
        return []
    same_resource = Q()
    for kind, ident in keys:
        same_resource |= Q(resource_type=kind, resource_id=ident)
    refs = ResourceRef.objects.filter(same_resource, tenant=review.tenant).exclude(
        review_id=review.pk
    )
    others = (
        ReviewRequest.objects.filter(pk__in=refs.values("review_id"))
        .select_related("execution")
        .prefetch_related(
            Prefetch(
                "decisions",
                queryset=Decision.objects.select_related("reviewer").order_by("decided_at", "id"),
            )
        )
        .order_by("-created_at", "-id")[:limit]
    )
    return [_entry(other, keys, review.created_at) for other in others]


def _keys(review: ReviewRequest) -> list[tuple[str, str]]:
    return list(
        dict.fromkeys(
            (str(r.get("type", "")), str(r.get("id", "")))
            for r in review.affected_resources or []
            if isinstance(r, dict) and r.get("type") and r.get("id")
        )
    )


def _entry(other: ReviewRequest, keys: list[tuple[str, str]], since: datetime) -> dict[str, Any]:
    execution = _execution(other)
    decisions = list(other.decisions.all())
    last = decisions[-1] if decisions else None
    arguments = (
        execution.arguments
        if execution is not None and execution.arguments
        else other.final_arguments or other.arguments
    )
    shared = [f"{kind} {ident}" for kind, ident in _keys(other) if (kind, ident) in keys]
    entry = {
        "review_id": other.review_id,
        "action_name": other.action_name,
        "kind": other.kind,
        "state": other.state,
        "state_label": other.get_state_display(),
        "created_at": other.created_at,
        "decided_at": other.decided_at,
        "later": other.created_at > since,
        "resources": shared,
        "what": render_consequence(action_name=other.action_name, args=arguments or {}),
        "arguments": arguments,
        "decision": None
        if last is None
        else {
            "choice": last.choice,
            "reviewer": last.reviewer.get_username(),
            "reason": last.reason,
            "decided_at": last.decided_at,
        },
        "execution": None
        if execution is None
        else {
            "state": execution.state,
            "finished_at": execution.finished_at,
            "result": execution.result,
            "error": execution.error,
        },
    }
    entry["went_ahead"], entry["warning"] = _warning(other, execution, entry)
    return entry


def _execution(review: ReviewRequest) -> Execution | None:
    try:
        return review.execution
    except Execution.DoesNotExist:
        return None


def _warning(
    other: ReviewRequest, execution: Execution | None, entry: dict[str, Any]
) -> tuple[bool, str]:
    """Whether the other review went ahead (approved or edited, or ran), and the line
    that says so: what it did, when, and which review."""
    what = entry["what"].rstrip(".")
    if execution is not None and execution.state == ExecutionState.SUCCEEDED:
        when = execution.finished_at or execution.claimed_at
        return True, f"{what}: done on {_when(when)} (review {other.review_id})."
    if other.state not in (ReviewState.APPROVED, ReviewState.EDITED):
        return False, ""
    if execution is None:
        status = "not run yet"
    else:
        status = {
            ExecutionState.CLAIMED: "running now",
            ExecutionState.FAILED: "its execution failed",
            ExecutionState.BLOCKED_STALE: "blocked before it ran",
        }.get(execution.state, execution.state)
    verb = "approved" if other.state == ReviewState.APPROVED else "approved with edits"
    when = other.decided_at or other.created_at
    return True, f"{what}: {verb} on {_when(when)}, {status} (review {other.review_id})."


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")
