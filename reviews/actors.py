"""The principal acting in a service call: a person, an agent, or the platform itself."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser

if TYPE_CHECKING:
    from .models import Agent


@dataclass(frozen=True)
class Actor:
    """Who is acting, as stored in history rows (`label`) and, for people, `history_user`."""

    label: str
    user: AbstractBaseUser | None = None
    agent: "Agent | None" = None

    @classmethod
    def of_user(cls, user: AbstractBaseUser) -> "Actor":
        return cls(label=f"user:{user.get_username()}", user=user)

    @classmethod
    def of_agent(cls, agent: "Agent") -> "Actor":
        return cls(label=f"agent:{agent.name}", agent=agent)

    @classmethod
    def system(cls, what: str) -> "Actor":
        return cls(label=f"system:{what}")
