"""The decision screen of one review: its packet, what this person may choose, and why."""

import json
from collections.abc import Callable
from datetime import datetime

from django.core import signing
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from policies.selectors import important_arguments

from .. import selectors
from ..choices import SPEC_BY_VALUE, ChoiceSpec, reason_hint
from ..exceptions import InvalidReviewInput
from ..models import (
    Choice,
    ReviewKind,
    ReviewRequest,
)
from ..validation import json_problem

RISK_COLOURS = {"low": "#2e7d32", "medium": "#b26a00", "high": "#c62828", "critical": "#6a1b9a"}


def risk_badge(risk: str) -> str:
    return format_html(
        '<span class="hitl-risk hitl-risk-{}" style="background:{}">{}</span>',
        risk,
        RISK_COLOURS.get(risk, "#555"),
        risk,
    )


def _compact(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


def time_left(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    if seconds <= 0:
        return format_html('<span class="hitl-overdue">overdue {}</span>', _compact(-seconds))
    return format_html('<span class="hitl-left">{}</span>', _compact(seconds))


def _opening_signer(review: ReviewRequest, user) -> signing.Signer:
    # The screen's opening time feeds "time spent" and the quality checks: the server
    # records it, signed for this review and this person, so a form cannot claim another.
    return signing.Signer(salt=f"hitl.review-opened:{review.pk}:{user.pk}")


def opened_at(raw: str | None, review: ReviewRequest, user) -> datetime | None:
    # A missing, forged or foreign value only loses "time spent"; it never blocks a decision.
    try:
        moment = parse_datetime(_opening_signer(review, user).unsign(raw or ""))
    except (signing.BadSignature, ValueError):
        return None
    if moment is None or timezone.is_naive(moment):
        return None
    return moment


def parse_arguments(raw: str) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidReviewInput(
            f"The arguments are not valid JSON: {exc}.",
            field_errors={"arguments": ["Not valid JSON."]},
        ) from None
    if not isinstance(value, dict):
        raise InvalidReviewInput(
            "The arguments must be a JSON object.", field_errors={"arguments": ["Not an object."]}
        )
    problem = json_problem(value)
    if problem:
        raise InvalidReviewInput(
            f"The arguments cannot be stored: {problem}.", field_errors={"arguments": [problem]}
        )
    return value


def _diff_lines(diff: str) -> list[tuple[str, str]]:
    kinds = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        kinds.append((kind, line))
    return kinds


def packet_context(*, request, review: ReviewRequest, submitted: dict | None) -> dict:
    """What the decision screen shows of `review` to the person asking."""
    now = timezone.now()
    full = selectors.packet_queryset().get(pk=review.pk)
    decisions = list(full.decisions.all())
    last_edit = next((d for d in reversed(decisions) if d.diff), None)
    arguments = important_arguments(action_name=full.action_name, args=full.arguments)
    history = full.history.select_related("history_user").order_by("-history_date", "-history_id")
    choices = _choices_context(full, request.user)
    return {
        "review": full,
        "now": now,
        "risk_badge": risk_badge(full.risk),
        "sla_left": time_left(full.due_at, now),
        "expiry_left": time_left(full.expires_at, now),
        "arguments_table": arguments,
        "other_arguments": sorted(
            (k, v) for k, v in full.arguments.items() if k not in dict(arguments)
        ),
        "evidence": list(full.evidence.all()),
        "policy": full.policy or {},
        "decisions": decisions,
        "last_edit": last_edit,
        "diff_lines": _diff_lines(last_edit.diff) if last_edit else [],
        "trace": selectors.run_trace(full),
        "history_rows": list(history[:20]),
        **choices,
        "approvals_so_far": sum(1 for d in decisions if d.choice == Choice.APPROVE),
        "opened_at": _opening_signer(review, request.user).sign(now.isoformat()),
        **_submitted_context(full, submitted or {}, bool(choices["respond_choice"])),
        "resume": selectors.resume_instruction(full),
        "can_claim": full.is_open
        and full.assignee_id != request.user.pk
        and selectors.can_decide(user=request.user, review=full),
    }


def _choices_context(review: ReviewRequest, user) -> dict:
    # One guard answers what is offered and what the service accepts, with the reason.
    verdicts = selectors.choice_verdicts(review=review, user=user)
    choices = [SPEC_BY_VALUE[v.choice] for v in verdicts if v.allowed]
    not_offered = [
        (v.choice, choice_label(v.choice, review), v.reason)
        for v in verdicts
        if not v.allowed and not v.about_review
    ]
    reasons = {reason for _, _, reason in not_offered}
    return {
        "choices": [
            (spec.value, spec.label_for(review.kind), spec.consequence(review), spec.look)
            for spec in choices
            if spec.button
        ],
        # An edit has a form of its own (the arguments, or the text) rather than a button,
        # and so has a response (the text the agent gets as the tool's result).
        "edit_choice": _own_block(review, choices, lambda spec: spec.correction == "edit"),
        "respond_choice": _own_block(review, choices, lambda spec: spec.value == Choice.RESPOND),
        "can_decide_any": bool(choices),
        # The shared reason box serves the buttons; a response has its own box.
        "reason_hint": reason_hint(spec.value for spec in choices if spec.button),
        # Why a choice is not offered to this person; one line when it is one reason.
        "not_offered": not_offered,
        "why_none": reasons.pop() if len(reasons) == 1 and not choices else "",
    }


def _own_block(
    review: ReviewRequest, choices: list[ChoiceSpec], wanted: Callable[[ChoiceSpec], bool]
) -> dict | None:
    """The one offered choice with a block of its own on the screen, if offered."""
    return next(
        (
            {"value": spec.value, "explanation": spec.consequence(review), "look": spec.look}
            for spec in choices
            if wanted(spec)
        ),
        None,
    )


def _submitted_context(review: ReviewRequest, submitted: dict, respond_box: bool) -> dict:
    # A refused decision shows the screen again with what was typed: nothing is lost, and
    # a response goes back to its own box (to the reason box once it is no longer offered).
    responded = respond_box and submitted.get("choice") == Choice.RESPOND
    reason = submitted.get("reason", "")
    return {
        "submitted_content": submitted.get("content", review.final_content or review.content),
        "submitted_reason": "" if responded else reason,
        "submitted_response": reason if responded else "",
        "submitted_arguments": submitted.get(
            "arguments_json",
            json.dumps(review.final_arguments or review.arguments, indent=2, sort_keys=True),
        ),
        "edit_open": bool(submitted.get("arguments_json")),
    }


def choice_label(choice: str, review: ReviewRequest) -> str:
    """The button's own wording, so "why not" names what the person was looking for."""
    spec = SPEC_BY_VALUE.get(choice)
    return spec.label_for(review.kind) if spec else choice


def decision_input(review: ReviewRequest, data, user) -> dict:
    """The decision service's arguments from the screen's form (InvalidReviewInput when
    the typed arguments are not a JSON object)."""
    choice = data.get("choice", "")
    spec = SPEC_BY_VALUE.get(choice)
    edits = spec is not None and spec.correction == "edit"
    arguments = None
    if edits and review.kind != ReviewKind.EDIT:
        arguments = parse_arguments(data.get("arguments", ""))
    content = data.get("content") if edits else None
    if content is not None and "\r\n" not in review.content:
        # Browsers send a textarea's lines with CRLF; the agent's text used LF, and an
        # untouched text must not come back as an "edit" with other bytes.
        content = content.replace("\r\n", "\n")
    return {
        "choice": choice,
        "reason": data.get("reason", ""),
        "arguments": arguments,
        "content": content,
        "opened_at": opened_at(data.get("opened_at"), review, user),
    }
