"""The fakes the topology run kills workers against must not lose what they recorded."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from examples.refund_agent import payments

pytestmark = pytest.mark.real_clock


def pay_forever() -> None:
    """The client that gets killed: pays refunds of one cent under new keys until then."""
    n = 0
    while True:
        n += 1
        payments.refund(order_id="17", amount="0.01", currency="EUR", idempotency_key=f"k{n}")


def test_a_client_killed_while_paying_leaves_every_earlier_refund_in_the_ledger(
    tmp_path, monkeypatch
):
    ledger = tmp_path / "payments.json"
    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(ledger))
    env = {**os.environ, "HITL_FAKE_PAYMENTS_FILE": str(ledger)}
    paid = 0
    rng = random.Random(20)
    for _ in range(6):
        client = subprocess.Popen(
            [sys.executable, "-c", "import examples.tests.test_json_store as t; t.pay_forever()"],
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while _refunds(ledger) <= paid and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.02, 0.15))  # the kill lands at any point of a write
        finally:
            client.send_signal(signal.SIGKILL)
            client.wait()
        now = _refunds(ledger)  # raises if the file was left half-written
        assert now > paid, "refunds recorded before the kill are gone"
        paid = now
    assert payments.state()["orders"]["17"]["total"] == "60.00"


def _refunds(path) -> int:
    return len(payments.state()["refunds"]) if path.exists() else 0
