"""kill -9 the worker while approved actions execute: after a restart every action has
run exactly once (the executor's idempotency key plus the reconciliation sweep)."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings

from examples.refund_agent import payments
from policies.models import ActionType
from policies.seed import seed_policy
from policies.services import action_type_update
from reviews import tasks
from reviews.models import Execution, ExecutionState
from reviews.services import review_approve
from reviews.services.execution import execution_reconcile
from reviews.tests.factories import QueueFactory, UserFactory, make_review

pytestmark = [pytest.mark.real_clock, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_killed_worker_leaves_nothing_undone_and_nothing_done_twice(tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.json"
    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(ledger))
    seed_policy()
    action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name="issue_refund"),
        fields={
            "executor": "examples.refund_agent.payments.execute_refund",
            "fact_provider": "examples.refund_agent.payments.refund_facts",
        },
    )
    reviewer = UserFactory(username="rita")
    queue = QueueFactory(slug="operations")
    queue.members.add(reviewer)
    reviews = []
    for _ in range(4):
        review = make_review(
            queue=queue,
            target_system="billing",
            arguments={"order_id": "17", "amount": "5.00", "currency": "EUR"},
            affected_resources=[{"type": "order", "id": "17", "version": "4"}],
        )
        review_approve(review_id=review.review_id, reviewer=reviewer)  # queues the executor
        reviews.append(review)

    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "HITL_FAKE_PAYMENTS_FILE": str(ledger),
        "HITL_FAKE_PAYMENTS_DELAY": "4",
        "Q_WORKERS": "2",
    }
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=Path(settings.BASE_DIR),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while not Execution.objects.filter(state=ExecutionState.CLAIMED).exists():
            assert time.time() < deadline, "the worker never started an execution"
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    assert Execution.objects.filter(state=ExecutionState.CLAIMED).exists()
    # Restart: deliveries that never started run now; a claimed one is not run again by a
    # redelivered task, the reconciliation finishes it with the same idempotency key.
    for review in reviews:
        tasks.execute_review(review.review_id)
    assert execution_reconcile(stale_after=timedelta(0)) >= 1

    states = list(Execution.objects.values_list("state", flat=True))
    assert states == [ExecutionState.SUCCEEDED] * 4
    paid = payments.state()["refunds"]
    assert sorted(paid) == sorted(f"exec_{r.review_id}" for r in reviews)


def test_two_worker_clusters_sweeping_at_once_expire_each_review_once():
    from django_q.tasks import async_task

    from reviews.models import ReviewRequest

    queue = QueueFactory(slug="ops", expiry=timedelta(hours=1))
    past = time.time() - 7200
    with time_machine.travel(past, tick=False):
        ids = [make_review(queue=queue).pk for _ in range(300)]
    for _ in range(8):
        async_task("reviews.tasks.expire_reviews")

    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "Q_WORKERS": "2",
    }
    clusters = [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=Path(settings.BASE_DIR),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.time() + 90
        while ReviewRequest.objects.filter(pk__in=ids, state="pending").exists():
            assert time.time() < deadline, "the clusters did not expire everything"
            time.sleep(0.5)
    finally:
        for cluster in clusters:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait(timeout=10)
    rows = ReviewRequest.history.filter(id__in=ids, state="expired")
    assert rows.count() == 300
    assert rows.values("id").distinct().count() == 300
