"""The scripted chat model and the tools of the example: no network, same in every process.

The model asks for a refund and an email in one turn; once it has the tools' answers it
replies with what each tool told it, so the output shows what reached the model (a
reviewer's rejection reason included). The tools write every call to a ledger in the work
directory, so a test can count what ran.
"""

import json
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

from examples.json_store import changing

REQUEST = "Order 17 arrived damaged: refund the 20.00 EUR and tell the customer."
TOOL_CALLS = [
    {
        "name": "issue_refund",
        "args": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
        "id": "call_refund_17",
        "type": "tool_call",
    },
    {
        "name": "send_email",
        "args": {
            "template_id": "refund_issued",
            "customer_id": "cust-17",
            "variables": {"order_id": "17", "amount": "20.00"},
        },
        "id": "call_email_17",
        "type": "tool_call",
    },
]


class ScriptedModel(BaseChatModel):
    """Turn one: both tool calls. Turn two: a reply quoting every tool answer it received."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        answers = [m for m in messages if isinstance(m, ToolMessage)]
        if not answers:
            reply = AIMessage(content="", tool_calls=TOOL_CALLS)
        else:
            seen = {
                m.tool_call_id: {"tool": m.name, "status": m.status, "said": m.content}
                for m in answers
            }
            reply = AIMessage(content=json.dumps({"seen": seen}, sort_keys=True))
        return ChatResult(generations=[ChatGeneration(message=reply)])


def make_tools(workdir: Path) -> list:
    """The agent's own tools, recording each run in `workdir/ledger.json`."""

    @tool
    def issue_refund(order_id: str, amount: str, currency: str) -> dict:
        """Refund money to a customer's order."""
        return _record(
            workdir, "issue_refund", {"order_id": order_id, "amount": amount, "currency": currency}
        )

    @tool
    def send_email(template_id: str, customer_id: str, variables: dict | None = None) -> dict:
        """Send a templated email to a customer."""
        return _record(
            workdir,
            "send_email",
            {"template_id": template_id, "customer_id": customer_id, "variables": variables or {}},
        )

    return [issue_refund, send_email]


def ledger(workdir: Path) -> list[dict]:
    """Every tool run so far, oldest first."""
    path = Path(workdir) / "ledger.json"
    return json.loads(path.read_text()) if path.exists() else []


def _record(workdir: Path, name: str, args: dict[str, Any]) -> dict:
    with changing(Path(workdir) / "ledger.json", list) as entries:
        entries.append({"tool": name, "args": args})
    return {"ok": True, "tool": name, "ledger_entry": len(entries)}
