"""A fake payment system kept in a JSON file, so separate processes share it.

It deduplicates by idempotency key like real payment APIs do, and counts every refund
call, so a test can prove an approved refund was paid exactly once.
"""

import json
import os
import tempfile
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from examples.json_store import changing

# Order 17 has more than the broken mug on it (60.00 EUR): the README's walkthrough refunds
# it once per example agent, and the refund facts keep the sum within the total.
DEFAULT_ORDERS = {
    "17": {"version": "4", "total": "60.00", "currency": "EUR", "refund_window_valid": True},
    "512": {"version": "9", "total": "750.00", "currency": "EUR", "refund_window_valid": True},
    "99": {"version": "2", "total": "80.00", "currency": "EUR", "refund_window_valid": False},
}


# What the reviewer reads as where the trusted facts come from.
SOURCE = "payments ledger"


def ledger_path() -> Path:
    default = Path(tempfile.gettempdir()) / "hitl_fake_payments.json"
    return Path(os.environ.get("HITL_FAKE_PAYMENTS_FILE", default))


@contextmanager
def _ledger():
    with changing(ledger_path(), dict) as data:
        data.setdefault("orders", json.loads(json.dumps(DEFAULT_ORDERS)))
        data.setdefault("refunds", {})
        data.setdefault("calls", 0)
        yield data


def state() -> dict:
    """The whole ledger (orders, refunds by idempotency key, number of refund calls)."""
    with _ledger() as data:
        return json.loads(json.dumps(data))


def change_order(order_id: str, **fields) -> None:
    """Simulate the world moving on (a new order version, a closed refund window)."""
    with _ledger() as data:
        data["orders"][order_id].update(fields)


def refund(*, order_id: str, amount: str, currency: str, idempotency_key: str) -> dict:
    """Pay a refund; the same idempotency key returns the first refund, never pays twice."""
    with _ledger() as data:
        data["calls"] += 1
        if idempotency_key in data["refunds"]:
            return data["refunds"][idempotency_key]
        order = data["orders"].get(str(order_id))
        if order is None:
            raise ValueError(f"no order {order_id}")
        if Decimal(str(amount)) > Decimal(order["total"]):
            raise ValueError(f"refund {amount} exceeds order total {order['total']}")
        refund_id = f"rf_{len(data['refunds']) + 1}"
        record = {
            "refund_id": refund_id,
            "order_id": str(order_id),
            "amount": str(amount),
            "currency": currency,
        }
        data["refunds"][idempotency_key] = record
        return record


def execute_refund(*, arguments: dict, content: str, idempotency_key: str, review_id: str):
    """The executor the platform runs after approval (registered by seed_demo).
    HITL_FAKE_PAYMENTS_DELAY makes the payment system slow (for the restart tests)."""
    time.sleep(float(os.environ.get("HITL_FAKE_PAYMENTS_DELAY", "0")))
    return refund(
        order_id=arguments["order_id"],
        amount=arguments["amount"],
        currency=arguments.get("currency", "EUR"),
        idempotency_key=idempotency_key,
    )


def refund_facts(*, action_name: str, arguments: dict, affected_resources: list, tenant: str):
    """The fact provider, asked when a refund is proposed and again just before it runs:
    whether the order exists, what is left to refund (its total minus the refunds paid so
    far), whether this amount fits in it, and whether the refund window is open; with
    the order's current version. An unknown order has no window and nothing refundable
    (null: unknown), so only the rule about unknown orders speaks of it."""
    order_id = str(arguments.get("order_id"))
    with _ledger() as data:
        order = data["orders"].get(order_id)
        paid = [r for r in data["refunds"].values() if r["order_id"] == order_id]
    resource = {"type": "order", "id": order_id, "version": order and order.get("version")}
    if order is None:
        facts = {
            "order_exists": False,
            "refundable_amount": None,
            "amount_within_refundable": None,
            "refund_window_valid": None,
        }
        return {"facts": facts, "resources": [resource], "source": SOURCE, "details": {}}
    refunded = sum((Decimal(r["amount"]) for r in paid), Decimal("0"))
    refundable = Decimal(order["total"]) - refunded
    amount = _amount(arguments.get("amount"))
    facts = {
        "order_exists": True,
        "refundable_amount": float(refundable),
        "amount_within_refundable": None if amount is None else amount <= refundable,
        "refund_window_valid": bool(order.get("refund_window_valid")),
    }
    details = {
        "order_id": order_id,
        "total": order["total"],
        "currency": order.get("currency", ""),
        "refunded": str(refunded),
        "refundable": str(refundable),
        "refunds": [{"refund_id": r["refund_id"], "amount": r["amount"]} for r in paid],
    }
    return {"facts": facts, "resources": [resource], "source": SOURCE, "details": details}


def _amount(value) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (ArithmeticError, ValueError):
        return None
    return amount if amount.is_finite() else None
