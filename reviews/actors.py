"""The principal acting in a service call: a person, an agent, or the platform itself."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser


@dataclass(frozen=True)
class Actor:
    """Who is acting, as stored in history rows (`label`) and, for people, `history_user`."""

    label: str
    user: AbstractBaseUser | None = None

    @classmethod
    def of_user(cls, user: AbstractBaseUser) -> "Actor":
        return cls(label=f"user:{user.get_username()}", user=user)

    @classmethod
    def agent(cls, name: str) -> "Actor":
        return cls(label=f"agent:{name}")

    @classmethod
    def system(cls, what: str) -> "Actor":
        return cls(label=f"system:{what}")


def as_actor(actor: "Actor | AbstractBaseUser") -> Actor:
    """Services accept a user where a person acts; normalise to an Actor."""
    return actor if isinstance(actor, Actor) else Actor.of_user(actor)
