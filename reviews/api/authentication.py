"""Agents authenticate with `Authorization: Bearer <key>`; keys are checked by digest."""

import hmac

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from hitl.kernel.rows import Read

from ..models import AgentKey
from ..services import key_digest

# Every agent request reads its key: the statement is composed once (see hitl.kernel.rows).
LIVE_KEY = Read(AgentKey, '"t0"."prefix" = %s AND "t0"."revoked_at" IS NULL', related=("agent",))


class AgentKeyAuthentication(authentication.BaseAuthentication):
    """Bearer API keys of agents; `request.user` becomes the Agent."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0] != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <API key>'.")
        key = parts[1]
        pieces = key.split("_", 2)
        if len(pieces) != 3 or pieces[0] != "hitl":
            raise exceptions.AuthenticationFailed("Malformed API key.")
        record = LIVE_KEY.first(pieces[1])
        if record is None or not hmac.compare_digest(record.digest, key_digest(key)):
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        if not record.agent.is_active:
            raise exceptions.AuthenticationFailed("This agent is disabled.")
        now = timezone.now()
        if record.last_used_at is None or (now - record.last_used_at).total_seconds() > 60:
            # Coarse on purpose: one write a minute per key, not one per request.
            AgentKey.objects.filter(pk=record.pk).update(last_used_at=now)
        return record.agent, record

    def authenticate_header(self, request):
        return self.keyword


class AgentKeyScheme(OpenApiAuthenticationExtension):
    target_class = "reviews.api.authentication.AgentKeyAuthentication"
    name = "agentKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An agent's API key."}
