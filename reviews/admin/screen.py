"""The decision screen of one review: its packet, what this person may choose, and why."""

import json
from collections.abc import Callable
from datetime import datetime, timedelta

from django.core import signing
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from policies.selectors import action_type_for, important_arguments

from .. import selectors
from ..choices import SPEC_BY_VALUE, ChoiceSpec, reason_hint
from ..exceptions import InvalidReviewInput
from ..models import (
    Choice,
    ReviewKind,
    ReviewRequest,
)
from ..validation import json_problem
from .access_screen import access_context
from .schema_form import ArgumentsForm, arguments_form

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


def duration_words(spent: timedelta | None) -> str:
    """A duration as a person reads it: "45 s", "1 min 20 s", "2 h 5 min", "3 d 4 h"."""
    if spent is None:
        return "-"
    seconds = int(spent.total_seconds())
    if seconds < 1:
        return "under 1 s"
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    for big, big_unit, small, small_unit in (
        (days, "d", hours, "h"),
        (hours, "h", minutes, "min"),
        (minutes, "min", seconds, "s"),
    ):
        if big:
            return f"{big} {big_unit} {small} {small_unit}" if small else f"{big} {big_unit}"
    return f"{seconds} s"


def time_left(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    if seconds <= 0:
        return format_html('<span class="hitl-overdue">overdue {}</span>', _compact(-seconds))
    return format_html('<span class="hitl-left">{}</span>', _compact(seconds))


def deadline_left(review: ReviewRequest, moment: datetime | None, now: datetime) -> str:
    """A deadline while the review is open; once it is decided the clock has stopped, so
    say whether the decision met it ("met", "missed by 1h 05m"), never a running count."""
    if review.is_open:
        return time_left(moment, now)
    if moment is None or review.decided_at is None:
        return "-"
    late = (review.decided_at - moment).total_seconds()
    if late <= 0:
        return mark_safe('<span class="hitl-muted">met</span>')
    return format_html('<span class="hitl-muted">missed by {}</span>', _compact(late))


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
        # A closed review's deadlines are past history, not a countdown.
        "sla_left": deadline_left(full, full.due_at, now),
        "expiry_left": time_left(full.expires_at, now) if full.is_open else "-",
        "arguments_table": arguments,
        "other_arguments": sorted(
            (k, v) for k, v in full.arguments.items() if k not in dict(arguments)
        ),
        "evidence": list(full.evidence.all()),
        "policy": full.policy or {},
        "decisions": decisions,
        "decision_rows": [(d, duration_words(d.time_spent)) for d in decisions],
        "last_edit": last_edit,
        "diff_lines": _diff_lines(last_edit.diff) if last_edit else [],
        "trace": selectors.run_trace(full),
        "resource_history": (same_resource := selectors.resource_history(review=full)),
        "resource_warnings": [e["warning"] for e in same_resource if e["went_ahead"]],
        "history_rows": list(history[:20]),
        **choices,
        "approvals_so_far": sum(1 for d in decisions if d.choice == Choice.APPROVE),
        "opened_at": _opening_signer(review, request.user).sign(now.isoformat()),
        **_submitted_context(full, submitted or {}, bool(choices["respond_choice"])),
        **_edit_form_context(request, full, submitted or {}, choices["edit_choice"]),
        "access_change": access_context(full),
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


def _edit_form_context(
    request, review: ReviewRequest, submitted: dict, edit_choice: dict | None
) -> dict:
    # The schema-built form; after a refused edit it is bound to what was posted (the
    # refusal answers the POST itself), so each error shows beside its field and nothing
    # typed is lost.
    if edit_choice is None or review.kind == ReviewKind.EDIT:
        return {"arguments_form": None}
    refused_edit = submitted.get("choice") == edit_choice["value"]
    posted = refused_edit and submitted.get("arguments_json") is None
    data = submitted.get("posted", request.POST) if posted else None
    form = arguments_form(review, data)
    if form is not None and posted and form.is_valid():
        _place_refusal(form, review, request.user, submitted.get("field_errors") or {})
    return {"arguments_form": form, "edit_open": refused_edit}


def _place_refusal(form: ArgumentsForm, review: ReviewRequest, user, field_errors) -> None:
    """The service's reasons for refusing a valid-looking edit, beside their fields."""
    form.add_service_errors(field_errors)
    refusal = selectors.authority_refusal(review=review, user=user, arguments=form.arguments)
    action_type = action_type_for(review.action_name)
    amount_field = (
        form.fields_by_prop.get(action_type.amount_path.split(".")[0])
        if action_type is not None and action_type.amount_path
        else None
    )
    if refusal and amount_field and amount_field not in form.errors:
        form.add_error(amount_field, refusal)


def choice_label(choice: str, review: ReviewRequest) -> str:
    """The button's own wording, so "why not" names what the person was looking for."""
    spec = SPEC_BY_VALUE.get(choice)
    return spec.label_for(review.kind) if spec else choice


def decision_input(review: ReviewRequest, data, user) -> dict:
    """The decision service's arguments from the screen's form (InvalidReviewInput when
    the edited arguments are not valid)."""
    choice = data.get("choice", "")
    spec = SPEC_BY_VALUE.get(choice)
    edits = spec is not None and spec.correction == "edit"
    arguments = None
    if edits and review.kind != ReviewKind.EDIT:
        arguments = edited_arguments(review, data)
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


def edited_arguments(review: ReviewRequest, data) -> dict:
    """The arguments an edit posts: from the schema-built form, or from the whole-JSON box
    (actions without a usable schema, and anything posting `arguments` itself)."""
    if "arguments" in data:
        return parse_arguments(data.get("arguments", ""))
    form = arguments_form(review, data)
    if form is None:
        return parse_arguments("")
    if not form.is_valid():
        errors = form.error_fields()
        first = "; ".join(
            f"{key.removeprefix('arguments.')}: {' '.join(messages)}"
            for key, messages in errors.items()
        )
        raise InvalidReviewInput(
            f"The edited arguments are not valid: {first}", field_errors=errors
        )
    return form.arguments
