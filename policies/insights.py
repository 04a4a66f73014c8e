"""What the apps that know more say about a rule set, registered for the policy admin.

The policy app knows nothing of reviews, yet reviewers' decisions say which rules could
change: the review app registers a provider here (in its ``AppConfig.ready``) and the
policy admin's suggestions page shows what every registered provider returns. A provider
takes the rule set and returns ``{"title", "rules": [...]}``, one row per rule with its
figures and ``suggestions`` (``[{"kind", "text"}]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policies.models import RuleSet

Insights = dict[str, Any]
Provider = Callable[["RuleSet"], Insights]

_providers: list[Provider] = []


def register(provider: Provider) -> Provider:
    """Add a provider the suggestions page asks (registering one twice keeps one)."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def unregister(provider: Provider) -> None:
    """Remove a provider (tests that need the page without it)."""
    if provider in _providers:
        _providers.remove(provider)


def collect(rule_set: RuleSet) -> list[Insights]:
    """Every registered provider's insights on ``rule_set``."""
    return [provider(rule_set) for provider in _providers]
