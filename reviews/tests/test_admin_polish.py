"""The small things a person notices on the admin screens: rates as percentages, history
that names agents and shows empty values as empty, links to every report, no link to a
page that is not there, and no empty 405 when a decision's address is opened again."""

import re

import pytest
from django.urls import reverse

from reviews.services import review_approve, review_assign
from reviews.tests.test_admin import desk, desk_review, screen_url  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def squeezed(text: str) -> str:
    return " ".join(text.split())


def test_opening_a_decision_address_leads_to_the_review_not_a_405(client, desk):  # noqa: F811
    review = desk_review("refund-17")
    client.force_login(desk["reviewer"])
    for suffix in ("decide", "assign"):
        response = client.get(screen_url(review, suffix))
        assert response.status_code == 302
        assert response.url == screen_url(review)
        assert client.head(screen_url(review, suffix)).status_code == 302
    assert client.put(screen_url(review, "decide")).status_code == 405
    # A refused decision still shows the screen with the message and what was typed.
    refused = client.post(screen_url(review, "decide"), {"choice": "reject", "reason": ""})
    assert refused.status_code == 200 and "reason is required" in refused.text


def test_history_names_the_agent_and_shows_an_empty_value_as_empty(client, desk):  # noqa: F811
    review = desk_review("refund-17")
    review_assign(review_id=review.review_id, actor=desk["reviewer"], assignee=desk["reviewer"])
    agent_label = review.history.earliest().history_actor
    assert agent_label.startswith("agent:")
    client.force_login(desk["reviewer"])
    page = squeezed(client.get(screen_url(review, "history")).text)
    assert "Deleted user" not in page and "pk=None" not in page
    assert "<strong>Assignee:</strong> - &nbsp;&rarr;&nbsp;&nbsp;reviewer" in page
    assert f"<td> {agent_label} </td>" in page
    assert "<td> None </td>" not in page
    # The reviewer may not open user pages: their name is not a link to a 403.
    assert reverse("admin:auth_user_change", args=[desk["reviewer"].pk]) not in page
    # The screen's own history card names the agent too.
    screen = client.get(screen_url(review)).text
    assert f"<strong>{agent_label}</strong>" in screen


def test_metrics_show_rates_as_percentages(client, desk):  # noqa: F811
    review_approve(review_id=desk_review("refund-17").review_id, reviewer=desk["reviewer"])
    client.force_login(desk["admin"])
    page = squeezed(client.get(reverse("admin:reviews_reviewrequest_metrics")).text)
    assert '<span class="hitl-number">100%</span>approval rate' in page
    assert '<span class="hitl-number">0%</span>rejection rate' in page
    assert not re.search(r'hitl-number">0\.\d+<', page)


def test_the_home_page_links_the_reports_and_needs_no_emoji_font(client, desk):  # noqa: F811
    client.force_login(desk["admin"])
    home = client.get(reverse("admin:index")).text
    assert "&#x1F4C8;" not in home and "\U0001f4c8" not in home
    assert '<svg class="hitl-icon"' in home
    disagreement = reverse("admin:evaluation_evalcase_disagreement")
    assert f'href="{disagreement}"' in home
    assert "View site" not in home
    evaluation = client.get(reverse("admin:app_list", args=["evaluation"])).text
    assert f'href="{disagreement}"' in evaluation
    # A reviewer cannot open the report: no link to it.
    client.force_login(desk["reviewer"])
    assert f'href="{disagreement}"' not in client.get(reverse("admin:index")).text


def test_the_disagreement_page_shows_percentages(client, desk):  # noqa: F811
    review_approve(review_id=desk_review("refund-17").review_id, reviewer=desk["reviewer"])
    client.force_login(desk["admin"])
    page = squeezed(client.get(reverse("admin:evaluation_evalcase_disagreement")).text)
    assert "<td>issue_refund</td><td>1</td><td>0%</td><td>0%</td><td>0%</td>" in page


def test_the_inbox_keeps_every_column(client, desk):  # noqa: F811
    client.force_login(desk["reviewer"])
    page = client.get(reverse("admin:reviews_reviewrequest_changelist")).text
    assert re.search(r'<body class="[^"]*\bhitl-inbox\b', page)
    for column in ("queue", "assignee", "sla_left", "expiry_left", "short_summary"):
        assert f'class="field-{column}' in page
    assert "reviews/review.css" in page
