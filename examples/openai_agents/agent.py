"""The agent: two tools that need approval and a scripted model, so it runs without network.

The tools write to files in the work directory (a refund ledger and an outbox), so separate
processes share them and a test can count what ran. The model's one turn asks for the refund
and the email together; its next turn answers from what the tools (or the reviewers) said,
and records that in `model_saw.json`.
"""

import json
from pathlib import Path

from agents import Agent, function_tool
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

PROMPT = "Order 17 arrived damaged: refund the customer and let them know."
REFUND = {"order_id": "17", "amount": "20.00", "currency": "EUR"}
EMAIL = {"template_id": "refund_issued", "customer_id": "c-17"}


def build_agent(workdir: Path) -> Agent:
    """The support agent, writing to `workdir`."""

    @function_tool(needs_approval=True)
    def issue_refund(order_id: str, amount: str, currency: str) -> dict:
        """Refund money to a customer's order."""
        refund = {"order_id": order_id, "amount": amount, "currency": currency}
        _append(workdir / "refunds.jsonl", refund)
        return {"refunded": True, **refund}

    @function_tool(needs_approval=True)
    def send_email(template_id: str, customer_id: str) -> dict:
        """Send a templated email to a customer."""
        _append(workdir / "outbox.jsonl", {"template_id": template_id, "customer_id": customer_id})
        return {"sent": True, "template_id": template_id}

    return Agent(
        name="support",
        instructions="Refund damaged orders and tell the customer.",
        model=ScriptedModel([ModelStep.respond(lambda call: _turn(call, workdir))]),
        tools=[issue_refund, send_email],
    )


def _turn(call, workdir: Path):
    """First turn: ask for both tools at once. Next turn: answer from their outputs."""
    items = call.input if isinstance(call.input, list) else []
    outputs = {i["call_id"]: i["output"] for i in items if i.get("type") == "function_call_output"}
    if not outputs:
        return [
            function_call("issue_refund", REFUND, call_id="call_refund_17"),
            function_call("send_email", EMAIL, call_id="call_email_17"),
        ]
    (workdir / "model_saw.json").write_text(json.dumps(outputs, indent=2, sort_keys=True))
    return [assistant_message("; ".join(f"{k}: {v}" for k, v in sorted(outputs.items())))]


def _append(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
