"""Agents and their API keys: registration, settings, issue, revocation."""

import hashlib
import logging
import secrets

from django.db import transaction
from django.utils import timezone

from hitl.db import for_update
from hitl.kernel import Actor

from ..models import Agent, AgentKey
from ._common import full_clean_or_refuse, stamp

logger = logging.getLogger(__name__)


def agent_create(
    *,
    actor: Actor,
    name: str,
    tenant: str = "",
    callback_url: str = "",
) -> tuple[Agent, str]:
    """Register an agent and issue its first API key; the key is returned once, never stored."""
    agent = Agent(name=name, tenant=tenant, callback_url=callback_url)
    full_clean_or_refuse(agent)
    with transaction.atomic():
        stamp(agent, actor, f"agent {name} registered")
        agent.save()
        key = _issue_key(agent)
    return agent, key


def agent_update(
    *, actor: Actor, agent: Agent, tenant: str, callback_url: str, is_active: bool
) -> Agent:
    """Change an agent's tenant, callback URL or whether it may act; validated and audited."""
    with transaction.atomic():
        locked = for_update(Agent.objects.all()).get(pk=agent.pk)
        changes = {"tenant": tenant, "callback_url": callback_url, "is_active": is_active}
        changed = [field for field, value in changes.items() if getattr(locked, field) != value]
        for field, value in changes.items():
            setattr(locked, field, value)
        full_clean_or_refuse(locked)
        stamp(locked, actor, f"changed {', '.join(changed)}" if changed else "saved unchanged")
        locked.save(update_fields=list(changes))
    return locked


def agent_key_issue(*, actor: Actor, agent: Agent) -> str:
    """Issue one more API key for an agent (for rotation); returned once."""
    with transaction.atomic():
        locked = for_update(Agent.objects.all()).get(pk=agent.pk)
        key = _issue_key(locked)
    logger.info("API key issued for %s by %s", agent, actor.label)
    return key


def agent_key_revoke(*, actor: Actor, prefix: str) -> AgentKey:
    """Revoke one API key at once; requests with it are refused from then on."""
    with transaction.atomic():
        key = for_update(AgentKey.objects.all()).select_related("agent").get(prefix=prefix)
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            logger.info("API key %s of %s revoked by %s", prefix, key.agent, actor.label)
    return key


def _issue_key(agent: Agent) -> str:
    prefix = secrets.token_hex(6)
    key = f"hitl_{prefix}_{secrets.token_urlsafe(32)}"
    AgentKey.objects.create(agent=agent, prefix=prefix, digest=key_digest(key))
    return key


def key_digest(key: str) -> str:
    """Keys are 256 random bits, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(key.encode()).hexdigest()
