"""Reviewer authority: may this person decide this action, for this tenant, at this amount?"""

from dataclasses import dataclass
from decimal import Decimal

from policies.selectors import grants_for


@dataclass(frozen=True)
class AuthorityCheck:
    """The answer of an authority check, with the reason a reviewer is shown when refused."""

    allowed: bool
    reason: str


def _scope(action_name: str, tenant: str, amount: Decimal | None) -> str:
    where = f"tenant {tenant}" if tenant else "the default tenant"
    text = f"{action_name} for {where}"
    return f"{text} up to {amount:.2f}" if amount is not None else text


def check_authority(
    *, user, action_name: str, tenant: str, amount: Decimal | None
) -> AuthorityCheck:
    """Superusers may decide anything; others need an unrevoked grant (their own or a
    group's) covering the action, the tenant and the amount. Inactive users never may."""
    if user is None or not getattr(user, "is_authenticated", False):
        return AuthorityCheck(False, "only a signed-in reviewer may decide")
    name = user.get_username()
    if not user.is_active:
        return AuthorityCheck(False, f"{name} is inactive and may not decide")
    if user.is_superuser:
        return AuthorityCheck(True, f"{name} is a superuser")
    if amount is not None and not isinstance(amount, Decimal):
        amount = Decimal(str(amount))
    for grant in grants_for(user):
        if grant.covers(action_name=action_name, tenant=tenant, amount=amount):
            return AuthorityCheck(
                True,
                f"grant #{grant.pk} ({grant.principal_label}) lets {name} decide "
                f"{_scope(action_name, tenant, amount)}",
            )
    return AuthorityCheck(
        False, f"no grant lets {name} decide {_scope(action_name, tenant, amount)}"
    )
