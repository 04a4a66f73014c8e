"""Compiling a snapshot into per-situation plans, and the cache of compiled policies.

A compiled policy specialises itself per *situation*: the action, tenant, target system,
audience and the names of the facts supplied. In one situation every condition on a
static field (action, tool type, target system, reversibility, tenant, audience; a fact
that is absent) is already true or false, so rules that cannot match drop out and the
survivors keep only their tests on confidence, cost, amount and fact values. A rule left
with no test gets its whole decision built in advance. The plans are cached per
situation, so a decision costs a dict lookup and a few comparisons.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from .decide import (
    Check,
    PolicyDecision,
    _decision_builder,
    _decision_fields,
    _show,
    _unknown_denied,
    _unmatched,
)
from .proposal import Proposal, read_path, to_decimal
from .rules import (
    _COMPARE,
    _NUMERIC_OPS,
    UNKNOWN_DENY,
    UNKNOWN_ESCALATE,
    RuleError,
    _compile_rule,
    _Condition,
    _holds,
    _Rule,
)
from .snapshot import SNAPSHOT_FORMAT, ActionInfo, build_snapshot

_STATIC_FIELDS = frozenset(
    {"action", "tool_type", "target_system", "reversible", "tenant", "audience"}
)


# --- reading a proposal's dynamic values ---------------------------------------------


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
            # Unknown (None) holds no comparison.
            return lambda p: (got := p.confidence) is not None and compare(got, value)
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


# --- plans ---------------------------------------------------------------------------


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


class _Remaining(NamedTuple):
    """What is left of a rule in one situation once its static conditions held."""

    tests: list[Callable[[Proposal], bool]]
    checks: list[Any]  # Checks, and (label, detail prefix, value text) for the tests
    single: tuple | None  # its only test, described for _merge_runs


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


def _catalogue_checks(action: str, info: ActionInfo | None, target: str) -> tuple[Check, Check]:
    """Is the action in the catalogue, and proposed for the catalogue's target system?"""
    if info is None:
        known = Check(
            "known_action_type",
            False,
            f"{action} is not in the action catalogue of this policy version",
        )
        return known, Check("target_system_matches", False, "no catalogue entry to compare with")
    known = Check("known_action_type", True, f"{action} is a {info.tool_type} action")
    if not info.target_system or target == info.target_system:
        return known, Check("target_system_matches", True, f"target system {_show(target)}")
    return known, Check(
        "target_system_matches",
        False,
        f"target system {_show(target)} is not the catalogue's {_show(info.target_system)}",
    )


def _remaining(
    rule: _Rule,
    static: Mapping[str, Any],
    present: set[str],
    amount_path: str,
    checks: list[Any],
) -> _Remaining | None:
    """Settle a rule's static conditions; None when one fails (the rule cannot match)."""
    tests: list[Callable[[Proposal], bool]] = []
    compared: list[tuple] = []
    checks = list(checks)
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
            # The value as the check's detail shows it ("missing" for an unknown one).
            checks.append((cond.label, f"{cond.subject} is ", lambda p, read=read: _show(read(p))))
            if cond.field != "fact" and cond.op in _NUMERIC_OPS:
                what = (cond.field, cond.path or amount_path)
                compared.append((what, read, _COMPARE[cond.op], cond.value))
            elif cond.field == "fact" and cond.op == "=" and cond.value.__class__ is str:
                compared.append((("fact=", cond.name), read, None, cond.value))
            continue
        if not _holds(cond, got):
            return None
        checks.append(Check(cond.label, True, f"{cond.subject} is {_show(got)}"))
    single = compared[0] if len(tests) == 1 == len(compared) else None
    return _Remaining(tests, checks, single)


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
        known, target_ok = _catalogue_checks(s.action, info, target)
        if info is None and self.unknown_action == UNKNOWN_DENY:
            # Before any rule: no rule may route what the policy refuses to know.
            return _Plan((), _unknown_denied(self, s.action, known, target_ok))
        static = {
            "action": s.action,
            "tool_type": info.tool_type if info else None,
            "target_system": target or None,
            "reversible": info.reversible if info else None,
            "tenant": s.tenant,
            "audience": s.audience,
        }
        amount_path = info.amount_path if info else ""
        present = set(s.fact_names)
        steps: list[_Step] = []
        single: list[tuple | None] = []  # see _merge_runs
        for rule in self.rules:
            left = _remaining(rule, static, present, amount_path, [known, target_ok])
            if left is None:
                continue
            head = _decision_fields(self, rule, info, known, target_ok, s.action)
            if left.tests:
                build = _decision_builder(head, left.checks)
                steps.append(_Step(rule, tuple(left.tests), None, build))
            else:
                decision = PolicyDecision(**head, checks=tuple(left.checks))
                steps.append(_Step(rule, (), decision, None))
            single.append(left.single)
            if not left.tests:
                break  # this rule always matches here: nothing after it can decide
        default = _unmatched(self, info, known, target_ok, s.action)
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
