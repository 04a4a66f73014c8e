"""The run calls of HitlClient against the fake platform: batch, long-poll, checkpoint, finish."""

import threading
import time

import pytest

from hitl_client import HitlError

# Long-polls wait on the real clock.
pytestmark = pytest.mark.real_clock

REFUND = {
    "name": "issue_refund",
    "args": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
    "tool_call_id": "call_1",
}
EMAIL = {
    "name": "send_email",
    "args": {"template_id": "t", "customer_id": "c"},
    "tool_call_id": "call_2",
}


def test_a_batch_is_one_proposal_and_answers_the_run(platform, client):
    run = client.propose_batch(
        run_id="run-1",
        actions=[REFUND, EMAIL],
        summary="Refund and tell",
        checkpoint={"step": 1},
        thread_id="thread-1",
        evidence=[],
    )
    method, path, body, headers = platform.requests[-1]
    assert (method, path) == ("POST", "/api/v1/actions/")
    assert body == {
        "run_id": "run-1",
        "thread_id": "thread-1",
        "actions": [REFUND, EMAIL],
        "summary": "Refund and tell",
        "evidence": [],
        "checkpoint": {"step": 1},
    }
    assert headers["Idempotency-Key"]
    assert [c["tool_call_id"] for c in run["calls"]] == ["call_1", "call_2"]
    assert run["status"] == "waiting"
    assert run["resumable"] is False


def test_the_long_poll_answers_as_soon_as_the_run_is_resumable(platform, client):
    client.propose_batch(run_id="run-1", actions=[REFUND], summary="s")

    def reviewer():
        time.sleep(0.3)
        platform.decide("call_1", "approve")

    threading.Thread(target=reviewer).start()
    started = time.monotonic()
    run = client.run("run-1", wait=20)
    assert run["resumable"] is True
    assert time.monotonic() - started < 5
    assert platform.requests[-1][1] == "/api/v1/runs/run-1/"


def test_waiting_until_resumable_gives_up_after_the_timeout(platform, client):
    client.propose_batch(run_id="run-1", actions=[REFUND], summary="s")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.wait_until_resumable("run-1", timeout=1.2)
    assert 1.2 <= time.monotonic() - started < 5


def test_waiting_until_resumable_returns_the_decided_run(platform, client):
    client.propose_batch(run_id="run-1", actions=[REFUND], summary="s")
    threading.Timer(
        0.2, platform.decide, args=("call_1", "reject"), kwargs={"reason": "no"}
    ).start()
    run = client.wait_until_resumable("run-1", timeout=10)
    assert run["calls"][0]["decision"] == "reject"


def test_the_checkpoint_is_replaced_only_at_the_version_read(platform, client):
    run = client.propose_batch(run_id="run-1", actions=[REFUND], summary="s", checkpoint={"a": 1})
    version = run["checkpoint_version"]
    assert client.save_checkpoint("run-1", {"a": 2}, version=version) == version + 1
    with pytest.raises(HitlError) as stale:
        client.save_checkpoint("run-1", {"a": 3}, version=version)
    assert stale.value.status == 409
    assert stale.value.code == "checkpoint_conflict"
    assert client.run("run-1")["checkpoint"] == {"a": 2}


def test_a_run_with_open_reviews_finishes_only_when_told_to_cancel_them(platform, client):
    client.propose_batch(run_id="run-1", actions=[REFUND], summary="s")
    with pytest.raises(HitlError) as refused:
        client.finish("run-1")
    assert refused.value.code == "run_has_open_reviews"
    finished = client.finish("run-1", outcome="stopped", cancel_open=True)
    assert finished["status"] == "stopped"
    assert platform.requests[-1][2] == {"outcome": "stopped", "cancel_open": True}
    assert client.finish("run-1", outcome="stopped")["status"] == "stopped"


def test_a_run_id_is_one_path_segment(platform, client):
    with pytest.raises(HitlError) as missing:
        client.run("a/b c")
    assert missing.value.status == 404
    assert platform.requests[-1][1] == "/api/v1/runs/a%2Fb%20c/"
