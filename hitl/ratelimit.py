"""The API's rate limits: for each caller, the times of its requests in the last window.

With `REDIS_URL` they live in Redis, shared by every web process: a sorted set per caller,
trimmed, counted and added to by one script, so a request costs one round trip and
simultaneous requests in several processes are each counted once. The times are the web
hosts' clocks (keep them in sync, as for anything else here). Without Redis, or while it
cannot be reached, each process counts its own: fine for one process, not for several.
"""

import logging
import threading
import time
import uuid
from collections import deque
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

PREFIX = "hitl:rate"
# After Redis failed, this process counts alone for a while: no request waits on a Redis
# that hangs, and the log gets one error per pause, not one per request.
PAUSE_SECONDS = 5.0
_redis_down_until = 0.0  # time.monotonic() until which Redis is left alone

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

# Retry-After is rounded up, and DRF leaves it out when the wait is 0.
SHORTEST_WAIT = 0.001


def take(key: str, *, limit: int, seconds: int, now: float) -> float | None:
    """Count a request of `key` at `now` unless `limit` requests were already counted in
    the `seconds` before it. None: counted, it may go ahead; else the seconds until one
    more would fit (a refused request is not counted)."""
    global _redis_down_until
    url = settings.HITL_RATE_LIMIT_REDIS_URL
    if not url or time.monotonic() < _redis_down_until:
        return _LOCAL.take(key, limit, seconds, now)
    member = f"{now!r}:{uuid.uuid4().hex[:12]}"
    try:
        answer = float(
            _script(url)(keys=[f"{PREFIX}:{key}"], args=[repr(now), seconds, limit, member])
        )
    except redis.RedisError:
        _redis_down_until = time.monotonic() + PAUSE_SECONDS
        logger.exception(
            "Rate limits: Redis failed; each process counts its own for %s s", PAUSE_SECONDS
        )
        return _LOCAL.take(key, limit, seconds, now)
    return None if answer < 0 else max(answer, SHORTEST_WAIT)


def reset() -> None:
    """Forget this process's counts and any Redis failure (tests; Redis keys expire on
    their own)."""
    global _redis_down_until
    _LOCAL.reset()
    _redis_down_until = 0.0


@cache
def _script(url: str):
    # One client per URL and process; redis-py's pool reconnects in a forked child.
    # Short timeouts: a Redis that hangs must not hold requests for long.
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return client.register_script(_TAKE)


class _Local:
    """One process's request times per caller, oldest first."""

    KEYS = 10_000  # above this many callers, those with nothing in their window go

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {}
        self._prune_at = self.KEYS

    def take(self, key: str, limit: int, seconds: int, now: float) -> float | None:
        with self._lock:
            if len(self._times) > self._prune_at:
                self._times = {k: t for k, t in self._times.items() if t and t[-1] > now - seconds}
                # Callers all still active: prune again only once they doubled.
                self._prune_at = max(self.KEYS, 2 * len(self._times))
            times = self._times.setdefault(key, deque())
            while times and times[0] <= now - seconds:
                times.popleft()
            if len(times) < limit:
                times.append(now)
                return None
            return max(times[0] + seconds - now, SHORTEST_WAIT) if times else float(seconds)

    def reset(self) -> None:
        with self._lock:
            self._times.clear()
            self._prune_at = self.KEYS


_LOCAL = _Local()
