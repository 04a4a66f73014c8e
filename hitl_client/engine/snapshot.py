"""The snapshot: what a published ``PolicyVersion`` freezes, and what ``content_hash`` hashes::

{
  "format": 1,
  "rules": [                                  # evaluated in this order, first match wins
    {"name": "writes_need_review", "priority": 30, "description": "...",
     "conditions": [...],                      # all must hold; [] matches everything
     "outcome": "human_review",                # auto_execute | human_review |
                                               # request_clarification | deny
     "review_kind": "",                        # approval | edit | escalation | "" (= the
                                               # action type's default kind)
     "queue": "operations",                    # "" = the default queue
     "risk": "medium",                         # low | medium | high | critical
     "required_approvals": 1, "sla_minutes": null,
     "audit_sample_rate": 0.1},               # auto_execute only: the share of its actions
                                               # a person audits afterwards; absent = 0
  ],
  "catalogue": {                              # the action types, as they were at publish
    "issue_refund": {"tool_type": "payment", "target_system": "billing",
                     "reversible": false, "default_review_kind": "approval",
                     "amount_path": "amount"},
  },
  "unknown_action": "deny",                   # what an action missing from the
                                              # catalogue gets; absent = "escalate"
}
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .proposal import _show_input
from .rules import (
    UNKNOWN_ACTIONS,
    UNKNOWN_ESCALATE,
    RuleError,
    canonical_json,
    validate_rule,
)

SNAPSHOT_FORMAT = 1
# An action type's entry in the catalogue, as ActionInfo holds it.
CATALOGUE_KEYS = ("tool_type", "target_system", "reversible", "default_review_kind", "amount_path")


def build_snapshot(
    rules: Iterable[Mapping[str, Any]],
    catalogue: Mapping[str, Mapping],
    *,
    unknown_action: str = UNKNOWN_ESCALATE,
) -> dict:
    """Validate rules and freeze them with the catalogue and what to do with an action
    the catalogue does not know; raises RuleError naming the rule."""
    messages: list[str] = []
    if unknown_action not in UNKNOWN_ACTIONS:
        messages.append(
            f"unknown_action must be one of {', '.join(UNKNOWN_ACTIONS)}, got "
            f"{_show_input(unknown_action)}"
        )
    normalised = []
    for rule in rules:
        try:
            normalised.append(validate_rule(rule))
        except RuleError as exc:
            messages.extend(f"rule {rule.get('name')!r}: {m}" for m in exc.messages)
    messages.extend(_order_errors(normalised))
    if messages:
        raise RuleError(messages)
    normalised.sort(key=lambda r: (r["priority"], r["name"]))
    return {
        "format": SNAPSHOT_FORMAT,
        "rules": normalised,
        "catalogue": {name: _catalogue_entry(entry) for name, entry in sorted(catalogue.items())},
        # Written only when it is not the default, so the versions published before the
        # setting existed (which escalate) keep their content hash.
        **({"unknown_action": unknown_action} if unknown_action != UNKNOWN_ESCALATE else {}),
    }


def _order_errors(rules: list[dict]) -> list[str]:
    """Two rules with one name, or one priority (which would leave the order implicit)."""
    messages = []
    seen_names: dict[str, int] = {}
    seen_priorities: dict[int, str] = {}
    for rule in rules:
        if rule["name"] in seen_names:
            messages.append(f"two rules are named {rule['name']!r}")
        seen_names[rule["name"]] = rule["priority"]
        if rule["priority"] in seen_priorities:
            messages.append(
                f"rules {seen_priorities[rule['priority']]!r} and {rule['name']!r} "
                f"share priority {rule['priority']}: the order must be explicit"
            )
        seen_priorities[rule["priority"]] = rule["name"]
    return messages


def _catalogue_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "tool_type": entry["tool_type"],
        "target_system": entry.get("target_system") or "",
        "reversible": bool(entry.get("reversible")),
        "default_review_kind": entry.get("default_review_kind") or "approval",
        "amount_path": entry.get("amount_path") or "",
    }


def content_hash(snapshot: Mapping[str, Any]) -> str:
    """sha256 (hex) of the snapshot's canonical JSON: same content, same hash."""
    return hashlib.sha256(canonical_json(snapshot).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ActionInfo:
    """What the policy knows about one action type (frozen into the version)."""

    tool_type: str
    target_system: str
    reversible: bool
    default_review_kind: str
    amount_path: str
