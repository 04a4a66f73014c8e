"""Publishing a rule set asks first: a page shows what changes against the active version
and the gate report, and only its Confirm button publishes."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from policies import gates, selectors, services
from policies.admin_publish import draft_changes
from policies.models import PolicyVersion, RuleSet
from policies.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def publish_url(rule_set_id) -> str:
    return reverse("admin:policies_ruleset_publish", args=[rule_set_id])


@pytest.fixture
def edited(actor, seeded):
    """The seeded draft with one rule changed, one added and one removed."""
    rule_set = seeded.rule_set
    services.rule_update(
        actor=actor, rule=rule_set.rules.get(name="reads_auto_execute"), fields={"risk": "medium"}
    )
    services.rule_add(
        actor=actor,
        rule_set=rule_set,
        fields={
            "name": "no_deletions_on_fridays",
            "priority": 3,
            "outcome": "deny",
            "conditions": [{"field": "action", "op": "=", "value": "delete_record"}],
        },
    )
    services.rule_delete(actor=actor, rule=rule_set.rules.get(name="drafts_need_edit_review"))
    return rule_set


@pytest.fixture
def danger():
    def check(rule_set, snapshot):
        row = {
            "review_id": "01REJECTED",
            "action": "issue_refund",
            "tenant": "",
            "arguments": {"order_id": "o-1"},
            "verdict": "reject",
            "reason": "Already refunded",
            "decided_at": timezone.now().isoformat(),
            "draft_rule": "r",
            "draft_outcome": "auto_execute",
        }
        return {"title": "Stub gate", "danger": [row], "friction": [], "replayed": 3}

    gates.register(check)
    yield check
    gates.unregister(check)


def test_the_confirmation_shows_what_changes_and_publishes_nothing(admin_client, edited):
    page = admin_client.get(publish_url(edited.pk))
    assert page.status_code == 200
    text = " ".join(page.content.decode().split())
    assert "Publish default?" in text
    assert "Nothing is published until you confirm below." in text
    assert "Deciding now for the default tenant: <strong>default v1" in text
    assert "Rules added: 1" in text and "no_deletions_on_fridays" in text
    assert "Rules removed: 1" in text and "drafts_need_edit_review" in text
    assert "Rules changed: 1" in text and "reads_auto_execute" in text
    assert "<code>low</code>" in text and "<code>medium</code>" in text
    assert "3 changes." in text
    assert 'value="Confirm: publish default"' in text
    assert PolicyVersion.objects.count() == 1


def test_confirming_publishes_and_activates(admin_client, edited):
    response = admin_client.post(publish_url(edited.pk), follow=True)
    version = PolicyVersion.objects.get(number=2)
    assert selectors.active_version_for("") == version
    assert f"version {version.short_hash} (v2) is published" in response.content.decode()
    # Afterwards the draft is what decides: nothing left to change.
    again = admin_client.get(publish_url(edited.pk)).content.decode()
    assert "The saved draft is that version: publishing changes nothing." in again


def test_the_change_page_links_to_the_confirmation_instead_of_posting(admin_client, seeded):
    page = admin_client.get(reverse("admin:policies_ruleset_change", args=[seeded.rule_set_id]))
    text = page.content.decode()
    assert f'<a href="{publish_url(seeded.rule_set_id)}">Publish&hellip;</a>' in text
    assert f'action="{publish_url(seeded.rule_set_id)}"' not in text


def test_the_gate_report_links_to_the_confirmation(admin_client, seeded):
    page = admin_client.get(reverse("admin:policies_ruleset_gate", args=[seeded.rule_set_id]))
    text = page.content.decode()
    assert f'href="{publish_url(seeded.rule_set_id)}" class="button default"' in text
    assert f'action="{publish_url(seeded.rule_set_id)}"' not in text


def test_danger_shows_the_report_and_asks_for_a_reason_before_anything(
    admin_client, edited, danger
):
    text = admin_client.get(publish_url(edited.pk)).content.decode()
    assert "Stub gate" in text and "01REJECTED" in text and "Already refunded" in text
    assert 'name="confirm_danger"' in text and 'name="danger_reason"' in text
    assert 'value="Publish despite the danger"' in text
    assert PolicyVersion.objects.count() == 1
    admin_client.post(publish_url(edited.pk), {"confirm_danger": "on", "danger_reason": "ok"})
    assert PolicyVersion.objects.count() == 2


def test_a_draft_that_cannot_publish_offers_no_confirm_button(admin_client, actor):
    empty = services.rule_set_create(actor=actor, name="empty")
    text = admin_client.get(publish_url(empty.pk)).content.decode()
    assert "The saved draft cannot be published: Rule set empty has no enabled rules" in text
    assert "Confirm: publish" not in text


def test_the_confirmation_needs_the_publish_permission(client, seeded):
    viewer = UserFactory(username="viewer", grant=False)
    viewer.user_permissions.add(Permission.objects.get(codename="view_ruleset"))
    client.force_login(viewer)
    assert client.get(publish_url(seeded.rule_set_id)).status_code == 403


def test_the_changelist_action_opens_the_confirmation(admin_client, actor, edited):
    changelist = reverse("admin:policies_ruleset_changelist")
    response = admin_client.post(
        changelist, {"action": "publish_selected", "_selected_action": [edited.pk]}
    )
    assert response.status_code == 302 and response.url == publish_url(edited.pk)
    other = services.rule_set_create(actor=actor, name="other", tenant="acme")
    both = admin_client.post(
        changelist,
        {"action": "publish_selected", "_selected_action": [edited.pk, other.pk]},
        follow=True,
    )
    assert "Select one rule set" in both.content.decode()
    assert PolicyVersion.objects.count() == 1


def test_changes_name_settings_and_a_first_version(actor, seeded):
    rule_set = services.rule_set_update(
        actor=actor, rule_set=seeded.rule_set, fields={"unknown_action": "deny"}
    )
    changes = draft_changes(rule_set, selectors.draft_snapshot(rule_set))
    assert changes.settings == [("unknown action", "escalate", "deny")]
    assert (changes.added, changes.removed, changes.changed) == ([], [], [])

    fresh = services.rule_set_create(actor=actor, name="acme-rules", tenant="acme")
    services.rule_add(
        actor=actor,
        rule_set=fresh,
        fields={"name": "deny_all", "priority": 1, "outcome": "deny", "conditions": []},
    )
    first = draft_changes(fresh, selectors.draft_snapshot(fresh))
    # acme has no version of its own: the default tenant's decides, so that is the baseline.
    assert first.active == selectors.active_version_for("acme")
    assert [r["name"] for r in first.added] == ["deny_all"]
    assert RuleSet.objects.get(pk=fresh.pk).versions.count() == 0
