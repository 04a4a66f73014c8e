"""The proposal's one shape: the keys the policy reads, their defaults, and their parsing.

An agent's proposal carries more (summary, evidence, content); the policy reads only
``POLICY_KEYS``. ``proposal_input`` builds that part, ``parse_proposal`` checks it and
returns the ``Proposal`` the engine decides. ``confidence`` and ``estimated_cost_usd`` may
be missing or null: the value is unknown, and no comparison on it holds (see ``decide``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

# The top-level keys of a proposal that the policy reads; the others are ignored here.
POLICY_KEYS = ("action", "confidence", "estimated_cost_usd", "audience", "tenant", "facts")

AUDIENCES = ("internal", "external")
DEFAULT_AUDIENCE = "internal"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MAX_ACTION_NAME = 100


class ProposalError(ValueError):
    """A proposal that cannot be evaluated; ``errors`` maps a field path to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {m}" for k, ms in errors.items() for m in ms))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Proposal:
    """One proposed action as the engine sees it (build it with ``parse_proposal``)."""

    action_name: str
    target_system: str
    args: dict
    # None: the agent did not say (unknown).
    confidence: float | None = None
    estimated_cost_usd: Decimal | float | None = None
    audience: str = DEFAULT_AUDIENCE
    tenant: str = ""
    facts: dict = field(default_factory=dict)


def proposal_input(
    *,
    action_name: str,
    target_system: str = "",
    args: Mapping[str, Any] | None = None,
    confidence: Any = None,
    estimated_cost_usd: Any = None,
    audience: str = DEFAULT_AUDIENCE,
    tenant: str = "",
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The policy's part of a proposal (``POLICY_KEYS``), as ``parse_proposal`` accepts it;
    a confidence or cost of None is unknown."""
    return {
        "action": {"name": action_name, "target_system": target_system, "args": dict(args or {})},
        "confidence": confidence,
        "estimated_cost_usd": estimated_cost_usd,
        "audience": audience,
        "tenant": tenant,
        "facts": dict(facts or {}),
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a number or a numeric string, else None (never raises)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        try:
            # str() first: Decimal(0.1) would carry the binary float's 55 digits.
            result = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            return None
    else:
        return None
    return result if result.is_finite() else None


def read_path(data: Any, path: str) -> Any:
    """The value at a dotted path in nested dicts/lists (``refund.lines.0.amount``), or None."""
    value = data
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is None:
            return None
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _show_input(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# --- parsing, one reader per policy key ----------------------------------------------
#
# Each reader takes the mapping and ``err(key, message)``, reports what is wrong, and
# returns the Proposal fields it read (a placeholder when the value is wrong: only a
# proposal without errors is built).

_Err = Callable[[str, str], None]


def _read_action(data: Mapping[str, Any], err: _Err) -> dict[str, Any]:
    action = data.get("action")
    name, target, args = "", "", {}
    if action is None:
        err("action", "is required: an object with name, target_system and args")
    elif not isinstance(action, Mapping):
        err(
            "action",
            f"must be an object with name, target_system and args, got {_json_type(action)}",
        )
    else:
        name = action.get("name")
        if name is None:
            err("action.name", "is required")
        elif not isinstance(name, str) or not name.strip():
            err("action.name", "must be a non-empty string")
        elif len(name) > MAX_ACTION_NAME:
            err("action.name", f"must be at most {MAX_ACTION_NAME} characters")
        target = action.get("target_system", "")
        if target is None:
            target = ""
        if not isinstance(target, str):
            err("action.target_system", "must be a string")
        args = action.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            err("action.args", f"must be an object, got {_json_type(args)}")
    return {"action_name": name, "target_system": target, "args": args}


def _read_confidence(data: Mapping[str, Any], err: _Err) -> dict[str, Any]:
    confidence = data.get("confidence")
    if confidence is not None and (not _is_number(confidence) or not 0 <= confidence <= 1):
        err("confidence", f"must be a number between 0 and 1, got {_show_input(confidence)}")
    return {"confidence": confidence}


def _read_cost(data: Mapping[str, Any], err: _Err) -> dict[str, Any]:
    cost = data.get("estimated_cost_usd")
    if cost is None:
        return {"estimated_cost_usd": None}
    value = to_decimal(cost)
    if value is None or value < 0:
        shown = _show_input(cost)
        err("estimated_cost_usd", f"must be a number of US dollars, 0 or more, got {shown}")
    return {"estimated_cost_usd": value}


def _read_audience(data: Mapping[str, Any], err: _Err) -> dict[str, Any]:
    audience = data.get("audience", DEFAULT_AUDIENCE)
    if audience not in AUDIENCES:
        err("audience", f"must be one of {', '.join(AUDIENCES)}, got {_show_input(audience)}")
    return {"audience": audience}


def _read_tenant(data: Mapping[str, Any], err: _Err) -> dict[str, Any]:
    tenant = data.get("tenant", "")
    if tenant is None:
        tenant = ""
    if not isinstance(tenant, str) or (tenant and not SLUG_RE.match(tenant)) or len(tenant) > 64:
        err(
            "tenant",
            f'must be a slug (lowercase letters, digits, - and _) or "", got {_show_input(tenant)}',
        )
    return {"tenant": tenant}


def _read_facts(data: Mapping[str, Any], err: _Err) -> dict[str, Any]:
    facts = data.get("facts", {})
    if facts is None:
        facts = {}
    if not isinstance(facts, Mapping):
        err("facts", f"must be an object of named values, got {_json_type(facts)}")
    else:
        for key, value in facts.items():
            if not isinstance(value, str | int | float | bool | Decimal) and value is not None:
                err(f"facts.{key}", "must be a string, number, boolean or null")
    return {"facts": facts}


_READERS: dict[str, Callable[[Mapping[str, Any], _Err], dict[str, Any]]] = {
    "action": _read_action,
    "confidence": _read_confidence,
    "estimated_cost_usd": _read_cost,
    "audience": _read_audience,
    "tenant": _read_tenant,
    "facts": _read_facts,
}


def parse_proposal(data: Any) -> Proposal:
    """Validate a proposal in its API shape and return a ``Proposal``; raises ProposalError.

    Shape: ``{"action": {"name", "target_system", "args"}, "confidence",
    "estimated_cost_usd", "audience", "tenant", "facts"}`` (see ``proposal_input``).
    Only ``action.name`` is required (a missing or null ``confidence`` or
    ``estimated_cost_usd`` is unknown); keys not listed are ignored (the API may carry
    evidence and content alongside).
    """
    if type(data) is dict:
        # Agents decide every tool call in process: the usual, well-formed proposal is read
        # without the readers' error bookkeeping; anything else takes the full path below.
        fast = _read_plain(data)
        if fast is not None:
            return fast
    if not isinstance(data, Mapping):
        raise ProposalError({"proposal": [f"must be a JSON object, got {_json_type(data)}"]})
    errors: dict[str, list[str]] = {}

    def err(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    values: dict[str, Any] = {}
    for key in POLICY_KEYS:
        values.update(_READERS[key](data, err))
    if errors:
        raise ProposalError(errors)
    return Proposal(
        action_name=values["action_name"].strip(),
        target_system=values["target_system"].strip(),
        args=dict(values["args"]),
        confidence=None if values["confidence"] is None else float(values["confidence"]),
        estimated_cost_usd=values["estimated_cost_usd"],
        audience=values["audience"],
        tenant=values["tenant"],
        facts=dict(values["facts"]),
    )


_PLAIN_NUMBER = (int, float)
_PLAIN_COST = (int, float, Decimal)
_PLAIN_FACT = (str, int, float, bool, Decimal, type(None))


@lru_cache(maxsize=1024)
def _float_decimal(value: float) -> Decimal | None:
    # An agent's costs repeat (one per tool); str() -> Decimal is most of reading one.
    return to_decimal(value)


def _read_plain(data: dict) -> Proposal | None:
    """``parse_proposal``'s result for a proposal of plain JSON types that the readers
    accept as is; None when any key needs them (a wrong, missing-but-required or unusual
    value), so every error still comes from them. Tested equal on generated proposals."""
    action = data.get("action")
    if type(action) is not dict:
        return None
    name, target, args = action.get("name"), action.get("target_system", ""), action.get("args", {})
    if type(name) is not str or not name.strip() or len(name) > MAX_ACTION_NAME:
        return None
    if type(target) is not str or type(args) is not dict:
        return None
    confidence = data.get("confidence")
    if confidence is not None and (
        type(confidence) not in _PLAIN_NUMBER or not 0 <= confidence <= 1
    ):
        return None
    cost = data.get("estimated_cost_usd")
    if cost is not None:
        if type(cost) not in _PLAIN_COST:
            return None
        # Non-zero floats only: equal keys are then the same value (0.0 and -0.0 are not,
        # nor Decimal("0.01") and Decimal("0.0100")).
        cost = _float_decimal(cost) if type(cost) is float and cost else to_decimal(cost)
        if cost is None or cost < 0:
            return None
    audience = data.get("audience", DEFAULT_AUDIENCE)
    tenant = data.get("tenant", "")
    facts = data.get("facts", {})
    if audience not in AUDIENCES or type(tenant) is not str or type(facts) is not dict:
        return None
    if tenant and (len(tenant) > 64 or not SLUG_RE.match(tenant)):
        return None
    for value in facts.values():
        if type(value) not in _PLAIN_FACT:
            return None
    return Proposal(
        action_name=name.strip(),
        target_system=target.strip(),
        args=dict(args),
        confidence=None if confidence is None else float(confidence),
        estimated_cost_usd=cost,
        audience=audience,
        tenant=tenant,
        facts=dict(facts),
    )
