"""Cleaning what agents send: enum values, offered choices, evidence rows, resources, and
its word on each tool call."""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..choices import FRAMEWORK_DECISIONS, default_choices, possible_choices
from ..models import (
    Evidence,
)


def enum_value(enum, value: Any, field: str, errors: dict[str, list[str]]) -> str:
    if value in enum.values:
        return enum(value).value
    allowed = ", ".join(enum.values)
    errors.setdefault(field, []).append(f"'{value}' is not one of: {allowed}.")
    return ""


def validate_choices(
    kind: str, choices: Iterable[str] | None, errors: dict[str, list[str]]
) -> list[str]:
    if not kind:
        return []
    if choices is None:
        return default_choices(kind)
    values = list(choices)
    # A kind's optional choices (argument edits on an approval) are the policy's to add.
    possible = set(possible_choices(kind))
    wrong = [c for c in values if c not in possible]
    if wrong:
        errors.setdefault("choices", []).append(
            f"not offered for a {kind} review: {', '.join(map(str, wrong))}."
        )
    if not values:
        errors.setdefault("choices", []).append("offer at least one choice.")
    return list(dict.fromkeys(values))


def clean_evidence(
    rows: Iterable[Mapping[str, Any]], errors: dict[str, list[str]]
) -> list[dict[str, Any]]:
    cleaned: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        prefix = f"evidence[{index}]"
        if not isinstance(row, Mapping):
            errors.setdefault(prefix, []).append("must be an object.")
            continue
        evidence_id = str(row.get("id") or row.get("evidence_id") or "").strip()
        fresh_until = row.get("fresh_until")
        if isinstance(fresh_until, str):
            parsed = parse_datetime(fresh_until)
            if parsed is None:
                errors.setdefault(f"{prefix}.fresh_until", []).append(
                    "must be an ISO 8601 date-time."
                )
            elif timezone.is_naive(parsed):
                errors.setdefault(f"{prefix}.fresh_until", []).append("must include a timezone.")
            fresh_until = parsed
        item = {
            "evidence_id": evidence_id,
            "title": str(row.get("title") or "").strip(),
            "url": str(row.get("url") or "").strip(),
            "excerpt": str(row.get("excerpt") or ""),
            "fresh_until": fresh_until if isinstance(fresh_until, datetime) else None,
        }
        if evidence_id in seen:
            errors.setdefault(f"{prefix}.id", []).append(f"duplicate evidence id {evidence_id}.")
        seen.add(evidence_id)
        try:
            Evidence(**item).full_clean(exclude=["review"])
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                name = "id" if field == "evidence_id" else field
                errors.setdefault(f"{prefix}.{name}", []).extend(messages)
        cleaned.append(item)
    return cleaned


def clean_resources(
    rows: Iterable[Mapping[str, Any]], errors: dict[str, list[str]]
) -> list[dict[str, str]]:
    cleaned = []
    for index, row in enumerate(rows):
        prefix = f"affected_resources[{index}]"
        if not isinstance(row, Mapping):
            errors.setdefault(prefix, []).append("must be an object with type, id and version.")
            continue
        missing = [k for k in ("type", "id") if not str(row.get(k, "")).strip()]
        if missing:
            errors.setdefault(prefix, []).append(f"missing {', '.join(missing)}.")
        version = row.get("version")
        cleaned.append(
            {
                "type": str(row.get("type", "")),
                "id": str(row.get("id", "")),
                "version": None if version is None else str(version),
            }
        )
    return cleaned


def clean_call(call: Any, path: str, errors: dict[str, list[str]]) -> None:
    """Check the agent's word on one tool call (a CallDraft); `path` names it in errors."""
    if not isinstance(call.tool_call_id, str) or len(call.tool_call_id) > 200:
        errors.setdefault(f"{path}.tool_call_id", []).append(
            "must be text of 200 characters or fewer."
        )
    if not isinstance(call.description, str):
        errors.setdefault(f"{path}.description", []).append("must be text.")
    if not isinstance(call.answerable, bool):
        errors.setdefault(f"{path}.answerable", []).append("must be true or false.")
    wrong = [d for d in call.allowed_decisions if d not in FRAMEWORK_DECISIONS]
    if wrong:
        errors.setdefault(f"{path}.allowed_decisions", []).append(
            f"not decisions an agent consumes: {', '.join(map(str, wrong))} "
            f"(one of {', '.join(FRAMEWORK_DECISIONS)})."
        )
