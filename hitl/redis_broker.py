"""A django-q2 Redis broker that does not lose a task when a worker dies.

django-q2's own Redis broker takes a task with BLPOP: once popped it exists only in the
cluster's memory, so a cluster killed mid-task (OOM, kill -9, a lost machine) loses it,
and `retry`, `max_attempts` and `ack_failures` do nothing ("only brokers that guarantee
delivery"). This one keeps every popped task in an in-flight hash until the cluster's
monitor acknowledges it; a task not acknowledged within `Q_CLUSTER["retry"]` seconds goes
back on the queue for any cluster to take. Delivery is at least once, as with the ORM
broker, so tasks must be (and ours are) safe to run twice.
"""

from time import sleep

from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf

# Atomic in Redis: put back (and count) what outlived its lease, then pop up to ARGV[2] tasks, each
# recorded in flight with the time it was taken. A crash between the two steps of a
# non-atomic version would lose the task this broker exists to keep.
_DEQUEUE = """
local now = tonumber(redis.call('TIME')[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[1]))
for _, id in ipairs(expired) do
    local task = redis.call('HGET', KEYS[2], id)
    if task then redis.call('RPUSH', KEYS[1], task) end
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
end
if #expired > 0 then redis.call('INCRBY', KEYS[5], #expired) end
local out = {}
for _ = 1, tonumber(ARGV[2]) do
    local task = redis.call('LPOP', KEYS[1])
    if not task then break end
    local id = tostring(redis.call('INCR', KEYS[4]))
    redis.call('HSET', KEYS[2], id, task)
    redis.call('ZADD', KEYS[3], now, id)
    table.insert(out, id)
    table.insert(out, task)
end
return out
"""


class ReliableRedis(Redis):
    """Redis list + in-flight lease; selected by `Q_CLUSTER["broker_class"]`."""

    def __init__(self, list_key: str | None = None):
        super().__init__(list_key=list_key)
        self.inflight_key = f"{self.list_key}:inflight"
        self.taken_key = f"{self.list_key}:taken"
        self.counter_key = f"{self.list_key}:ids"
        # How many tasks went back on the queue after their lease ran out (for operators).
        self.requeued_key = f"{self.list_key}:requeued"
        self._dequeue = self.connection.register_script(_DEQUEUE)

    def _keys(self) -> list[str]:
        return [
            self.list_key,
            self.inflight_key,
            self.taken_key,
            self.counter_key,
            self.requeued_key,
        ]

    def dequeue(self):
        popped = self._dequeue(keys=self._keys(), args=[int(Conf.RETRY), max(1, Conf.BULK)])
        if not popped:
            # Nothing to take: wait as the ORM broker does rather than spin on Redis.
            sleep(Conf.POLL)
            return None
        return [(popped[i].decode(), popped[i + 1]) for i in range(0, len(popped), 2)]

    def acknowledge(self, task_id) -> None:
        with self.connection.pipeline() as pipe:
            pipe.hdel(self.inflight_key, task_id)
            pipe.zrem(self.taken_key, task_id)
            pipe.execute()

    # A task that cannot be unpacked (bad signature) will never run: drop it.
    fail = acknowledge
    delete = acknowledge

    def lock_size(self) -> int:
        return self.connection.hlen(self.inflight_key)

    def requeued(self) -> int:
        return int(self.connection.get(self.requeued_key) or 0)

    def delete_queue(self):
        return self.connection.delete(*self._keys())

    def purge_queue(self):
        return self.connection.delete(*self._keys())
