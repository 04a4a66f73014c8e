"""The API's rate limits: for each caller, the times of its requests in the last window.

With `REDIS_URL` they live in Redis, shared by every web process: a sorted set per caller,
trimmed, counted and added to by one script, so a request costs one round trip and
simultaneous requests in several processes are each counted once. Without it each process
keeps its own: fine for one process, not for several.
"""

import logging
import os
import threading
import uuid
from collections import deque
from functools import cache

from django.conf import settings

logger = logging.getLogger(__name__)

PREFIX = "hitl:rate"

# KEYS[1] the caller's times; ARGV: now, seconds, limit, a member unique to this request.
# Returns -1 when the request was counted, else the seconds until one more would fit.
_TAKE = """
local now, seconds, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - seconds)
if redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    redis.call('EXPIRE', KEYS[1], math.ceil(seconds) + 1)
    return '-1'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #oldest == 0 then return tostring(seconds) end
return tostring(tonumber(oldest[2]) + seconds - now)
"""


def take(key: str, *, limit: int, seconds: int, now: float) -> float | None:
    """Count a request of `key` at `now` unless `limit` requests were already counted in
    the `seconds` before it. None: counted, it may go ahead; else the seconds until one
    more would fit (a refused request is not counted). Redis unreachable: None, logged (a
    rate limit must not stop the API)."""
    script = _shared()
    if script is None:
        return _LOCAL.take(key, limit, seconds, now)
    member = f"{now!r}:{uuid.uuid4().hex[:12]}"
    try:
        answer = float(script(keys=[f"{PREFIX}:{key}"], args=[repr(now), seconds, limit, member]))
    except Exception:
        logger.exception("Rate limits unreachable at REDIS_URL; %s not limited", key)
        return None
    return None if answer < 0 else max(answer, 0.0)


def reset() -> None:
    """Forget this process's counts (tests; Redis keys expire on their own)."""
    _LOCAL.reset()


@cache
def _script(url: str, pid: int):
    import redis

    # Short timeouts: a Redis that hangs must not hold every request for long.
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return client.register_script(_TAKE)


def _shared():
    url = settings.HITL_RATE_LIMIT_REDIS_URL
    # One client (and its pool of connections) per process: a pool is not shared by a fork.
    return _script(url, os.getpid()) if url else None


class _Local:
    """One process's request times per caller, oldest first."""

    KEYS = 10_000  # above this many callers, those with nothing in their window go

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {}

    def take(self, key: str, limit: int, seconds: int, now: float) -> float | None:
        with self._lock:
            if len(self._times) > self.KEYS:
                self._times = {k: t for k, t in self._times.items() if t and t[-1] > now - seconds}
            times = self._times.setdefault(key, deque())
            while times and times[0] <= now - seconds:
                times.popleft()
            if len(times) < limit:
                times.append(now)
                return None
            return times[0] + seconds - now if times else float(seconds)

    def reset(self) -> None:
        with self._lock:
            self._times.clear()


_LOCAL = _Local()
