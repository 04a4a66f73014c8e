"""Per-agent rate limits (per person for session callers)."""

from rest_framework.throttling import SimpleRateThrottle

from ..models import Agent


class AgentRateThrottle(SimpleRateThrottle):
    scope = "agent"

    def get_cache_key(self, request, view):
        user = request.user
        if isinstance(user, Agent):
            ident = f"agent-{user.pk}"
        elif user and user.is_authenticated:
            ident = f"user-{user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
