"""The reviewer's home at the top of the admin index."""

from django import template
from django.urls import reverse

from ..selectors import inbox_counts

register = template.Library()


@register.inclusion_tag("admin/reviews/_home.html", takes_context=True)
def reviewer_home(context):
    request = context["request"]
    user = request.user
    if not user.is_authenticated or not user.has_perm("reviews.view_reviewrequest"):
        return {"show": False}
    inbox = reverse("admin:reviews_reviewrequest_changelist")
    return {
        "show": True,
        "tenants": inbox_counts(user=user),
        "inbox": inbox,
        "kinds": [
            ("approval", "Approvals", reverse("admin:reviews_approvalreview_changelist")),
            ("edit", "Edits", reverse("admin:reviews_editreview_changelist")),
            ("escalation", "Escalations", reverse("admin:reviews_escalationreview_changelist")),
        ],
    }
