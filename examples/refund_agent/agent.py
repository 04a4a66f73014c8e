"""The refund agent. It proposes, stops; a later process resumes it by run id.

    python -m examples.refund_agent.agent propose --order 17 --amount 20.00
    python -m examples.refund_agent.agent resume RUN_ID [--wait]

Environment: HITL_URL (default http://127.0.0.1:8000) and HITL_API_KEY.
"""

import argparse
import json
import os
import sys
import time
import uuid

from hitl_client import HitlClient, HitlError

from . import payments


def client() -> HitlClient:
    key = os.environ.get("HITL_API_KEY")
    if not key:
        sys.exit("Set HITL_API_KEY (python manage.py create_agent refund-agent prints one).")
    return HitlClient(os.environ.get("HITL_URL", "http://127.0.0.1:8000"), key)


def propose(args) -> int:
    run_id = args.run_id or f"refund-{uuid.uuid4().hex[:12]}"
    order = payments.state()["orders"].get(args.order, {})
    answer = client().propose(
        {
            "run_id": run_id,
            "action": {
                "name": "issue_refund",
                "target_system": "billing",
                "args": {"order_id": args.order, "amount": args.amount, "currency": "EUR"},
            },
            "summary": f"Refund {args.amount} EUR on order {args.order}: {args.why}",
            "confidence": args.confidence,
            "estimated_cost_usd": 0.02,
            "evidence": [
                {
                    "id": f"order-{args.order}",
                    "title": f"Order {args.order}",
                    "url": f"https://shop.example.com/orders/{args.order}",
                    "excerpt": f"Total {order.get('total')} {order.get('currency')}",
                }
            ],
            "affected_resources": [
                {"type": "order", "id": args.order, "version": order.get("version")}
            ],
            "facts": {"refund_window_valid": bool(order.get("refund_window_valid"))},
            "checkpoint": {"step": "refund_proposed", "order": args.order},
            "versions": {"agent": "refund-agent/1.0", "model": "example", "prompt": "v1"},
        },
        idempotency_key=f"{run_id}:propose",
    )
    review = answer.get("review") or {}
    print(
        json.dumps(
            {
                "run_id": run_id,
                "outcome": answer["outcome"],
                "review_id": review.get("review_id"),
                "state": review.get("state"),
            }
        )
    )
    return 0


def resume(args) -> int:
    api = client()
    deadline = time.monotonic() + args.timeout
    while True:
        run = api.run(args.run_id)
        outcomes = [act(api, run, review) for review in run["reviews"]]
        if not args.wait or all(o != "waiting" for o in outcomes) or time.monotonic() > deadline:
            print(
                json.dumps(
                    {"run_id": run["run_id"], "checkpoint": run["checkpoint"], "outcomes": outcomes}
                )
            )
            return 0
        time.sleep(args.interval)


def act(api: HitlClient, run: dict, review: dict) -> str:
    resume = review["resume"]
    action = resume["action"]
    if action in ("execute", "continue_with_edits"):
        arguments = resume["arguments"]
        fresh = payments.refund_facts(
            action_name="issue_refund", arguments=arguments, affected_resources=[], tenant=""
        )
        try:
            claim = api.claim(
                review["review_id"], facts=fresh["facts"], affected_resources=fresh["resources"]
            )
        except HitlError as exc:
            return f"not executed: {exc.body.get('detail')}"
        try:
            paid = payments.refund(
                order_id=arguments["order_id"],
                amount=arguments["amount"],
                currency=arguments.get("currency", "EUR"),
                idempotency_key=claim["idempotency_key"],
            )
        except ValueError as exc:
            api.report(review["review_id"], succeeded=False, error=str(exc))
            return f"failed: {exc}"
        api.report(review["review_id"], succeeded=True, result=paid)
        return f"refunded {paid['amount']} {paid['currency']} ({paid['refund_id']})"
    if action == "done":
        return "done: " + json.dumps(resume["execution"]["result"], sort_keys=True)
    if action in ("wait", "executing", "handed_over"):
        return "waiting"
    if action == "supply_evidence":
        return f"question from the reviewer: {resume['question']}"
    if action == "stop":
        return f"stopped: {resume['reason']}"
    return action


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("propose")
    p.add_argument("--order", default="17")
    p.add_argument("--amount", default="20.00")
    p.add_argument("--why", default="item arrived damaged")
    p.add_argument("--confidence", type=float, default=0.96)
    p.add_argument("--run-id")
    p.set_defaults(func=propose)
    r = sub.add_parser("resume")
    r.add_argument("run_id")
    r.add_argument("--wait", action="store_true", help="poll until nothing is waiting")
    r.add_argument("--timeout", type=float, default=600)
    r.add_argument("--interval", type=float, default=2)
    r.set_defaults(func=resume)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except HitlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
