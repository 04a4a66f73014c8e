"""The review packet, built without DRF's per-instance field copies (see packet_data)."""

from rest_framework import serializers

from ..models import Decision, Evidence


def packet_data(serializer, review) -> dict:
    """What DRF's generic walk of ReviewPacketOut's fields gives for `review`
    (test_api_packets compares them on every kind of review), built directly; the
    method fields are the serializer's own."""
    return {
        "review_id": _text(review.review_id),
        "run_id": _text(review.run.run_id),
        "kind": _text(review.kind),
        "state": _text(review.state),
        "tenant": _text(review.tenant),
        "queue": _text(review.queue.slug),
        "assignee": serializer.get_assignee(review),
        "summary": _text(review.summary),
        "proposed_action": serializer.get_proposed_action(review),
        "consequence": _text(review.consequence),
        "content": _text(review.content),
        "evidence": [_evidence(item) for item in review.evidence.all()],
        "affected_resources": review.affected_resources,
        "confidence": None if review.confidence is None else float(review.confidence),
        "uncertainty": _text(review.uncertainty),
        "question": _text(review.question),
        "options_considered": review.options_considered,
        "risk": _text(review.risk),
        "policy": serializer.get_policy(review),
        "choices": review.choices,
        "required_approvals": _integer(review.required_approvals),
        "due_at": _DATETIME.to_representation(review.due_at),
        "expires_at": _DATETIME.to_representation(review.expires_at),
        "versions": review.versions,
        "decisions": [_decision(item) for item in review.decisions.all()],
        "final_arguments": review.final_arguments,
        "final_content": _text(review.final_content),
        "created_at": _DATETIME.to_representation(review.created_at),
        "decided_at": _DATETIME.to_representation(review.decided_at),
        "resume": serializer.get_resume(review),
        "execution": serializer.get_execution(review),
        "your_choices": serializer.get_your_choices(review),
        "resource_history": serializer.get_resource_history(review),
    }


# What DRF's DateTimeField gives: ISO 8601 in the current time zone, UTC as Z.
_DATETIME = serializers.DateTimeField()


def _text(value) -> str | None:
    return None if value is None else str(value)


def _integer(value) -> int | None:
    return None if value is None else int(value)


def _evidence(item: Evidence) -> dict:
    return {
        "id": _text(item.evidence_id),
        "title": _text(item.title),
        "url": _text(item.url),
        "excerpt": _text(item.excerpt),
        "fresh_until": _DATETIME.to_representation(item.fresh_until),
        "stale": bool(item.is_stale),
    }


def _decision(item: Decision) -> dict:
    return {
        "choice": _text(item.choice),
        "reviewer": _text(item.reviewer.get_username()),
        "reason": _text(item.reason),
        "edited_arguments": item.edited_arguments,
        "edited_content": _text(item.edited_content),
        "diff": _text(item.diff),
        "state_before": _text(item.state_before),
        "state_after": _text(item.state_after),
        "opened_at": _DATETIME.to_representation(item.opened_at),
        "decided_at": _DATETIME.to_representation(item.decided_at),
    }
