"""B2: the policy engine against hand-written ifs, per decision.

``python -m bench.policy [--quick] [--all-generic]`` prints one JSON line:
``{"bench": "B2", "cost_ratio": ours/raw, "ours": .., "raw": .., "unit": "us/decision", "n": ..}``.

Ours: ``policies.engine.evaluate`` with a 200-rule policy: the seed's 7 rules placed after
193 others that never match the inputs, so every decision has to get past them. 120 of
them are for other actions and 60 for other tenants (the engine's per-situation plan
drops those once); 13 apply everywhere and are tested on every proposal: 5 on the
estimated cost, 8 on the value of a named fact that half the proposals carry.
``--all-generic`` makes all 193 of the everywhere kind: the worst case, where nothing can
be dropped in advance. Raw: ``approval_policy``, the seed's prose as plain ifs. Both see
the same parsed proposals, and the benchmark checks that they agree on every decision
before timing anything. No Django, no database.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from policies import engine
from policies.seed import SEED_ACTION_TYPES, SEED_RULES

WRITES = frozenset({"send_email", "issue_refund", "delete_record"})
TOTAL_RULES = 200


def approval_policy(proposal: engine.Proposal) -> tuple:
    """The seed policy's prose, hard-coded: (outcome, review kind, queue, approvals)."""
    action = proposal.action_name
    confidence = proposal.confidence
    if action == "issue_refund" and proposal.facts.get("refund_window_valid") is False:
        return ("deny", None, None, 0)
    if action == "issue_refund" and confidence < 0.7:
        amount = engine.to_decimal(proposal.args.get("amount"))
        if amount is not None and amount > 500:
            return ("human_review", "escalation", "operations", 1)
    if action == "change_permission":
        if confidence < 0.7:
            return ("human_review", "escalation", "access", 1)
        return ("human_review", "approval", "access", 2)
    if action == "draft_reply" and proposal.facts.get("topic") == "access":
        return ("human_review", "edit", "access", 1)
    if action in WRITES:
        return ("human_review", "approval", "operations", 1)
    if action == "draft_reply":
        return ("human_review", "edit", "operations", 1)
    if confidence < 0.7:
        return ("request_clarification", None, None, 0)
    if proposal.estimated_cost_usd > 5:
        return ("human_review", "approval", "operations", 1)
    if action == "search_docs":
        return ("auto_execute", None, None, 0)
    return ("human_review", "approval", "operations", 1)


def filler_rules(count: int, *, all_generic: bool) -> list[dict]:
    rules = []
    for i in range(count):
        scope = i % 13 if all_generic else i - 180
        if not all_generic and i < 120:
            conditions = [
                {"field": "action", "op": "=", "value": f"tool_{i:03d}"},
                {"field": "confidence", "op": "<", "value": 0.9},
            ]
        elif not all_generic and i < 180:
            conditions = [
                {"field": "tenant", "op": "=", "value": f"tenant-{i:03d}"},
                {"field": "amount", "op": ">", "value": 100 + i},
            ]
        elif all_generic:
            # Nothing to settle in advance: a cost or a string-valued fact to compare.
            conditions = (
                [{"field": "estimated_cost_usd", "op": ">", "value": 10_000 + i}]
                if scope < 5
                else [{"field": "fact", "name": "customer_tier", "op": "=", "value": f"tier-{i}"}]
            )
        elif scope < 5:
            conditions = [{"field": "estimated_cost_usd", "op": ">", "value": 10_000 + i}]
        else:
            conditions = [
                {"field": "fact", "name": f"account_frozen_{scope}", "op": "=", "value": True}
            ]
        rules.append(
            {
                "name": f"filler-{i:03d}",
                "priority": i + 1,
                "outcome": "deny",
                "risk": "high",
                "conditions": conditions,
            }
        )
    return rules


def build_policy(*, all_generic: bool) -> engine.CompiledPolicy:
    seed = [{**r, "priority": 1000 + r["priority"]} for r in SEED_RULES]
    rules = filler_rules(TOTAL_RULES - len(seed), all_generic=all_generic) + seed
    snapshot = engine.build_snapshot(rules, {a["name"]: a for a in SEED_ACTION_TYPES})
    return engine.compile_policy(snapshot, version=engine.content_hash(snapshot))


def proposals(n: int) -> list[engine.Proposal]:
    rng = random.Random(20240601)  # fixed: the same inputs on every run
    args = {
        "search_docs": lambda: {"query": "refund window"},
        "send_email": lambda: {"template_id": "t-1", "customer_id": "c-1"},
        "issue_refund": lambda: {
            "amount": rng.choice([20, "500", 500.01, "900.00"]),
            "currency": "EUR",
            "order_id": "o-1",
        },
        "delete_record": lambda: {"record_type": "contact", "record_id": "r-1"},
        "change_permission": lambda: {"user_id": "u", "permission": "admin", "change": "grant"},
        "draft_reply": lambda: {"ticket_id": "t", "content": "Hello"},
        "send_sms": lambda: {"to": "+100"},
    }
    names = ["search_docs"] * 4 + sorted(args)
    out = []
    for _ in range(n):
        name = rng.choice(names)
        out.append(
            engine.parse_proposal(
                {
                    "action": {"name": name, "args": args[name]()},
                    "confidence": rng.choice([0.4, 0.69, 0.7, 0.85, 0.96]),
                    "estimated_cost_usd": rng.choice([0, 0.02, 1, 5, 5.01, 12]),
                    "tenant": rng.choice(["", "acme", "globex"]),
                    "facts": rng.choice(
                        [
                            {},
                            {"refund_window_valid": True, "account_frozen_7": False},
                            {"customer_tier": "gold", "account_frozen_9": False},
                            {"refund_window_valid": False},
                            {"topic": "access"},
                        ]
                    ),
                }
            )
        )
    return out


def _elapsed_ns(fn, items) -> int:
    start = time.perf_counter_ns()
    for item in items:
        fn(item)
    return time.perf_counter_ns() - start


def _best_us(ours, raw, items, repeats: int) -> tuple[float, float]:
    """Best time per item of each, timed turn about so both see the same machine."""
    best_ours = best_raw = None
    for _ in range(repeats):
        o, r = _elapsed_ns(ours, items), _elapsed_ns(raw, items)
        best_ours = o if best_ours is None else min(best_ours, o)
        best_raw = r if best_raw is None else min(best_raw, r)
    return best_ours / len(items) / 1000, best_raw / len(items) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policy", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer proposals and repeats")
    parser.add_argument(
        "--all-generic", action="store_true", help="worst case: no rule can be skipped by the index"
    )
    options = parser.parse_args(argv)
    n, repeats = (2_000, 5) if options.quick else (20_000, 15)

    compiled = build_policy(all_generic=options.all_generic)
    inputs = proposals(n)
    for proposal in inputs:
        ours = engine.evaluate(compiled, proposal)
        got = (ours.outcome, ours.review_kind, ours.queue, ours.required_approvals)
        want = approval_policy(proposal)
        if got != want:
            print(f"disagreement on {proposal}: engine {got}, baseline {want}", file=sys.stderr)
            return 1

    def ours_fn(p, compiled=compiled, evaluate=engine.evaluate):
        return evaluate(compiled, p)

    ours_us, raw_us = _best_us(ours_fn, approval_policy, inputs, repeats)
    print(
        json.dumps(
            {
                "bench": "B2",
                "cost_ratio": round(ours_us / raw_us, 2),
                "ours": round(ours_us, 3),
                "raw": round(raw_us, 3),
                "unit": "us/decision",
                "n": n,
                "rules": len(compiled.rules),
                "generic_rules": sum(
                    1
                    for r in compiled.rules
                    if not any(c.field in ("action", "tenant") for c in r.conditions)
                ),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
