"""Rules as data: their vocabulary, their validation, and their compiled conditions.

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
not supplied or null, an amount that is not a number, a confidence or cost the agent did
not give) satisfies no operator but ``missing``: a rule never matches on information it
does not have.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from .proposal import AUDIENCES, SLUG_RE, _is_number, _json_type, _show_input, to_decimal

TOOL_TYPES = ("read", "write", "payment", "message", "permission", "deploy", "delete")
READ = "read"  # the one tool type that changes nothing
REVIEW_KINDS = ("approval", "edit", "escalation")
RISKS = ("low", "medium", "high", "critical")
OUTCOMES = ("auto_execute", "human_review", "request_clarification", "deny")
OPERATORS = ("=", "!=", "in", "not_in", "<", "<=", ">", ">=", "missing")

AUTO_EXECUTE = "auto_execute"
HUMAN_REVIEW = "human_review"
REQUEST_CLARIFICATION = "request_clarification"
DENY = "deny"

# What a policy does with an action missing from its catalogue (see .decide).
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
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
FACT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class RuleError(ValueError):
    """A rule that cannot be compiled; ``messages`` says what is wrong, one per line."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


# --- conditions ----------------------------------------------------------------------


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
    fld, op = _field_and_operator(condition)
    out: dict[str, Any] = {"field": fld, "op": op, **_name_and_path(condition, fld)}
    out["value"] = _condition_value(condition, fld, op)
    return out


def _field_and_operator(condition: Any) -> tuple[str, str]:
    """The condition's field and operator, once both are known and go together."""
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
    return fld, op


def _name_and_path(condition: Mapping[str, Any], fld: str) -> dict[str, str]:
    """A fact condition's name, and an amount condition's explicit path."""
    out = {}
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
    return out


def _condition_value(condition: Mapping[str, Any], fld: str, op: str) -> Any:
    if op == "missing":
        value = condition.get("value", True)
        if not isinstance(value, bool):
            raise RuleError([f"operator missing takes true or false, got {_show_input(value)}"])
        return value
    if "value" not in condition:
        raise RuleError([f'operator {op} needs a "value"'])
    value = condition["value"]
    kind = FIELDS[fld]
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleError([f"operator {op} needs a non-empty list, got {_show_input(value)}"])
        return [_validate_value(fld, kind, item, op) for item in value]
    return _validate_value(fld, kind, value, op)


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


def condition_action_names(conditions: Iterable[Mapping[str, Any]]) -> set[str]:
    """The action names a list of (validated) conditions mentions."""
    names: set[str] = set()
    for condition in conditions:
        if condition.get("field") == "action" and condition.get("op") != "missing":
            value = condition.get("value")
            names.update(value if isinstance(value, list) else [value])
    return names


# --- rules ---------------------------------------------------------------------------


def validate_rule(rule: Mapping[str, Any]) -> dict:
    """Check one rule (snapshot shape) and return it normalised; raises RuleError."""
    name, priority = rule.get("name"), rule.get("priority")
    messages = _identity_errors(name, priority)
    try:
        conditions = validate_conditions(rule.get("conditions", []))
    except RuleError as exc:
        messages.extend(exc.messages)
        conditions = []
    settings = {
        "outcome": rule.get("outcome"),
        "review_kind": rule.get("review_kind") or "",
        "queue": rule.get("queue") or "",
        "risk": rule.get("risk") or "medium",
        "required_approvals": rule.get("required_approvals", 1),
        "sla_minutes": rule.get("sla_minutes"),
    }
    messages.extend(_settings_errors(**settings))
    rate = rule.get("audit_sample_rate") or 0
    messages.extend(_audit_rate_errors(rate, settings["outcome"]))
    if messages:
        raise RuleError(messages)
    if isinstance(rate, float) and rate.is_integer():
        rate = int(rate)  # 1 and 1.0 are one rule, as in conditions
    return {
        "name": name,
        "priority": priority,
        "description": str(rule.get("description") or ""),
        "conditions": conditions,
        **settings,
        # Written only when set, so the versions published before it existed keep their hash.
        **({"audit_sample_rate": rate} if rate else {}),
    }


def _audit_rate_errors(rate: Any, outcome: Any) -> list[str]:
    """What is wrong with a rule's audit sample rate (the share of auto-executions audited)."""
    if not _is_number(rate) or not 0 <= rate <= 1:
        return [f"audit sample rate must be a number between 0 and 1, got {_show_input(rate)}"]
    if rate and outcome in OUTCOMES and outcome != AUTO_EXECUTE:
        return [f"audit sample rate only applies to auto_execute, not {outcome}"]
    return []


def _identity_errors(name: Any, priority: Any) -> list[str]:
    messages = []
    if not isinstance(name, str) or not SLUG_RE.match(name) or len(name) > 80:
        messages.append(f"name must be a slug of at most 80 characters, got {_show_input(name)}")
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
        messages.append(f"priority must be a whole number, 0 or more, got {_show_input(priority)}")
    return messages


def _settings_errors(
    *,
    outcome: Any,
    review_kind: Any,
    queue: Any,
    risk: Any,
    required_approvals: Any,
    sla_minutes: Any,
) -> list[str]:
    """What is wrong with a rule's outcome and the review settings that go with it."""
    approvals, sla = required_approvals, sla_minutes
    messages = []
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
    return messages


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: equal content, equal text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# --- compiled rules ------------------------------------------------------------------


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
    audit_sample_rate: float = 0


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
        audit_sample_rate=rule.get("audit_sample_rate", 0),
    )
