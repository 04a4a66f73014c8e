"""Tenants: a customer of the platform is created with the queue its reviews land in."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from hitl.db import for_update
from hitl.kernel import Actor
from policies.models import PolicyVersion, Tenant
from policies.services import version_activate

from ..exceptions import InvalidReviewInput, NotAuthorized
from ..models import Queue
from ._common import full_clean_or_refuse, stamp, summarise


def tenant_create(
    *,
    actor: AbstractBaseUser,
    slug: str,
    name: str,
    owner: AbstractBaseUser,
    members: Iterable[AbstractBaseUser] = (),
    queue_slug: str = "operations",
    queue_name: str = "Operations",
    policy_version: PolicyVersion | None = None,
) -> Tenant:
    """A new tenant with its first queue (owner, members) and, when given, its own policy
    version; without one, the default policy decides for it."""
    if not actor.is_superuser:
        raise NotAuthorized("Only a platform administrator creates tenants.")
    tenant, queue, errors = _unsaved(slug, name, owner, queue_slug, queue_name)
    if errors:
        raise InvalidReviewInput(summarise(errors), field_errors=errors)
    with transaction.atomic():
        stamp(tenant, Actor.of_user(actor), "tenant created")
        tenant.save()
        stamp(queue, Actor.of_user(actor), f"created with tenant {slug}")
        queue.save()
        queue.members.add(*members)
        if policy_version is not None:
            version_activate(actor=actor, version=policy_version, tenant=slug)
    return tenant


def tenant_rename(*, actor: AbstractBaseUser, tenant: Tenant, name: str) -> Tenant:
    """Change a tenant's display name; its slug is in every row it owns and never changes."""
    if not actor.is_superuser:
        raise NotAuthorized("Only a platform administrator renames tenants.")
    with transaction.atomic():
        locked = for_update(Tenant.objects.all()).get(pk=tenant.pk)
        locked.name = name
        full_clean_or_refuse(locked)
        stamp(locked, Actor.of_user(actor), f"renamed to {name}")
        locked.save(update_fields=["name"])
    return locked


def tenant_problems(
    *, slug: str, name: str, owner: AbstractBaseUser | None, queue_slug: str, queue_name: str
) -> dict[str, list[str]]:
    """What is wrong with a tenant about to be created, by field (empty: nothing)."""
    return _unsaved(slug, name, owner, queue_slug, queue_name)[2]


def _unsaved(slug, name, owner, queue_slug, queue_name):
    tenant = Tenant(slug=slug, name=name)
    queue = Queue(slug=queue_slug, name=queue_name, tenant=slug, owner=owner)
    errors: dict[str, list[str]] = {}
    for prefix, obj, exclude in (("", tenant, []), ("queue_", queue, ["tenant"])):
        try:
            obj.full_clean(exclude=exclude, validate_unique=obj is tenant)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                if obj is queue and field == "tenant":
                    continue  # the tenant is created with it
                errors.setdefault(f"{prefix}{field}", []).extend(messages)
    if owner is None:
        errors.setdefault("owner", []).append("A tenant's first queue needs an owner.")
    return tenant, queue, errors
