"""What a permission change screen shows: whose access changes, from what to what, for how
long, and who else holds it, each read from trusted facts, never guessed."""

from collections.abc import Mapping
from typing import Any

from django.utils.dateparse import parse_datetime

from policies.selectors import action_type_for

from ..models import ReviewRequest

PERMISSION_TOOL = "permission"
NO_PROVIDER = "not verified: no fact provider"
NO_END = "no end date"
# The argument naming whose access changes, and the access itself, by the names catalogues
# use; the first one present wins.
_SUBJECT_ARGS = ("user_id", "user", "subject", "principal", "account", "member", "group_id")
_ACCESS_ARGS = ("permission", "role", "access", "scope", "group", "entitlement")
_DURATION_ARGS = (
    "duration",
    "expires_at",
    "expiry",
    "expires",
    "until",
    "valid_until",
    "end_date",
    "duration_days",
    "duration_hours",
    "ttl",
)
_REMOVES = {"revoke", "remove", "delete", "deny"}


def _first(args: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, Any]:
    for name in names:
        if args.get(name) not in (None, ""):
            return name, args[name]
    return "", None


def _duration(action_type, args: Mapping[str, Any]) -> str:
    # Only a catalogue that can say "until when" can have an end date; otherwise it has none.
    properties = (action_type.args_schema or {}).get("properties") or {}
    declared = [name for name in _DURATION_ARGS if name in properties]
    if not declared:
        return NO_END
    name, value = _first(args, tuple(declared))
    if not name:
        return f"{NO_END} ({declared[0]} not set)"
    unit = {"duration_days": " days", "duration_hours": " hours"}.get(name, "")
    return f"{value}{unit}" if name.startswith("duration") or name == "ttl" else f"until {value}"


def trusted_access(review: ReviewRequest) -> dict:
    """The trusted facts about access on `review` (review.policy["trusted_facts"]), checked
    for shape: {"verified", "note", "source", "read_at", "subject", "current", "holders"}."""
    facts = (review.policy or {}).get("trusted_facts")
    unverified = {"verified": False, "source": "", "read_at": None, "subject": ""}
    if not isinstance(facts, Mapping):
        return {**unverified, "note": NO_PROVIDER, "current": [], "holders": []}
    source = str(facts.get("source") or "")
    read_at = parse_datetime(str(facts.get("read_at") or "")) or facts.get("read_at")
    seen = {**unverified, "source": source, "read_at": read_at}
    if facts.get("error"):
        return {**seen, "note": f"not verified: {facts['error']}", "current": [], "holders": []}
    details = facts.get("details")
    current = details.get("current_access") if isinstance(details, Mapping) else None
    if not isinstance(current, list):
        note = "not verified: the fact provider did not say who holds what"
        return {**seen, "note": note, "current": [], "holders": []}
    holders = [
        {
            "user": str(h.get("user") or "?"),
            "access": str(h.get("access") or ""),
            "until": parse_datetime(str(h.get("until") or "")) or h.get("until"),
        }
        for h in details.get("holders") or []
        if isinstance(h, Mapping)
    ]
    return {
        **seen,
        "verified": True,
        "note": "",
        "subject": str(details.get("subject") or ""),
        "current": [str(a) for a in current],
        "holders": holders,
    }


def _side_by_side(current: list[str], access: str, removes: bool, verified: bool) -> list:
    """Rows of (access, now, after approval): what the subject has and will have."""
    if not verified:
        return [(access, None, not removes)]
    after = [a for a in current if a != access] if removes else [*current, access]
    rows = []
    for name in dict.fromkeys([*current, access]):
        rows.append((name, name in current, name in after))
    return rows


def access_context(review: ReviewRequest) -> dict | None:
    """The permission-change block of the approval screen (None for other actions)."""
    action_type = action_type_for(review.action_name)
    if action_type is None or action_type.tool_type != PERMISSION_TOOL:
        return None
    args = review.final_arguments or review.arguments or {}
    facts = trusted_access(review)
    _, subject = _first(args, _SUBJECT_ARGS)
    _, access = _first(args, _ACCESS_ARGS)
    change = str(args.get("change") or "grant")
    removes = change.lower() in _REMOVES
    access = str(access or "(not named)")
    subject = str(subject or facts["subject"] or "(not named)")
    return {
        "subject": subject,
        # The provider read another account than the one the change names: say so.
        "subject_mismatch": bool(facts["subject"]) and facts["subject"] != subject,
        "access": access,
        "change": change,
        "removes": removes,
        "duration": _duration(action_type, args),
        "facts": facts,
        "rows": _side_by_side(facts["current"], access, removes, facts["verified"]),
        "already": facts["verified"] and (access in facts["current"]) != removes,
        "others": [
            h
            for h in facts["holders"]
            if h["user"] != subject and (not h["access"] or h["access"] == access)
        ],
    }
