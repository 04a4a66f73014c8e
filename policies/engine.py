"""The policy engine: compiled rules + a proposal -> a decision. Pure Python, no I/O.

Nothing here touches the database, the clock, randomness or Django: the same compiled
policy and the same proposal always give the same decision, so any past decision can be
replayed from the policy version it names.

Snapshot (what a published ``PolicyVersion`` freezes, and what ``content_hash`` hashes)::

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
         "required_approvals": 1, "sla_minutes": null},
      ],
      "catalogue": {                              # the action types, as they were at publish
        "issue_refund": {"tool_type": "payment", "target_system": "billing",
                         "reversible": false, "default_review_kind": "approval",
                         "amount_path": "amount"},
      },
      "unknown_action": "deny",                   # what an action missing from the
                                                  # catalogue gets; absent = "escalate"
    }

Conditions are data, never code. Each is one JSON object::

    {"field": "action", "op": "in", "value": ["send_email", "issue_refund"]}
    {"field": "tool_type", "op": "=", "value": "payment"}
    {"field": "confidence", "op": "<", "value": 0.7}
    {"field": "estimated_cost_usd", "op": ">", "value": 5}
    {"field": "amount", "op": ">", "value": 500}          # args at the action's amount_path
    {"field": "amount", "path": "refund.total", "op": ">=", "value": "1000.00"}
    {"field": "fact", "name": "refund_window_valid", "op": "=", "value": false}
    {"field": "fact", "name": "customer_tier", "op": "missing"}      # value defaults to true
    {"field": "reversible", "op": "=", "value": false}

Fields: ``action``, ``tool_type``, ``target_system``, ``audience``, ``tenant`` (text);
``confidence``, ``estimated_cost_usd``, ``amount`` (numbers; money is compared as Decimal);
``reversible`` (boolean, from the catalogue); ``fact`` (a named fact supplied with the
proposal: a string, number, boolean or null). Operators: ``=``, ``!=``, ``in``,
``not_in`` (value is a list), ``<``, ``<=``, ``>``, ``>=`` (numbers only), ``missing``
(value true or false). A value that is absent (an unknown action has no tool type, a fact
not supplied or null, an amount that is not a number) satisfies no operator but
``missing``: a rule never matches on information it does not have.

Safety rules that no policy can switch off: when nothing matches, a person reviews the
action in the default queue; an action missing from the catalogue, or proposed for a
target system other than the catalogue's, is never auto-executed (a matching
``auto_execute`` rule becomes a ``human_review``).

An action missing from the catalogue is never approved by a plain reviewer either. What
happens to it is the policy's ``unknown_action`` setting: ``deny`` refuses it outright,
with the reason; ``escalate`` lets the rules route it as usual, but every review it gets
says ``escalate_to: "queue_owner"``: only the queue's owner (or a superuser) may approve
or edit it, because nobody vetted what it does.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

SNAPSHOT_FORMAT = 1

TOOL_TYPES = ("read", "write", "payment", "message", "permission", "deploy", "delete")
REVIEW_KINDS = ("approval", "edit", "escalation")
RISKS = ("low", "medium", "high", "critical")
AUDIENCES = ("internal", "external")
OUTCOMES = ("auto_execute", "human_review", "request_clarification", "deny")
OPERATORS = ("=", "!=", "in", "not_in", "<", "<=", ">", ">=", "missing")

AUTO_EXECUTE = "auto_execute"
HUMAN_REVIEW = "human_review"
REQUEST_CLARIFICATION = "request_clarification"
DENY = "deny"

# What a policy does with an action missing from its catalogue (see the module docstring).
UNKNOWN_ESCALATE = "escalate"
UNKNOWN_DENY = "deny"
UNKNOWN_ACTIONS = (UNKNOWN_ESCALATE, UNKNOWN_DENY)
QUEUE_OWNER = "queue_owner"

_TEXT, _NUMBER, _BOOL, _ANY = "text", "number", "boolean", "any"
FIELDS: dict[str, str] = {
    "action": _TEXT,
    "tool_type": _TEXT,
    "target_system": _TEXT,
    "audience": _TEXT,
    "tenant": _TEXT,
    "confidence": _NUMBER,
    "estimated_cost_usd": _NUMBER,
    "amount": _NUMBER,
    "reversible": _BOOL,
    "fact": _ANY,
}
_OPERATORS_BY_KIND = {
    _TEXT: ("=", "!=", "in", "not_in", "missing"),
    _NUMBER: OPERATORS,
    _BOOL: ("=", "!=", "missing"),
    _ANY: OPERATORS,
}
_ENUMS = {"tool_type": TOOL_TYPES, "audience": AUDIENCES}
_MONEY_FIELDS = ("estimated_cost_usd", "amount")

MAX_REQUIRED_APPROVALS = 5
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
FACT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class RuleError(ValueError):
    """A rule that cannot be compiled; ``messages`` says what is wrong, one per line."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


class ProposalError(ValueError):
    """A proposal that cannot be evaluated; ``errors`` maps a field path to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {m}" for k, ms in errors.items() for m in ms))
        self.errors = errors


# --- proposals -----------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """One proposed action as the engine sees it (build it with ``parse_proposal``)."""

    action_name: str
    target_system: str
    args: dict
    confidence: float
    estimated_cost_usd: Decimal | float
    audience: str = "internal"
    tenant: str = ""
    facts: dict = field(default_factory=dict)


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


def parse_proposal(data: Any) -> Proposal:
    """Validate a proposal in its API shape and return a ``Proposal``; raises ProposalError.

    Shape: ``{"action": {"name", "target_system", "args"}, "confidence",
    "estimated_cost_usd", "audience", "tenant", "facts"}``. ``action.name``,
    ``confidence`` and ``estimated_cost_usd`` are required; keys not listed are ignored
    (the API may carry evidence and content alongside).
    """
    errors: dict[str, list[str]] = {}

    def err(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    if not isinstance(data, Mapping):
        raise ProposalError({"proposal": [f"must be a JSON object, got {_json_type(data)}"]})

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
        elif len(name) > 100:
            err("action.name", "must be at most 100 characters")
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

    confidence = data.get("confidence")
    if confidence is None:
        err("confidence", "is required: a number between 0 and 1")
    elif not _is_number(confidence) or not 0 <= confidence <= 1:
        err("confidence", f"must be a number between 0 and 1, got {_show_input(confidence)}")

    cost = data.get("estimated_cost_usd")
    cost_value = None
    if cost is None:
        err("estimated_cost_usd", "is required: a number of US dollars, 0 or more")
    else:
        cost_value = to_decimal(cost) if not isinstance(cost, bool) else None
        if cost_value is None or cost_value < 0:
            err(
                "estimated_cost_usd",
                f"must be a number of US dollars, 0 or more, got {_show_input(cost)}",
            )

    audience = data.get("audience", "internal")
    if audience not in AUDIENCES:
        err("audience", f"must be one of {', '.join(AUDIENCES)}, got {_show_input(audience)}")

    tenant = data.get("tenant", "")
    if tenant is None:
        tenant = ""
    if not isinstance(tenant, str) or (tenant and not SLUG_RE.match(tenant)) or len(tenant) > 64:
        err(
            "tenant",
            f'must be a slug (lowercase letters, digits, - and _) or "", got {_show_input(tenant)}',
        )

    facts = data.get("facts", {})
    if facts is None:
        facts = {}
    if not isinstance(facts, Mapping):
        err("facts", f"must be an object of named values, got {_json_type(facts)}")
    else:
        for key, value in facts.items():
            if not isinstance(value, str | int | float | bool | Decimal) and value is not None:
                err(f"facts.{key}", "must be a string, number, boolean or null")

    if errors:
        raise ProposalError(errors)
    return Proposal(
        action_name=name.strip(),
        target_system=target.strip(),
        args=dict(args),
        confidence=float(confidence),
        estimated_cost_usd=cost_value,
        audience=audience,
        tenant=tenant,
        facts=dict(facts),
    )


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


# --- rule validation -----------------------------------------------------------------


def validate_conditions(conditions: Any) -> list[dict]:
    """Check a rule's conditions and return them normalised; raises RuleError."""
    if conditions is None:
        return []
    if not isinstance(conditions, list):
        raise RuleError([f"conditions must be a list of objects, got {_json_type(conditions)}"])
    messages: list[str] = []
    normalised = []
    for index, condition in enumerate(conditions, start=1):
        try:
            normalised.append(_validate_condition(condition))
        except RuleError as exc:
            messages.extend(f"condition {index}: {m}" for m in exc.messages)
    if messages:
        raise RuleError(messages)
    return normalised


def _validate_condition(condition: Any) -> dict:
    if not isinstance(condition, Mapping):
        raise RuleError(
            [
                f'must be an object like {{"field": ..., "op": ..., "value": ...}}'
                f", got {_json_type(condition)}"
            ]
        )
    fld = condition.get("field")
    if fld not in FIELDS:
        raise RuleError([f"unknown field {_show_input(fld)}; known fields: {', '.join(FIELDS)}"])
    kind = FIELDS[fld]
    allowed_keys = (
        {"field", "op", "value"}
        | ({"name"} if fld == "fact" else set())
        | ({"path"} if fld == "amount" else set())
    )
    extra = sorted(set(condition) - allowed_keys)
    if extra:
        raise RuleError(
            [
                f"unknown key(s) {', '.join(extra)} for field {fld}; allowed: "
                f"{', '.join(sorted(allowed_keys))}"
            ]
        )
    op = condition.get("op")
    if op not in OPERATORS:
        raise RuleError(
            [f"unknown operator {_show_input(op)}; known operators: {', '.join(OPERATORS)}"]
        )
    if op not in _OPERATORS_BY_KIND[kind]:
        raise RuleError(
            [
                f"operator {op} does not apply to {fld} ({kind}); use one of "
                f"{', '.join(_OPERATORS_BY_KIND[kind])}"
            ]
        )
    out: dict[str, Any] = {"field": fld, "op": op}
    if fld == "fact":
        name = condition.get("name")
        if not isinstance(name, str) or not FACT_NAME_RE.match(name):
            raise RuleError(
                [
                    'a fact condition needs a "name" (letters, digits, _ . -), got '
                    f"{_show_input(name)}"
                ]
            )
        out["name"] = name
    if fld == "amount" and "path" in condition:
        path = condition["path"]
        if not isinstance(path, str) or not PATH_RE.match(path):
            raise RuleError(
                [
                    f'path must be a dotted argument path like "refund.total", got '
                    f"{_show_input(path)}"
                ]
            )
        out["path"] = path

    if op == "missing":
        value = condition.get("value", True)
        if not isinstance(value, bool):
            raise RuleError([f"operator missing takes true or false, got {_show_input(value)}"])
        out["value"] = value
        return out
    if "value" not in condition:
        raise RuleError([f'operator {op} needs a "value"'])
    value = condition["value"]
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleError([f"operator {op} needs a non-empty list, got {_show_input(value)}"])
        out["value"] = [_validate_value(fld, kind, item, op) for item in value]
    else:
        out["value"] = _validate_value(fld, kind, value, op)
    return out


def _validate_value(fld: str, kind: str, value: Any, op: str) -> Any:
    label = f"{fld} {op}"
    if op in ("<", "<=", ">", ">=") or kind == _NUMBER:
        number_ok = _is_number(value) or (
            fld in _MONEY_FIELDS and isinstance(value, str) and to_decimal(value) is not None
        )
        if not number_ok:
            raise RuleError([f"{label} needs a number, got {_show_input(value)}"])
        if isinstance(value, float) and (value != value or value in (float("inf"), -float("inf"))):
            raise RuleError([f"{label} needs a finite number"])
        if fld == "confidence" and not 0 <= value <= 1:
            raise RuleError([f"{label} needs a number between 0 and 1, got {value}"])
        if isinstance(value, float) and value.is_integer():
            # 500 and 500.0 are one rule: keep the content hash blind to the spelling.
            return int(value)
        return value
    if kind == _TEXT:
        if not isinstance(value, str):
            raise RuleError([f"{label} needs a string, got {_show_input(value)}"])
        if fld in _ENUMS and value not in _ENUMS[fld]:
            raise RuleError(
                [f"{label}: {_show_input(value)} is not one of {', '.join(_ENUMS[fld])}"]
            )
        return value
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise RuleError([f"{label} needs true or false, got {_show_input(value)}"])
        return value
    if value is not None and not isinstance(value, str | int | float | bool):
        raise RuleError(
            [f"{label} needs a string, number, boolean or null, got {_show_input(value)}"]
        )
    return value


def validate_rule(rule: Mapping[str, Any]) -> dict:
    """Check one rule (snapshot shape) and return it normalised; raises RuleError."""
    messages: list[str] = []
    name = rule.get("name")
    if not isinstance(name, str) or not SLUG_RE.match(name) or len(name) > 80:
        messages.append(f"name must be a slug of at most 80 characters, got {_show_input(name)}")
    priority = rule.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
        messages.append(f"priority must be a whole number, 0 or more, got {_show_input(priority)}")
    try:
        conditions = validate_conditions(rule.get("conditions", []))
    except RuleError as exc:
        messages.extend(exc.messages)
        conditions = []
    outcome = rule.get("outcome")
    review_kind = rule.get("review_kind") or ""
    queue = rule.get("queue") or ""
    risk = rule.get("risk") or "medium"
    approvals = rule.get("required_approvals", 1)
    sla = rule.get("sla_minutes")
    if outcome not in OUTCOMES:
        messages.append(f"outcome must be one of {', '.join(OUTCOMES)}, got {_show_input(outcome)}")
    if review_kind and review_kind not in REVIEW_KINDS:
        messages.append(
            f"review kind must be one of {', '.join(REVIEW_KINDS)} or empty, got "
            f"{_show_input(review_kind)}"
        )
    if risk not in RISKS:
        messages.append(f"risk must be one of {', '.join(RISKS)}, got {_show_input(risk)}")
    if queue and (not isinstance(queue, str) or not SLUG_RE.match(queue)):
        messages.append(f"queue must be a slug, got {_show_input(queue)}")
    if (
        not isinstance(approvals, int)
        or isinstance(approvals, bool)
        or not (1 <= approvals <= MAX_REQUIRED_APPROVALS)
    ):
        messages.append(
            f"required approvals must be between 1 and {MAX_REQUIRED_APPROVALS}, "
            f"got {_show_input(approvals)}"
        )
    if sla is not None and (not isinstance(sla, int) or isinstance(sla, bool) or sla < 1):
        messages.append(
            f"SLA override must be a positive number of minutes, got {_show_input(sla)}"
        )
    if outcome in OUTCOMES and outcome != HUMAN_REVIEW:
        # Review settings on a rule that never creates a review would be read as in force.
        ignored = [
            label
            for label, set_ in (
                ("review kind", bool(review_kind)),
                ("queue", bool(queue)),
                ("required approvals", approvals != 1),
                ("SLA override", sla is not None),
            )
            if set_
        ]
        if ignored:
            messages.append(f"{', '.join(ignored)} only apply to human_review, not {outcome}")
    if messages:
        raise RuleError(messages)
    return {
        "name": name,
        "priority": priority,
        "description": str(rule.get("description") or ""),
        "conditions": conditions,
        "outcome": outcome,
        "review_kind": review_kind,
        "queue": queue,
        "risk": risk,
        "required_approvals": approvals,
        "sla_minutes": sla,
    }


def condition_action_names(conditions: Iterable[Mapping[str, Any]]) -> set[str]:
    """The action names a list of (validated) conditions mentions."""
    names: set[str] = set()
    for condition in conditions:
        if condition.get("field") == "action" and condition.get("op") != "missing":
            value = condition.get("value")
            names.update(value if isinstance(value, list) else [value])
    return names


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
    seen_names: dict[str, int] = {}
    seen_priorities: dict[int, str] = {}
    for rule in normalised:
        if rule["name"] in seen_names:
            messages.append(f"two rules are named {rule['name']!r}")
        seen_names[rule["name"]] = rule["priority"]
        if rule["priority"] in seen_priorities:
            messages.append(
                f"rules {seen_priorities[rule['priority']]!r} and {rule['name']!r} "
                f"share priority {rule['priority']}: the order must be explicit"
            )
        seen_priorities[rule["priority"]] = rule["name"]
    if messages:
        raise RuleError(messages)
    normalised.sort(key=lambda r: (r["priority"], r["name"]))
    return {
        "format": SNAPSHOT_FORMAT,
        "rules": normalised,
        "catalogue": {
            name: {
                "tool_type": entry["tool_type"],
                "target_system": entry.get("target_system") or "",
                "reversible": bool(entry.get("reversible")),
                "default_review_kind": entry.get("default_review_kind") or "approval",
                "amount_path": entry.get("amount_path") or "",
            }
            for name, entry in sorted(catalogue.items())
        },
        # Written only when it is not the default, so the versions published before the
        # setting existed (which escalate) keep their content hash.
        **({"unknown_action": unknown_action} if unknown_action != UNKNOWN_ESCALATE else {}),
    }


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: equal content, equal text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(snapshot: Mapping[str, Any]) -> str:
    """sha256 (hex) of the snapshot's canonical JSON: same content, same hash."""
    return hashlib.sha256(canonical_json(snapshot).encode("utf-8")).hexdigest()


# --- compiling -----------------------------------------------------------------------
#
# A compiled policy specialises itself per *situation*: the action, tenant, target
# system, audience and the names of the facts supplied. In one situation every condition
# on a static field (action, tool type, target system, reversibility, tenant, audience;
# a fact that is absent) is already true or false, so rules that cannot match drop out
# and the survivors keep only their tests on confidence, cost, amount and fact values.
# A rule left with no test gets its whole decision built in advance. The plans are
# cached per situation, so a decision costs a dict lookup and a few comparisons.


class Check(NamedTuple):
    """One named check in a decision: what was tested, whether it passed, what was seen."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class ActionInfo:
    """What the policy knows about one action type (frozen into the version)."""

    tool_type: str
    target_system: str
    reversible: bool
    default_review_kind: str
    amount_path: str


class _Condition(NamedTuple):
    field: str
    op: str
    value: Any  # typed for comparison: Decimal for money, float for confidence
    name: str  # the fact's name, else ""
    path: str  # an explicit amount path, else ""
    label: str  # "confidence < 0.7": the check's name
    subject: str  # "confidence": what the check's detail reports


class _Rule(NamedTuple):
    name: str
    priority: int
    description: str
    outcome: str
    review_kind: str
    queue: str
    risk: str
    required_approvals: int
    sla_minutes: int | None
    conditions: tuple[_Condition, ...]
    summary: str


_STATIC_FIELDS = frozenset(
    {"action", "tool_type", "target_system", "reversible", "tenant", "audience"}
)
_NUMERIC_OPS = ("<", "<=", ">", ">=")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _typed(fld: str, value: Any) -> Any:
    # Compare like with like: money as Decimal, confidence as float (both sides come from
    # the same decimal literal, so 0.7 < 0.7 is false, as a reader expects).
    if isinstance(value, list):
        return tuple(_typed(fld, v) for v in value)
    if fld in _MONEY_FIELDS:
        return to_decimal(value)
    if fld == "confidence":
        return float(value)
    if fld == "fact" and _is_number(value):
        return Decimal(str(value))
    return value


def _strict_eq(left: Any, right: Any) -> bool:
    # true == 1 in Python; in a policy a boolean fact and a number are different things.
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if _is_number(left) and _is_number(right):
        return to_decimal(left) == to_decimal(right)
    return left == right


def _holds(cond: _Condition, got: Any) -> bool:
    """Does the condition hold for this value (None = absent)? The one place that says so."""
    op, value = cond.op, cond.value
    if op == "missing":
        return (got is None) is value
    if got is None:
        return False
    if op in _NUMERIC_OPS:
        if cond.field == "fact":
            got = to_decimal(got) if _is_number(got) else None
            if got is None:
                return False
        return _COMPARE[op](got, value)
    if op == "=":
        return _strict_eq(got, value)
    if op == "!=":
        return not _strict_eq(got, value)
    found = any(_strict_eq(got, v) for v in value)
    return found if op == "in" else not found


def _compile_condition(cond: Mapping[str, Any]) -> _Condition:
    fld, op = cond["field"], cond["op"]
    name, path = cond.get("name", ""), cond.get("path", "")
    subject = f"fact {name}" if fld == "fact" else (f"amount at {path}" if path else fld)
    if op == "missing":
        label = f"{subject} missing" if cond["value"] else f"{subject} present"
    else:
        label = f"{subject} {op} {canonical_json(cond['value'])}"
    value = cond["value"] if op == "missing" else _typed(fld, cond["value"])
    return _Condition(fld, op, value, name, path, label, subject)


def _compile_rule(rule: Mapping[str, Any]) -> _Rule:
    conditions = tuple(_compile_condition(c) for c in rule["conditions"])
    summary = " and ".join(c.label for c in conditions) or "no conditions (matches everything)"
    return _Rule(
        name=rule["name"],
        priority=rule["priority"],
        description=rule.get("description", ""),
        outcome=rule["outcome"],
        review_kind=rule.get("review_kind", ""),
        queue=rule.get("queue", ""),
        risk=rule.get("risk", "medium"),
        required_approvals=rule.get("required_approvals", 1),
        sla_minutes=rule.get("sla_minutes"),
        conditions=conditions,
        summary=summary,
    )


def _money(value: Any) -> Decimal | None:
    return value if value.__class__ is Decimal else to_decimal(value)


def _read_cost(p: Proposal) -> Decimal | None:
    cost = p.estimated_cost_usd
    return cost if cost.__class__ is Decimal else to_decimal(cost)


def _reader(cond: _Condition, amount_path: str) -> Callable[[Proposal], Any]:
    """How to read a dynamic condition's value from a proposal."""
    if cond.field == "confidence":
        return lambda p: p.confidence
    if cond.field == "estimated_cost_usd":
        return _read_cost
    if cond.field == "amount":
        path = cond.path or amount_path
        return lambda p: to_decimal(read_path(p.args, path))
    name = cond.name
    return lambda p: p.facts.get(name)


def _dynamic_test(cond: _Condition, read: Callable[[Proposal], Any]) -> Callable[[Proposal], bool]:
    # The common numeric comparisons get a closure of their own: they run on every decision.
    if cond.field != "fact" and cond.op in _NUMERIC_OPS:
        compare, value = _COMPARE[cond.op], cond.value
        if cond.field == "confidence":
            return lambda p: compare(p.confidence, value)
        if cond.field == "estimated_cost_usd":

            def cost_test(p):
                got = p.estimated_cost_usd
                if got.__class__ is not Decimal:
                    got = to_decimal(got)
                    if got is None:
                        return False
                return compare(got, value)

            return cost_test

        def test(p):
            got = read(p)
            return got is not None and compare(got, value)

        return test
    if cond.field == "fact" and cond.op in ("=", "!=") and cond.value.__class__ is bool:
        # Identity, not ==: a fact of 1 is not the boolean true.
        name, value = cond.name, cond.value
        if cond.op == "=":
            return lambda p: p.facts.get(name) is value
        return lambda p: (got := p.facts.get(name)) is not None and got is not value
    if cond.field == "fact" and cond.op == "=" and cond.value.__class__ is str:
        name, value = cond.name, cond.value
        return lambda p: p.facts.get(name) == value
    return lambda p: _holds(cond, read(p))


def _value_text(cond: _Condition, read: Callable[[Proposal], Any]) -> Callable[[Proposal], str]:
    """How a dynamic condition's value reads in its check's detail."""
    if cond.field == "confidence":
        return lambda p: str(p.confidence)
    if cond.field == "estimated_cost_usd":
        return lambda p: str(_money(p.estimated_cost_usd))
    return lambda p: _show(read(p))


def _decision_builder(head: dict[str, Any], checks: list[Any]) -> Callable[[Proposal], Any]:
    """A function making the decision of a matched rule whose checks show proposal values.

    ``checks`` holds Checks and (label, detail prefix, value text) for the dynamic ones.
    This runs once per such decision, so it avoids what costs there: the frozen
    dataclass __init__ (11 object.__setattr__ calls; filling __dict__ makes the same
    object) and NamedTuple's Python-level __new__.
    """
    new, make = object.__new__, tuple.__new__
    dynamic = [i for i, c in enumerate(checks) if c.__class__ is not Check]
    if len(dynamic) == 1:
        at = dynamic[0]
        before, after = tuple(checks[:at]), tuple(checks[at + 1 :])
        label, prefix, text = checks[at]

        def build(p):
            decision = new(PolicyDecision)
            fields = decision.__dict__
            fields.update(head)
            fields["checks"] = (*before, make(Check, (label, True, prefix + text(p))), *after)
            return decision

        return build
    template = tuple(checks)

    def build_many(p):
        decision = new(PolicyDecision)
        fields = decision.__dict__
        fields.update(head)
        fields["checks"] = tuple(
            [
                c if c.__class__ is Check else make(Check, (c[0], True, c[1] + c[2](p)))
                for c in template
            ]
        )
        return decision

    return build_many


class _Situation(NamedTuple):
    action: str
    tenant: str
    target: str
    audience: str
    fact_names: tuple[str, ...]


class _Step(NamedTuple):
    rule: _Rule | None  # None for a merged run
    tests: tuple[Callable[[Proposal], bool], ...]
    decision: PolicyDecision | None  # built in advance when no test remains
    build: Callable[[Proposal], PolicyDecision] | None  # else: makes it from the proposal


def _merge_runs(steps: list[_Step], single: list[tuple | None]) -> list[_Step]:
    """Fold consecutive steps that each test the same value into one step.

    Global guards come in runs ("cost above X" for several X, "fact tier = Y" for several
    Y); one step reads the value once and checks it against every rule of the run, in
    order, instead of one test call per rule. First match still wins: the order is kept.
    ``single[i]`` describes step i's only test: (what it reads, reader, compare, value)
    for a comparison of a number, (("fact=", name), reader, None, text) for a fact equal
    to a string, None otherwise.
    """
    merged: list[_Step] = []
    index = 0
    while index < len(steps):
        end = index
        while (
            end + 1 < len(steps)
            and single[index]
            and single[end + 1]
            and single[end + 1][0] == single[index][0]
        ):
            end += 1
        if end == index:
            merged.append(steps[index])
            index += 1
            continue
        run = range(index, end + 1)
        if single[index][0][0] == "fact=":
            merged.append(
                _equality_run(
                    [single[i][3] for i in run], [steps[i] for i in run], single[index][1]
                )
            )
        else:
            merged.append(_threshold_run([single[i] for i in run], [steps[i] for i in run]))
        index = end + 1
    return merged


def _equality_run(values: list[str], steps: list[_Step], read: Callable) -> _Step:
    table: dict[str, _Step] = {}
    for value, step in zip(values, steps, strict=True):
        table.setdefault(value, step)  # the first rule for a value wins

    def matches(p):
        got = read(p)
        return got.__class__ is str and got in table

    return _Step(None, (matches,), None, lambda p: table[read(p)].build(p))


def _threshold_run(tests: list[tuple], steps: list[_Step]) -> _Step:
    what, read = tests[0][0], tests[0][1]
    if what[0] == "estimated_cost_usd":
        read = _read_cost
    entries = tuple((t[2], t[3], step) for t, step in zip(tests, steps, strict=True))
    # "Some threshold is passed" needs only the loosest threshold per operator.
    loosest: dict[Callable, Any] = {}
    for compare, value, _ in entries:
        widest = min if compare in (operator.gt, operator.ge) else max
        loosest[compare] = widest(loosest[compare], value) if compare in loosest else value
    bounds = tuple(loosest.items())

    def matches(p):
        got = read(p)
        if got is None:
            return False
        for compare, value in bounds:  # noqa: SIM110 - any(<genexpr>) is slower here
            if compare(got, value):
                return True
        return False

    def pick(p):
        got = read(p)
        for compare, value, step in entries:
            if compare(got, value):
                return step.build(p)
        raise AssertionError("pick() runs only after matches() held")

    return _Step(None, (matches,), None, pick)


class _Plan(NamedTuple):
    steps: tuple[_Step, ...]
    default: PolicyDecision


class CompiledPolicy:
    """A snapshot turned into rules, specialised and cached per situation (see above)."""

    _PLAN_CACHE_SIZE = 4096

    def __init__(self, snapshot: Mapping[str, Any], *, version: str | None, default_queue: str):
        if snapshot.get("format", SNAPSHOT_FORMAT) != SNAPSHOT_FORMAT:
            raise RuleError([f"unsupported snapshot format {snapshot.get('format')!r}"])
        self.version = version
        self.default_queue = default_queue
        # Absent means escalate (see build_snapshot).
        self.unknown_action = snapshot.get("unknown_action") or UNKNOWN_ESCALATE
        self.rules: tuple[_Rule, ...] = tuple(_compile_rule(r) for r in snapshot.get("rules", []))
        self.catalogue: dict[str, ActionInfo] = {
            name: ActionInfo(
                tool_type=entry["tool_type"],
                target_system=entry.get("target_system", ""),
                reversible=bool(entry.get("reversible")),
                default_review_kind=entry.get("default_review_kind") or "approval",
                amount_path=entry.get("amount_path", ""),
            )
            for name, entry in snapshot.get("catalogue", {}).items()
        }
        self._plans: dict[tuple, _Plan] = {}

    def plan(self, key: tuple) -> _Plan:
        """The rules that can still match in this situation, each with what is left to test."""
        found = self._plans.get(key)
        if found is None:
            found = self._build_plan(_Situation(*key))
            if len(self._plans) >= self._PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[key] = found
        return found

    def _build_plan(self, s: _Situation) -> _Plan:
        info = self.catalogue.get(s.action)
        target = s.target or (info.target_system if info else "")
        static = {
            "action": s.action,
            "tool_type": info.tool_type if info else None,
            "target_system": target or None,
            "reversible": info.reversible if info else None,
            "tenant": s.tenant,
            "audience": s.audience,
        }
        if info is None:
            known = Check(
                "known_action_type",
                False,
                f"{s.action} is not in the action catalogue of this policy version",
            )
            target_ok = Check("target_system_matches", False, "no catalogue entry to compare with")
        else:
            known = Check("known_action_type", True, f"{s.action} is a {info.tool_type} action")
            if not info.target_system or target == info.target_system:
                target_ok = Check("target_system_matches", True, f"target system {_show(target)}")
            else:
                target_ok = Check(
                    "target_system_matches",
                    False,
                    f"target system {_show(target)} is not the catalogue's "
                    f"{_show(info.target_system)}",
                )
        if info is None and self.unknown_action == UNKNOWN_DENY:
            # Before any rule: no rule may route what the policy refuses to know.
            return _Plan((), _unknown_denied(self, s.action, known, target_ok))
        amount_path = info.amount_path if info else ""
        present = set(s.fact_names)

        steps: list[_Step] = []
        single: list[tuple | None] = []  # see _merge_runs
        for rule in self.rules:
            tests: list[Callable[[Proposal], bool]] = []
            compared: list[tuple] = []
            checks: list[Any] = [known, target_ok]
            possible = True
            for cond in rule.conditions:
                absent = (cond.field == "fact" and cond.name not in present) or (
                    cond.field == "amount" and not (cond.path or amount_path)
                )
                if cond.field in _STATIC_FIELDS:
                    got = static[cond.field]
                elif absent:
                    got = None
                else:
                    read = _reader(cond, amount_path)
                    tests.append(_dynamic_test(cond, read))
                    checks.append((cond.label, f"{cond.subject} is ", _value_text(cond, read)))
                    if cond.field != "fact" and cond.op in _NUMERIC_OPS:
                        what = (cond.field, cond.path or amount_path)
                        compared.append((what, read, _COMPARE[cond.op], cond.value))
                    elif cond.field == "fact" and cond.op == "=" and cond.value.__class__ is str:
                        compared.append((("fact=", cond.name), read, None, cond.value))
                    continue
                if not _holds(cond, got):
                    possible = False
                    break
                checks.append(Check(cond.label, True, f"{cond.subject} is {_show(got)}"))
            if not possible:
                continue
            head = _decision_fields(self, rule, info, known, target_ok, s.action)
            if tests:
                steps.append(_Step(rule, tuple(tests), None, _decision_builder(head, checks)))
            else:
                steps.append(_Step(rule, (), PolicyDecision(**head, checks=tuple(checks)), None))
            single.append(compared[0] if len(tests) == 1 == len(compared) else None)
            if not tests:
                break  # this rule always matches here: nothing after it can decide

        kind = info.default_review_kind if info else "approval"
        default = PolicyDecision(
            outcome=HUMAN_REVIEW,
            rule=None,
            rule_priority=None,
            policy_version=self.version,
            risk="medium" if info else "high",
            review_kind=kind,
            queue=self.default_queue,
            required_approvals=1,
            sla_minutes=None,
            checks=(known, target_ok),
            explanation=f"No rule matched, so a person decides: {_KIND_TEXT[kind]} review in "
            f"queue {self.default_queue!r} (nothing executes by default)."
            + ("" if info else " " + owner_only_text(s.action)),
            escalate_to=None if info else QUEUE_OWNER,
        )
        return _Plan(tuple(_merge_runs(steps, single)), default)


def compile_policy(
    snapshot: Mapping[str, Any], *, version: str | None = None, default_queue: str = "operations"
) -> CompiledPolicy:
    """Compile a snapshot (validated again: a snapshot may come from anywhere)."""
    rules = snapshot.get("rules", [])
    checked = build_snapshot(
        rules,
        snapshot.get("catalogue", {}),
        unknown_action=snapshot.get("unknown_action") or UNKNOWN_ESCALATE,
    )
    return CompiledPolicy(checked, version=version, default_queue=default_queue)


_cache: OrderedDict[tuple[str, str], CompiledPolicy] = OrderedDict()
_cache_lock = threading.Lock()  # web and worker threads share it; LRU moves are not atomic
_CACHE_SIZE = 32


def compiled_for(
    version: str, snapshot_loader: Callable[[], Mapping[str, Any]], *, default_queue: str
) -> CompiledPolicy:
    """The compiled policy for a version hash, compiling (and loading) only on a miss."""
    key = (version, default_queue)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    # Compiled outside the lock: two threads may both compile a new version once, harmlessly.
    found = compile_policy(snapshot_loader(), version=version, default_queue=default_queue)
    with _cache_lock:
        _cache[key] = found
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return found


# --- deciding ------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyDecision:
    """What the policy decided about one proposal, and why, in replayable form."""

    outcome: str
    rule: str | None
    rule_priority: int | None
    policy_version: str | None
    risk: str
    review_kind: str | None
    queue: str | None
    required_approvals: int
    sla_minutes: int | None
    checks: tuple[Check, ...]
    explanation: str
    # QUEUE_OWNER: only the queue's owner (or a superuser) may approve or edit the review.
    escalate_to: str | None = None

    @property
    def needs_review(self) -> bool:
        return self.outcome == HUMAN_REVIEW

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (Decimals become strings)."""
        return {
            "outcome": self.outcome,
            "rule": self.rule,
            "rule_priority": self.rule_priority,
            "policy_version": self.policy_version,
            "risk": self.risk,
            "review_kind": self.review_kind,
            "queue": self.queue,
            "required_approvals": self.required_approvals,
            "sla_minutes": self.sla_minutes,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
            "explanation": self.explanation,
            "escalate_to": self.escalate_to,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyDecision:
        """Rebuild a decision from ``to_dict()`` output (e.g. a stored snapshot)."""
        return cls(
            outcome=data["outcome"],
            rule=data.get("rule"),
            rule_priority=data.get("rule_priority"),
            policy_version=data.get("policy_version"),
            risk=data["risk"],
            review_kind=data.get("review_kind"),
            queue=data.get("queue"),
            required_approvals=data.get("required_approvals", 0),
            sla_minutes=data.get("sla_minutes"),
            checks=tuple(
                Check(c["name"], c["passed"], c["detail"]) for c in data.get("checks", [])
            ),
            explanation=data.get("explanation", ""),
            escalate_to=data.get("escalate_to"),
        )


def _show(value: Any) -> str:
    if value is None:
        return "missing"
    cls = value.__class__
    if cls is float or cls is Decimal or cls is int:
        return str(value)
    if cls is bool:
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_KIND_TEXT = {"approval": "an approval", "edit": "an edit", "escalation": "an escalation"}


def owner_only_text(action: str) -> str:
    """Why a review of an action the catalogue does not know is the queue owner's to pass."""
    return f"{action} is not in the action catalogue: only the queue owner may approve it."


def _unknown_denied(
    compiled: CompiledPolicy, action: str, known: Check, target_ok: Check
) -> PolicyDecision:
    return PolicyDecision(
        outcome=DENY,
        rule=None,
        rule_priority=None,
        policy_version=compiled.version,
        risk="high",
        review_kind=None,
        queue=None,
        required_approvals=0,
        sla_minutes=None,
        checks=(known, target_ok),
        explanation=f"{action} is not in the action catalogue of this policy version, and "
        "this policy denies actions it does not know. Add it to the catalogue and publish "
        "the policy again to have it reviewed.",
    )


def _decision_fields(
    compiled: CompiledPolicy,
    rule: _Rule,
    info: ActionInfo | None,
    known: Check,
    target_ok: Check,
    action: str,
) -> dict[str, Any]:
    """Everything a rule's decision says except its checks (which may need the values)."""
    head = f"Rule {rule.name!r} (priority {rule.priority}) matched: {rule.summary}"
    if rule.description:
        head = f"{head} ({rule.description})"
    base = {"rule": rule.name, "rule_priority": rule.priority, "policy_version": compiled.version}
    # Reached only when the policy escalates unknown actions (deny stops before the rules).
    owner_only = {"escalate_to": QUEUE_OWNER if info is None else None}
    owner_text = f" {owner_only_text(action)}" if info is None else ""
    outcome = rule.outcome
    if outcome == AUTO_EXECUTE and not (known.passed and target_ok.passed):
        # The catalogue is the list of what may ever run unattended; anything else waits.
        reason = known.detail if not known.passed else target_ok.detail
        return {
            **base,
            "outcome": HUMAN_REVIEW,
            "risk": "high",
            "review_kind": "approval",
            "queue": compiled.default_queue,
            "required_approvals": 1,
            "sla_minutes": None,
            "explanation": f"{head}. It would auto-execute, but {reason}: an approval "
            f"review in queue {compiled.default_queue!r} instead.{owner_text}",
            **owner_only,
        }
    if outcome == HUMAN_REVIEW:
        kind = rule.review_kind or (info.default_review_kind if info else "approval")
        queue = rule.queue or compiled.default_queue
        approvals = rule.required_approvals
        people = "one approval" if approvals == 1 else f"{approvals} distinct approvers"
        tail = f"{_KIND_TEXT[kind]} review in queue {queue!r}, risk {rule.risk}, {people}"
        if rule.sla_minutes:
            tail = f"{tail}, SLA {rule.sla_minutes} min"
        return {
            **base,
            "outcome": outcome,
            "risk": rule.risk,
            "review_kind": kind,
            "queue": queue,
            "required_approvals": approvals,
            "sla_minutes": rule.sla_minutes,
            "explanation": f"{head}. Outcome: {tail}.{owner_text}",
            **owner_only,
        }
    return {
        **base,
        "outcome": outcome,
        "risk": rule.risk,
        "review_kind": None,
        "queue": None,
        "required_approvals": 0,
        "sla_minutes": None,
        "explanation": f"{head}. Outcome: {outcome}.",
        "escalate_to": None,
    }


def evaluate(compiled: CompiledPolicy, proposal: Proposal) -> PolicyDecision:
    """Decide a proposal: the first rule (by priority) whose conditions all hold wins."""
    facts = proposal.facts
    key = (
        proposal.action_name,
        proposal.tenant,
        proposal.target_system,
        proposal.audience,
        tuple(facts) if facts else (),
    )
    plan = compiled._plans.get(key) or compiled.plan(key)
    for step in plan.steps:
        for test in step.tests:
            if not test(proposal):
                break
        else:
            if step.decision is not None:
                return step.decision
            return step.build(proposal)
    return plan.default
