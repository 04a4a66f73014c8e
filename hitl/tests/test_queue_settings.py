"""django-q2's settings per broker, and the Redis broker's at-least-once delivery."""

import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured

from hitl.settings import q_cluster

DEFAULTS = {"workers": 2, "timeout": 60, "retry": 120, "max_attempts": 5}


def test_without_redis_the_queue_lives_in_the_database():
    config = q_cluster(redis_url="", **DEFAULTS)
    assert config["orm"] == "default"
    assert "redis" not in config and "broker_class" not in config
    assert config["retry"] > config["timeout"]
    assert config["ack_failures"] is False


def test_redis_url_selects_the_broker_that_keeps_tasks_of_a_dead_cluster():
    config = q_cluster(redis_url="redis://127.0.0.1:6379/0", **DEFAULTS)
    assert "orm" not in config
    assert config["redis"] == "redis://127.0.0.1:6379/0"
    assert config["broker_class"] == "hitl.redis_broker.ReliableRedis"
    assert (config["retry"], config["max_attempts"], config["ack_failures"]) == (120, 5, False)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"retry": 60}, "Q_RETRY"),
        ({"timeout": 0}, "Q_TIMEOUT"),
        ({"max_attempts": 0}, "Q_MAX_ATTEMPTS"),
    ],
)
def test_a_retry_that_would_run_a_task_twice_at_once_is_refused(changes, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        q_cluster(redis_url="", **{**DEFAULTS, **changes})


@pytest.fixture
def broker(redis_url, monkeypatch):
    from django_q.conf import Conf

    from hitl.redis_broker import ReliableRedis

    monkeypatch.setattr(Conf, "REDIS", redis_url)
    monkeypatch.setattr(Conf, "POLL", 0)
    monkeypatch.setattr(Conf, "BULK", 1)
    queue = ReliableRedis(list_key=f"test-{uuid.uuid4().hex}")
    yield queue, monkeypatch, Conf
    queue.delete_queue()


def test_a_task_taken_and_never_acknowledged_is_delivered_again(broker):
    queue, monkeypatch, conf = broker
    monkeypatch.setattr(conf, "RETRY", 3600)
    queue.enqueue("first")
    queue.enqueue("second")
    [(first_id, first)] = queue.dequeue()
    assert first == b"first"
    assert (queue.queue_size(), queue.lock_size()) == (1, 1)
    [(second_id, _)] = queue.dequeue()
    queue.acknowledge(second_id)
    assert queue.dequeue() is None  # "first" is still within its lease

    monkeypatch.setattr(conf, "RETRY", 0)  # its taker died: the lease runs out
    [(again_id, again)] = queue.dequeue()
    assert again == b"first" and again_id != first_id
    assert queue.requeued() == 1
    queue.acknowledge(again_id)
    assert queue.dequeue() is None
    assert (queue.queue_size(), queue.lock_size()) == (0, 0)
