"""Reviewer authority: may this person decide this action, for this tenant, at this amount?"""

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class AuthorityCheck:
    """The answer of an authority check, with the reason a reviewer is shown when refused."""

    allowed: bool
    reason: str


def check_authority(
    *, user, action_name: str, tenant: str, amount: Decimal | None
) -> AuthorityCheck:
    """Placeholder until reviewer grants exist: any active staff user may decide."""
    if not (user and user.is_active and user.is_staff):
        return AuthorityCheck(False, "only active staff users may decide reviews")
    return AuthorityCheck(True, "active staff user")
