"""Who may call what: agents talk about their own runs; people decide."""

from rest_framework.permissions import BasePermission

from ..models import Agent


class IsAgent(BasePermission):
    message = "This endpoint is for agents: authenticate with an agent's API key."

    def has_permission(self, request, view):
        return isinstance(request.user, Agent)


class IsReviewer(BasePermission):
    message = "Deciding is for signed-in reviewers; an agent key cannot decide."

    def has_permission(self, request, view):
        user = request.user
        return (
            not isinstance(user, Agent)
            and bool(user and user.is_authenticated and user.is_active)
            and user.has_perm("reviews.decide_reviewrequest")
        )


class IsAgentOrReviewer(BasePermission):
    message = "Authenticate with an agent's API key or as a reviewer."

    def has_permission(self, request, view):
        user = request.user
        return isinstance(user, Agent) or bool(user and user.is_authenticated and user.is_staff)


class IsStaffPerson(BasePermission):
    message = "Metrics are for signed-in staff (reviewers, leads)."

    def has_permission(self, request, view):
        user = request.user
        return not isinstance(user, Agent) and bool(
            user and user.is_authenticated and user.is_active and user.is_staff
        )
