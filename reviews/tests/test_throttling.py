"""Per-agent rate limits: each agent its own budget, Retry-After that holds, refused
requests costing nothing, one count across every web process."""

import threading
import uuid
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from hitl import ratelimit
from hitl.kernel import Actor
from reviews.api.throttling import AgentRateThrottle
from reviews.services import agent_create

URL = "/api/v1/runs/nope/"  # a 404 that passed authentication and the throttle


@pytest.fixture(params=["in-process", "redis"])
def three_a_minute(request, monkeypatch, settings):
    """A rate of 3 a minute, counted in the process (no REDIS_URL) or in Redis."""
    monkeypatch.setattr(AgentRateThrottle, "THROTTLE_RATES", {"agent": "3/min"})
    if request.param == "redis":
        settings.HITL_RATE_LIMIT_REDIS_URL = request.getfixturevalue("redis_url")
        # Keys of its own: every test's clock starts at the same instant, and another run
        # of the suite may use the same Redis and the same agent ids meanwhile.
        monkeypatch.setattr(ratelimit, "PREFIX", f"test-rate:{uuid.uuid4().hex}")


def codes(client, n):
    return [client.get(URL).status_code for _ in range(n)]


def retry_after(client) -> int:
    answer = client.get(URL)
    assert answer.status_code == 429
    return int(answer["Retry-After"])


def test_each_agent_has_its_own_budget(seeded, agent_client, three_a_minute):
    _, other_key = agent_create(actor=Actor.system("t"), name="other-bot")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert codes(agent_client, 4) == [404, 404, 404, 429]
    assert codes(other, 1) == [404]


def test_retry_after_is_when_the_oldest_request_leaves_the_window(
    seeded, agent_client, three_a_minute, clock
):
    assert codes(agent_client, 1) == [404]
    clock.shift(timedelta(seconds=20))
    assert codes(agent_client, 2) == [404, 404]
    clock.shift(timedelta(seconds=10))
    wait = retry_after(agent_client)
    assert wait == 30  # the first request, 30 s ago, counts for 30 s more
    clock.shift(timedelta(seconds=wait - 1.5))
    assert codes(agent_client, 1) == [429]
    clock.shift(timedelta(seconds=1.5))
    assert codes(agent_client, 2) == [404, 429]  # one place came free, not two


def test_refused_requests_use_none_of_the_budget(seeded, agent_client, three_a_minute, clock):
    assert codes(agent_client, 3) == [404, 404, 404]
    for _ in range(5):  # an agent retrying too early, five times
        clock.shift(timedelta(seconds=10))
        assert codes(agent_client, 1) == [429]
    clock.shift(timedelta(seconds=10.5))  # 60.5 s after the three
    assert codes(agent_client, 4) == [404, 404, 404, 429]


def test_any_window_holds_at_most_the_rate(seeded, agent_client, three_a_minute, clock):
    passed = []
    for step in range(60):  # one request every 7 s for 7 minutes
        if codes(agent_client, 1) == [404]:
            passed.append(step * 7)
        clock.shift(timedelta(seconds=7))
    assert all(sum(t - 60 < u <= t for u in passed) <= 3 for t in passed)
    assert len(passed) >= 7 * 3 - 1  # and the budget is used, not wasted


def test_simultaneous_requests_sharing_redis_are_each_counted_once(redis_url, settings):
    """Web processes are separate clients of Redis, as these threads are (each takes its
    own connection from the pool): none overwrites another's count."""
    settings.HITL_RATE_LIMIT_REDIS_URL = redis_url
    key = f"test-{uuid.uuid4().hex}"
    answers: list[float | None] = []

    def client() -> None:
        for n in range(25):
            answers.append(ratelimit.take(key, limit=60, seconds=60, now=1000.0 + n / 100))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(a is None for a in answers) == 60
    refused = [a for a in answers if a is not None]
    assert len(refused) == 40 and all(0 < a <= 60 for a in refused)


def test_while_redis_fails_each_process_counts_alone_and_says_so_once(settings, caplog):
    settings.HITL_RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    answers = [ratelimit.take("agent-1", limit=2, seconds=60, now=1000.0) for _ in range(3)]
    assert answers[:2] == [None, None]
    assert answers[2] == pytest.approx(60)  # still limited, by this process's count
    assert caplog.text.count("Rate limits: Redis failed") == 1
