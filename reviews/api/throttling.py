"""Per-agent rate limits (per person for session callers)."""

from rest_framework.throttling import SimpleRateThrottle

from hitl import ratelimit

from ..models import Agent


class AgentRateThrottle(SimpleRateThrottle):
    """At most `rate` requests in any window of its length, counted by `hitl.ratelimit`:
    one round trip to Redis per request. DRF's own keeps the times in one cache entry that
    each request reads and writes back whole: its cost grew with the rate (a third of a
    millisecond at 600/min, one at 12,000) and two processes writing at once lost each
    other's requests."""

    scope = "agent"

    def get_cache_key(self, request, view):
        # DRF's name for it; the key of the caller's count in `hitl.ratelimit`.
        user = request.user
        if isinstance(user, Agent):
            return f"agent-{user.pk}"
        if user and user.is_authenticated:
            return f"user-{user.pk}"
        return self.get_ident(request)

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.waiting = ratelimit.take(
            self.key, limit=self.num_requests, seconds=self.duration, now=self.timer()
        )
        return self.waiting is None

    def wait(self):
        """Seconds until one more request fits (DRF sends it as Retry-After)."""
        return self.waiting
