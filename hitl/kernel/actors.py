"""The principal acting in a service call: a person, an agent, or the platform itself."""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser


@dataclass(frozen=True)
class Actor:
    """Who is acting, as stored in history rows (`label`) and, for people, `history_user`."""

    label: str
    user: AbstractBaseUser | None = None
    # A reviews.Agent; typed loosely because the kernel imports no app.
    agent: Any = None

    @classmethod
    def of_user(cls, user: AbstractBaseUser) -> "Actor":
        return cls(label=f"user:{user.get_username()}", user=user)

    @classmethod
    def of_agent(cls, agent: Any) -> "Actor":
        return cls(label=f"agent:{agent.name}", agent=agent)

    @classmethod
    def system(cls, what: str) -> "Actor":
        return cls(label=f"system:{what}")


def as_actor(who: "Actor | AbstractBaseUser | None", *, system: str = "unknown") -> Actor:
    """The Actor for what a caller passed: an Actor, a person, or None (the platform)."""
    if isinstance(who, Actor):
        return who
    if who is None or getattr(who, "pk", None) is None:
        return Actor.system(system)
    return Actor.of_user(who)
