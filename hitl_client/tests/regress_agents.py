"""Agents under test for the regression runner's tests (importable by a subprocess)."""

from decimal import Decimal


def repeat(case_input):
    """The planted mistake: proposes again exactly what the reviewers saw."""
    return {
        "action": {"name": "issue_refund", "args": dict(case_input["arguments"])},
        "content": case_input["content"],
    }


def careful(case_input):
    """Does what the reviewers of the fixture dataset wanted."""
    summary = case_input["summary"]
    args = dict(case_input["arguments"])
    if "chargeback" in summary:
        return None
    if "legal" in summary or "different account" in summary:
        return {"escalate": "a person decides this one"}
    if "after 45 days" in summary:
        return {"action": {"name": "offer_store_credit", "args": args}, "content": ""}
    if "shipping" in summary:
        # A number, not the exported string: money is compared as a number.
        amount = Decimal(args["amount"]) - 5
        args["amount"] = int(amount)
        content = f"We refunded {amount:.2f} EUR for order {args['order_id']}; "
        return {
            "action": {"name": "issue_refund", "args": args},
            "content": content + "shipping is not refundable.",
        }
    return repeat(case_input)


def broken(case_input):
    """An agent with a bug."""
    raise RuntimeError("the model timed out")


def strict_judge(record, answer, options):
    """A scorer of one's own: nothing passes it."""
    from hitl_client.regress import Verdict

    return Verdict(False, "the strict judge passes nothing")
