"""A fake payment system kept in a JSON file, so separate processes share it.

It deduplicates by idempotency key like real payment APIs do, and counts every refund
call, so a test can prove an approved refund was paid exactly once.
"""

import fcntl
import json
import os
import tempfile
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

DEFAULT_ORDERS = {
    "17": {"version": "4", "total": "20.00", "currency": "EUR", "refund_window_valid": True},
    "512": {"version": "9", "total": "750.00", "currency": "EUR", "refund_window_valid": True},
    "99": {"version": "2", "total": "80.00", "currency": "EUR", "refund_window_valid": False},
}


def ledger_path() -> Path:
    default = Path(tempfile.gettempdir()) / "hitl_fake_payments.json"
    return Path(os.environ.get("HITL_FAKE_PAYMENTS_FILE", default))


@contextmanager
def _ledger():
    path = ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        raw = handle.read()
        data = json.loads(raw) if raw.strip() else {}
        data.setdefault("orders", json.loads(json.dumps(DEFAULT_ORDERS)))
        data.setdefault("refunds", {})
        data.setdefault("calls", 0)
        yield data
        handle.seek(0)
        handle.truncate()
        json.dump(data, handle, indent=2, sort_keys=True)


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
    """The fact provider: fresh facts and resource versions, read just before executing."""
    with _ledger() as data:
        order = data["orders"].get(str(arguments.get("order_id")), {})
        return {
            "facts": {"refund_window_valid": bool(order.get("refund_window_valid"))},
            "resources": [
                {
                    "type": "order",
                    "id": str(arguments.get("order_id")),
                    "version": order.get("version"),
                }
            ],
        }
