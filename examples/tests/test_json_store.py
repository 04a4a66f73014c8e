"""The fakes the topology run kills workers against must not lose what they recorded."""

import os
import subprocess
import sys
from pathlib import Path

from examples.refund_agent import payments

ROOT = Path(__file__).resolve().parents[2]

# A client SIGKILLed half-way through storing a refund: whether the ledger is rewritten in
# place (json.dump into the file) or a new file is swapped in (os.replace).
DIES_WRITING = """
import json, os, signal
from examples.refund_agent import payments

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def half_then_killed(obj, handle, **options):
    handle.write(json.dumps(obj, **options)[:100])
    handle.flush()
    killed()

json.dump, os.replace = half_then_killed, killed
payments.refund(order_id="17", amount="1.00", currency="EUR", idempotency_key="lost")
"""


def test_a_client_killed_while_writing_leaves_the_ledger_as_it_was(tmp_path, monkeypatch):
    ledger = tmp_path / "payments.json"
    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(ledger))
    for n in range(3):
        payments.refund(order_id="17", amount="1.00", currency="EUR", idempotency_key=f"k{n}")
    client = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", DIES_WRITING],
        cwd=ROOT,
        env={**os.environ, "HITL_FAKE_PAYMENTS_FILE": str(ledger)},
        check=False,
    )
    assert client.returncode == -9  # it did die in the middle of writing
    assert sorted(payments.state()["refunds"]) == ["k0", "k1", "k2"]
    payments.refund(order_id="17", amount="1.00", currency="EUR", idempotency_key="k3")
    assert len(payments.state()["refunds"]) == 4
    assert [p.name for p in tmp_path.glob("*.new")] == []  # the killed writer's file went
