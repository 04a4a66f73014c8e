"""Admin screens: scoping to the reviewer's queues, and history that cannot be reverted."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.admin.templatetags.admin_list import items_for_result
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from hitl.kernel import Actor
from policies.seed import SEED_ACTION_TYPES, seed_policy
from policies.services import grant_create
from reviews.models import Queue, ReviewRequest, ReviewState
from reviews.services import agent_create, review_approve, review_assign, tenant_create
from reviews.tests.factories import (
    QueueFactory,
    UserFactory,
    make_review,
    propose_review,
    role_groups,
)

VIEW_PERMS = [
    "view_approvalreview",
    "view_editreview",
    "view_escalationreview",
    "view_reviewrequest",
]


def staff_reviewer(username):
    user = UserFactory(username=username)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="reviews", codename__in=VIEW_PERMS)
    )
    return user


@pytest.fixture
def two_queues(db):
    rita, remy = staff_reviewer("rita"), staff_reviewer("remy")
    ops, access = QueueFactory(slug="ops"), QueueFactory(slug="access")
    mine = make_review(queue=ops, reviewers=[rita], summary="Refund in the ops queue")
    theirs = make_review(queue=access, reviewers=[remy], summary="Grant in the access queue")
    return rita, mine, theirs


def change_url(review):
    return reverse("admin:reviews_approvalreview_change", args=[review.pk])


@pytest.mark.django_db
def test_reviewer_sees_only_their_queues(client, two_queues):
    rita, mine, theirs = two_queues
    client.force_login(rita)
    page = client.get(reverse("admin:reviews_approvalreview_changelist"))
    assert page.status_code == 200
    assert mine.summary in page.text
    assert theirs.summary not in page.text
    assert client.get(change_url(mine)).status_code == 200
    assert client.get(change_url(theirs)).status_code == 302  # admin: "doesn't exist"


@pytest.mark.django_db
def test_kinds_have_their_own_screens(client, queue, reviewer):
    reviewer.is_superuser = True
    reviewer.save()
    edit = make_review(queue=queue, kind="edit", action_name="draft_reply", content="Hi")
    client.force_login(reviewer)
    edits = client.get(reverse("admin:reviews_editreview_changelist"))
    approvals = client.get(reverse("admin:reviews_approvalreview_changelist"))
    assert edit.review_id in edits.text
    assert edit.review_id not in approvals.text


@pytest.mark.django_db
def test_history_is_readable_and_revert_is_refused(admin_client, queue, reviewer):
    review = make_review(queue=queue)
    review_approve(review_id=review.review_id, reviewer=reviewer)
    first = review.history.earliest()
    history = admin_client.get(reverse("admin:reviews_approvalreview_history", args=[review.pk]))
    assert history.status_code == 200
    assert "approve" in history.text

    url = reverse("admin:reviews_approvalreview_simple_history", args=[review.pk, first.history_id])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"summary": "reverted"})
    assert response.status_code == 403
    review.refresh_from_db()
    assert review.state == ReviewState.APPROVED


@pytest.mark.django_db
def test_reviews_cannot_be_added_or_changed_in_the_plain_admin(admin_client, review):
    add = admin_client.get(reverse("admin:reviews_approvalreview_add"))
    assert add.status_code == 403
    response = admin_client.post(change_url(review), {"summary": "changed"})
    review.refresh_from_db()
    assert review.summary != "changed"
    assert response.status_code in (200, 302, 403)
    delete = admin_client.post(
        reverse("admin:reviews_approvalreview_delete", args=[review.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403


@pytest.mark.django_db
def test_queue_admin_refuses_a_fallback_loop(admin_client):
    a = QueueFactory(slug="a", name="A")
    b = QueueFactory(slug="b", name="B", fallback=a)
    response = admin_client.post(
        reverse("admin:reviews_queue_change", args=[a.pk]),
        {
            "name": "A",
            "slug": "a",
            "tenant": "",
            "sla": "04:00:00",
            "expiry": "3 00:00:00",
            "expiry_behaviour": "cancel",
            "fallback": b.pk,
        },
    )
    assert response.status_code == 200
    assert "loops back" in response.text
    a.refresh_from_db()
    assert a.fallback is None


@pytest.mark.django_db
def test_runs_and_queues_are_scoped_too(client, two_queues):
    rita, mine, theirs = two_queues
    rita.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_agentrun", "view_queue"])
    )
    client.force_login(rita)
    runs = client.get(reverse("admin:reviews_agentrun_changelist"))
    assert mine.run.run_id in runs.text
    assert theirs.run.run_id not in runs.text
    queues = client.get(reverse("admin:reviews_queue_changelist"))
    assert mine.queue.slug in queues.text
    assert theirs.queue.slug not in queues.text


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_inbox_query_count_does_not_grow_with_rows(
    client, queue, reviewer, django_assert_num_queries
):
    url = reverse("admin:reviews_approvalreview_changelist")
    reviewer.user_permissions.add(*Permission.objects.filter(codename__in=VIEW_PERMS))
    client.force_login(reviewer)
    make_review(queue=queue)
    client.get(url)  # warm caches (content types, sessions) before counting
    few = count_queries(client, url)
    for _ in range(15):
        make_review(queue=queue)
    with django_assert_num_queries(few):
        assert client.get(url).status_code == 200


# --- the decision screens ---


TARGETS = {action["name"]: action["target_system"] for action in SEED_ACTION_TYPES}


def proposal(run_id, action, args, summary, *, confidence=0.9, evidence=(), **extra):
    """An agent's proposal in the API's shape; evidence as (id, title, days it stays fresh)."""
    now = timezone.now()
    return {
        "run_id": run_id,
        "action": {"name": action, "target_system": TARGETS[action], "args": args},
        "summary": summary,
        "confidence": confidence,
        "estimated_cost_usd": 0.01,
        "evidence": [
            {"id": key, "title": title, "fresh_until": now + timedelta(days=days)}
            for key, title, days in evidence
        ],
        **extra,
    }


def desk_proposals():
    """What the agent proposes: five reviews for the operations queue (three approvals, an
    edit, an escalation) and three for access; the seed policy routes them."""
    return [
        proposal(
            "refund-17",
            "issue_refund",
            {"order_id": "17", "amount": "20.00", "currency": "EUR"},
            "Refund a damaged mug on order 17.",
            confidence=0.96,
            evidence=[("order-17", "Order 17", 7)],
            facts={"refund_window_valid": True},
        ),
        proposal(
            "email-204",
            "send_email",
            {"template_id": "shipping-delay", "customer_id": "c-204"},
            "Tell customer c-204 their parcel is delayed.",
            audience="external",
        ),
        proposal(
            "delete-88",
            "delete_record",
            {"record_type": "contact", "record_id": "88"},
            "Delete a duplicate contact after a merge.",
            evidence=[("merge-311", "Merge log 311", -1)],
        ),
        proposal(
            "draft-990",
            "draft_reply",
            {"ticket_id": "990"},
            "Reply to a customer asking about a late refund.",
            content="Hi Sam,\n\nYour refund was processed on Monday.\n\nBest regards,\nSupport",
        ),
        proposal(
            "escalate-refund-512",
            "issue_refund",
            {"order_id": "512", "amount": "750.00", "currency": "EUR"},
            "Customer demands a full refund for a sofa delivered late.",
            confidence=0.52,
            options_considered=["full refund", "goodwill voucher of 50.00 EUR", "decline"],
        ),
        proposal(
            "perm-77",
            "change_permission",
            {"user_id": "u-77", "permission": "billing-admin", "change": "grant"},
            "Grant billing-admin to a new finance hire.",
        ),
        proposal(
            "access-reply-1203",
            "draft_reply",
            {"ticket_id": "1203"},
            "Explain to a user why their access request was narrowed.",
            content="Hello,\n\nWrite access needs your manager's approval.",
            facts={"topic": "access"},
        ),
        proposal(
            "perm-escalate-79",
            "change_permission",
            {"user_id": "contractor-9", "permission": "prod-admin", "change": "grant"},
            "A contractor asks for production admin during an incident.",
            confidence=0.4,
        ),
    ]


@pytest.fixture
def desk(db):
    """A review desk: the seed policy, a lead owning the operations and access queues, a
    reviewer in each (with their authority), a platform admin, and a second tenant, Globex,
    with its own lead and agent, which proposes the first refund and email again."""
    seed_policy()
    groups = role_groups()
    people = {
        "admin": UserFactory(username="admin", is_superuser=True, grant=False),
        "lead": UserFactory(username="lead", groups=[groups["Leads"]]),
        "reviewer": UserFactory(username="reviewer", grant=False, groups=[groups["Reviewers"]]),
        "reviewer2": UserFactory(username="reviewer2", grant=False, groups=[groups["Reviewers"]]),
        "globex": UserFactory(username="globex", grant=False, groups=[groups["Leads"]]),
    }
    refunds_and_mail = ["issue_refund", "send_email", "delete_record", "draft_reply"]
    grant_create(
        actor=people["admin"],
        user=people["reviewer"],
        action_names=refunds_and_mail,
        max_amount=Decimal("1000.00"),
    )
    grant_create(
        actor=people["admin"],
        user=people["reviewer2"],
        action_names=["change_permission", "draft_reply"],
    )
    QueueFactory(slug="operations", owner=people["lead"]).members.add(people["reviewer"])
    QueueFactory(slug="access", owner=people["lead"]).members.add(people["reviewer2"])
    agent, _key = agent_create(actor=Actor.system("test"), name="support-agent")
    proposals = {one["run_id"]: one for one in desk_proposals()}
    for one in proposals.values():
        propose_review(agent=agent, **one)

    tenant_create(
        actor=people["admin"],
        slug="globex",
        name="Globex Corp",
        owner=people["globex"],
        members=[people["globex"]],
    )
    grant_create(actor=people["admin"], user=people["globex"], tenants=["globex"])
    globex_agent, _key = agent_create(actor=Actor.system("test"), name="globex", tenant="globex")
    for run_id, theirs in (("refund-17", "globex-refund-31"), ("email-204", "globex-email-7")):
        propose_review(agent=globex_agent, **{**proposals[run_id], "run_id": theirs})
    return people


def screen_url(review, suffix="change"):
    name = {"approval": "approvalreview", "edit": "editreview", "escalation": "escalationreview"}
    return reverse(f"admin:reviews_{name[review.kind]}_{suffix}", args=[review.pk])


def desk_review(run_id):
    return ReviewRequest.objects.get(run__run_id=run_id)


@pytest.mark.django_db
def test_each_kind_has_its_own_screen_with_only_allowed_choices(client, desk):
    client.force_login(desk["reviewer"])
    approval = client.get(screen_url(desk_review("refund-17"))).text
    assert "May this action happen?" in approval
    assert "Refund 20.00 EUR to order 17" in approval
    for choice in ("approve", "reject", "request_more_evidence", "escalate", "edit"):
        assert f'value="{choice}"' in approval
    assert 'value="take_over"' not in approval

    edit = client.get(screen_url(desk_review("draft-990"))).text
    assert "Should this text change before it is used?" in edit
    assert "Accept as is" in edit and "Save edits" in edit
    assert 'value="request_more_evidence"' not in edit

    escalation = client.get(screen_url(desk_review("escalate-refund-512"))).text
    assert "Should a person take over?" in escalation
    assert "goodwill voucher of 50.00 EUR" in escalation
    assert 'value="take_over"' in escalation and 'value="guide"' in escalation
    assert 'value="approve"' not in escalation

    stale = client.get(screen_url(desk_review("delete-88"))).text
    assert "stale since" in stale


@pytest.mark.django_db
def test_deciding_goes_through_the_service_and_ends_the_choices(client, desk):
    review = desk_review("refund-17")
    client.force_login(desk["reviewer"])
    response = client.post(
        screen_url(review, "decide"), {"choice": "approve", "reason": "looks right"}
    )
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.state == ReviewState.APPROVED
    assert review.history.latest().history_user == desk["reviewer"]
    page = client.get(screen_url(review)).text
    assert 'value="reject"' not in page
    assert "nothing more to decide" in page
    again = client.post(screen_url(review, "decide"), {"choice": "reject", "reason": "late"})
    assert again.status_code == 200
    assert "already approved" in again.text


@pytest.mark.django_db
def test_a_refused_decision_keeps_what_was_typed(client, desk):
    review = desk_review("draft-990")
    client.force_login(desk["reviewer"])
    typed = "Hi Sam, a brand new text that must not be lost."
    response = client.post(screen_url(review, "decide"), {"choice": "reject", "content": typed})
    assert response.status_code == 200
    assert "reason is required" in response.text
    assert typed in response.text
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING


@pytest.mark.django_db
def test_an_answerable_call_has_a_response_box_of_its_own(client, desk):
    from reviews.choices import default_choices, narrow

    client.force_login(desk["reviewer"])
    assert 'id="hitl-response"' not in client.get(screen_url(desk_review("refund-17"))).text
    review = make_review(
        queue=Queue.objects.get(slug="operations", tenant=""),
        choices=narrow(default_choices("approval"), kind="approval", answerable=True),
    )
    page = client.get(screen_url(review)).text
    assert 'id="hitl-response"' in page and 'form="respond-form"' in page
    assert "Send as the tool's result" in page
    # The shared reason box's hint is for the buttons; the response box says its own.
    assert "(required to reject, ask for evidence or escalate; optional otherwise)" in page
    # A refused response comes back in its own box, not in the reason box.
    typed = "Shipped on Monday\x00"
    refused = client.post(screen_url(review, "decide"), {"choice": "respond", "reason": typed})
    assert "Cannot store this decision" in refused.text
    box = re.search(r'<textarea id="hitl-response"[^>]*>([^<]*)</textarea>', refused.text)
    assert box and "Shipped on Monday" in box.group(1)
    reason_box = re.search(r'<textarea id="hitl-reason"[^>]*>([^<]*)</textarea>', refused.text)
    assert reason_box and reason_box.group(1) == ""
    answered = client.post(
        screen_url(review, "decide"), {"choice": "respond", "reason": "Shipped on Monday."}
    )
    assert answered.status_code == 302
    review.refresh_from_db()
    assert (review.state, review.final_content) == (ReviewState.EDITED, "Shipped on Monday.")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"order_id": "17", "amount": "20.00"}', "not valid"),  # schema: currency missing
        ('{"order_id": "17", "amount": "5000.00", "currency": "EUR"}', "authority"),
    ],
)
def test_argument_edits_are_revalidated(client, desk, arguments, message):
    review = desk_review("refund-17")
    client.force_login(desk["reviewer"])
    response = client.post(screen_url(review, "decide"), {"choice": "edit", "arguments": arguments})
    assert response.status_code == 200
    assert message in response.text
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING


@pytest.mark.django_db
def test_an_argument_edit_within_authority_is_recorded(client, desk):
    review = desk_review("refund-17")
    client.force_login(desk["reviewer"])
    body = '{"order_id": "17", "amount": "15.00", "currency": "EUR"}'
    client.post(screen_url(review, "decide"), {"choice": "edit", "arguments": body, "reason": "x"})
    review.refresh_from_db()
    assert (review.state, review.final_arguments["amount"]) == (ReviewState.EDITED, "15.00")
    assert "15.00" in client.get(screen_url(review)).text


@pytest.mark.django_db
def test_other_queues_are_refused_everywhere(client, desk):
    mine, theirs = desk_review("refund-17"), desk_review("perm-77")
    client.force_login(desk["reviewer"])
    assert client.get(screen_url(theirs)).status_code == 302
    assert client.get(screen_url(theirs, "history")).status_code in (302, 403, 404)
    assert client.post(screen_url(theirs, "decide"), {"choice": "approve"}).status_code == 403
    assert client.post(screen_url(theirs, "assign")).status_code == 403
    theirs.refresh_from_db()
    assert theirs.state == ReviewState.PENDING
    assert client.get(screen_url(mine, "history")).status_code == 200


@pytest.mark.django_db
def test_leads_see_the_queues_they_own(client, desk):
    client.force_login(desk["lead"])
    inbox = client.get(reverse("admin:reviews_reviewrequest_changelist")).text
    assert "Refund a damaged mug" in inbox and "Grant billing-admin" in inbox


@pytest.mark.django_db
def test_claim_and_bulk_assign(client, desk):
    review = desk_review("refund-17")
    client.force_login(desk["reviewer"])
    client.post(screen_url(review, "assign"))
    review.refresh_from_db()
    assert review.assignee == desk["reviewer"]

    client.force_login(desk["lead"])
    ids = [desk_review("email-204").pk, desk_review("delete-88").pk]
    client.post(
        reverse("admin:reviews_approvalreview_changelist"),
        {"action": "assign_selected", "assignee": desk["reviewer"].pk, "_selected_action": ids},
    )
    assert set(ReviewRequest.objects.filter(pk__in=ids).values_list("assignee", flat=True)) == {
        desk["reviewer"].pk
    }
    mine = client.get(reverse("admin:reviews_approvalreview_changelist") + "?assigned=none")
    assert "Tell customer c-204" not in mine.text


@pytest.mark.django_db
def test_inbox_rows_offer_a_checkbox_for_bulk_actions(client, desk):
    client.force_login(desk["lead"])
    page = client.get(reverse("admin:reviews_approvalreview_changelist")).text
    assert 'id="action-toggle"' in page
    for review_id in ("email-204", "delete-88"):
        pk = desk_review(review_id).pk
        assert f'name="_selected_action" value="{pk}" class="action-select"' in page


@pytest.mark.django_db
def test_home_counts_my_open_reviews(client, desk):
    client.force_login(desk["reviewer"])
    home = client.get(reverse("admin:index"))
    [counts] = home.context["tenants"]
    assert (counts["total"], counts["approval"], counts["edit"], counts["escalation"]) == (
        5,
        3,
        1,
        1,
    )
    client.force_login(desk["reviewer2"])
    assert [c["total"] for c in client.get(reverse("admin:index")).context["tenants"]] == [3]


@pytest.mark.django_db
def test_overdue_reviews_are_highlighted(client, desk):
    client.force_login(desk["reviewer"])
    review = desk_review("refund-17")
    with time_machine.travel(review.due_at + timedelta(minutes=30), tick=False):
        page = client.get(reverse("admin:reviews_approvalreview_changelist"))
        assert 'class="hitl-overdue">overdue 30m' in page.text
        [counts] = client.get(reverse("admin:index")).context["tenants"]
        assert counts["overdue"] == 5


@pytest.mark.django_db
def test_all_kinds_inbox_query_count_is_flat(client, desk, django_assert_num_queries):
    url = reverse("admin:reviews_reviewrequest_changelist")
    client.force_login(desk["reviewer"])
    client.get(url)
    few = count_queries(client, url)
    queue = Queue.objects.get(tenant="", slug="operations")
    for _ in range(10):
        make_review(queue=queue, kind="edit", action_name="draft_reply", content="x")
    with django_assert_num_queries(few):
        assert client.get(url).status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db
def test_large_inboxes_are_not_counted_row_by_row(client, desk, monkeypatch):
    from reviews.admin import pagination

    monkeypatch.setattr(pagination, "EXACT_BELOW", 0)  # as if the table were huge
    client.force_login(desk["reviewer"])
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(reverse("admin:reviews_reviewrequest_changelist")).status_code == 200
    sql = [q["sql"] for q in ctx.captured_queries]
    assert any(s.startswith("EXPLAIN") for s in sql)
    assert not any("COUNT(" in s.upper() and "reviews_reviewrequest" in s for s in sql), sql


@pytest.mark.django_db
@pytest.mark.parametrize(
    "opened_at", ["2020-01-01T00:00:00", "2020-02-30T00:00:00+00:00", "soon", ""]
)
def test_odd_opened_at_values_are_ignored_not_crashes(client, desk, opened_at):
    review = desk_review("refund-17")
    client.force_login(desk["reviewer"])
    response = client.post(
        screen_url(review, "decide"), {"choice": "approve", "opened_at": opened_at}
    )
    assert response.status_code == 302
    assert review.decisions.get().opened_at is None


@pytest.mark.django_db
def test_deep_or_unstorable_arguments_are_refused(client, desk):
    review = desk_review("refund-17")
    client.force_login(desk["reviewer"])
    for raw in ("[" * 5000 + "]" * 5000, '{"amount": NaN}', '{"amount": "a\\u0000"}'):
        response = client.post(screen_url(review, "decide"), {"choice": "edit", "arguments": raw})
        assert response.status_code == 200
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING


@pytest.mark.django_db
def test_only_the_owner_changes_a_queue(client, desk):
    from django.contrib.auth.models import Permission

    member = UserFactory(username="lead2")
    member.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_queue", "change_queue"])
    )
    access = Queue.objects.get(tenant="", slug="access")
    access.members.add(member)
    client.force_login(member)
    url = reverse("admin:reviews_queue_change", args=[access.pk])
    form = {
        "name": "Access",
        "slug": "access",
        "tenant": "",
        "sla": "04:00:00",
        "expiry": "3 00:00:00",
        "expiry_behaviour": "cancel",
        "escalation_owner": member.pk,
    }
    assert client.post(url, form).status_code == 403
    access.refresh_from_db()
    assert access.escalation_owner is None

    client.force_login(desk["lead"])
    response = client.post(url, {**form, "remind_before": "00:30:00", "remind_every": "01:00:00"})
    assert response.status_code == 302, response.text
    access.refresh_from_db()
    assert access.escalation_owner == member
    assert access.owner == desk["lead"]  # the owner field is not the lead's to change
    assert access.history.latest().history_user == desk["lead"]


@pytest.mark.django_db
def test_hostile_text_is_escaped_on_every_screen(client, desk):
    evil = "<script>alert(1)</script>' OR 1=1; -- <img src=x onerror=alert(2)>"
    queue = Queue.objects.get(tenant="", slug="operations")
    review = make_review(
        queue=queue,
        summary=evil,
        content=evil,
        arguments={"order_id": evil, "amount": "20.00", "currency": "EUR"},
        evidence=[{"id": "e1", "title": evil, "excerpt": evil, "url": "https://x.example/?q=<b>"}],
        uncertainty=evil,
    )
    client.force_login(desk["reviewer"])
    pages = [
        client.get(screen_url(review)).text,
        client.get(reverse("admin:reviews_approvalreview_changelist")).text,
        client.get(reverse("admin:reviews_reviewrequest_changelist")).text,
    ]
    for page in pages:
        assert "<script>alert(1)" not in page
        assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]


@pytest.mark.django_db
@pytest.mark.parametrize("model_name", ["approvalreview", "reviewrequest"])
def test_inbox_rows_are_the_admins_own_markup(client, desk, model_name):
    # The inbox builds its rows per column (admin.rows); they must read exactly as the
    # admin's per-cell rendering: links keeping the filters, escaping, empty cells, badges.
    queue = Queue.objects.get(tenant="", slug="operations")
    make_review(queue=queue, summary="<b>Tom & Jerry's</b> refund", due_at=None)
    make_review(queue=queue, summary="   ")
    assigned = make_review(queue=queue, summary="x" * 120)
    review_assign(review_id=assigned.review_id, actor=desk["lead"], assignee=desk["reviewer"])
    client.force_login(desk["lead"])
    url = reverse(f"admin:reviews_{model_name}_changelist") + "?state=all&q=&o=-3"
    with time_machine.travel(assigned.due_at + timedelta(minutes=5), tick=False):
        response = client.get(url)
    cl = response.context["cl"]
    rows = response.context["results"]
    assert len(rows) == len(cl.result_list) >= 4
    # Rendered at the same moment as the page, so the time-left cells agree.
    with time_machine.travel(assigned.due_at + timedelta(minutes=5), tick=False):
        cl.model_admin._now = timezone.now()
        admin_rows = ["".join(items_for_result(cl, row, None)) for row in cl.result_list]
    assert ["".join(row) for row in rows] == admin_rows
    page = response.text
    assert "&lt;b&gt;Tom &amp; Jerry&#x27;s&lt;/b&gt; refund" in page
    assert "_changelist_filters=state%3Dall%26q%3D%26o%3D-3" in page
    assert 'class="hitl-overdue">overdue 5m' in page


def opened_field(client, review):
    page = client.get(screen_url(review)).content.decode()
    return re.search(r'name="opened_at" value="([^"]+)"', page).group(1)


@pytest.mark.django_db
def test_the_screen_records_when_it_was_opened(client, desk, clock):
    review = desk_review("email-204")
    client.force_login(desk["reviewer"])
    signed = opened_field(client, review)
    clock.shift(timedelta(seconds=40))
    client.post(screen_url(review, "decide"), {"choice": "approve", "opened_at": signed})
    assert timedelta(seconds=40) <= review.decisions.get().time_spent < timedelta(seconds=45)


@pytest.mark.django_db
@pytest.mark.parametrize("forgery", ["tampered", "another review's", "plain"])
def test_a_form_cannot_claim_another_opening_time(client, desk, clock, forgery):
    review, other = desk_review("refund-17"), desk_review("email-204")
    client.force_login(desk["reviewer"])
    clock.shift(timedelta(days=-30))
    signed = opened_field(client, other if forgery == "another review's" else review)
    clock.shift(timedelta(days=30))
    value = {
        "tampered": signed.replace(signed[:4], str(int(signed[:4]) - 1), 1),
        "another review's": signed,
        "plain": "2001-01-01T00:00:00+00:00",
    }[forgery]
    client.post(screen_url(review, "decide"), {"choice": "approve", "opened_at": value})
    assert review.decisions.get().opened_at is None


@pytest.mark.django_db
def test_a_platform_admin_creates_a_tenant_with_its_queue_and_policy(client, desk):
    from policies.models import PolicyActivation, PolicyVersion, Tenant

    version = PolicyVersion.objects.order_by("-pk").first()
    client.force_login(desk["admin"])
    form = {
        "slug": "initech",
        "name": "Initech",
        "queue_name": "Initech operations",
        "queue_slug": "operations",  # the default tenant has one too: names are per tenant
        "owner": desk["lead"].pk,
        "members": [desk["reviewer2"].pk],
        "policy_version": version.pk,
    }
    response = client.post(reverse("admin:policies_tenant_add"), form)
    assert response.status_code == 302, response.content[:500]
    tenant = Tenant.objects.get(slug="initech")
    queue = Queue.objects.get(tenant="initech", slug="operations")
    assert (queue.owner, list(queue.members.all())) == (desk["lead"], [desk["reviewer2"]])
    assert PolicyActivation.objects.get(tenant="initech").version == version
    page = client.get(reverse("admin:policies_tenant_change", args=[tenant.pk])).content.decode()
    assert reverse("admin:reviews_queue_change", args=[queue.pk]) in page
    # The seed policy also routes to `access`, which this tenant lacks: the page says so.
    assert "Missing here: access" in page

    again = client.post(reverse("admin:policies_tenant_add"), {**form, "name": "Again"})
    assert again.status_code == 200 and "already exists" in again.content.decode()
    bad = client.post(reverse("admin:policies_tenant_add"), {**form, "slug": "Bad Slug!"})
    assert bad.status_code == 200 and Tenant.objects.count() == 2  # globex (the desk's), initech


@pytest.mark.django_db
def test_only_a_platform_admin_creates_tenants_and_a_lead_cannot_move_a_queue(client, desk):
    client.force_login(desk["lead"])
    assert client.get(reverse("admin:policies_tenant_add")).status_code == 403
    queue = Queue.objects.get(tenant="", slug="operations")
    page = client.get(reverse("admin:reviews_queue_change", args=[queue.pk])).content.decode()
    assert 'name="tenant"' not in page  # shown, not editable


@pytest.mark.django_db
def test_the_home_counts_each_tenant_apart(client, desk):
    # The lead of the default tenant also owns a queue of the desk's second tenant.
    globex_ops = Queue.objects.get(tenant="globex", slug="operations")
    globex_ops.members.add(desk["lead"])
    client.force_login(desk["lead"])
    page = client.get(reverse("admin:index")).content.decode()
    assert "Globex Corp" in page and "Default tenant" in page
    globex_open = ReviewRequest.objects.filter(tenant="globex", state="pending").count()
    block = page.split('data-tenant="globex"')[1].split("</div>\n</div>")[0]
    assert f'<span class="hitl-number">{globex_open}</span>open in my queues' in block
    # Its links open that tenant's reviews only.
    link = re.search(r'href="([^"]+)"><span class="hitl-number">\d+</span>open in', block)[1]
    listed = client.get(link.replace("&amp;", "&")).content.decode()
    for review in ReviewRequest.objects.filter(state="pending"):
        assert (review.review_id in listed) == (review.tenant == "globex"), review.tenant


@pytest.mark.django_db
def test_a_browsers_crlf_is_not_an_edit_and_edits_keep_the_agents_line_endings(client, desk):
    review = desk_review("draft-990")
    assert "\n" in review.content and "\r" not in review.content
    client.force_login(desk["reviewer"])
    as_sent = review.content.replace("\n", "\r\n")  # what a browser posts for an untouched box
    page = client.post(screen_url(review, "decide"), {"choice": "edit", "content": as_sent})
    assert "changes nothing" in page.text
    assert not review.decisions.exists()
    edited = as_sent + "\r\nKind regards, Rita"
    client.post(screen_url(review, "decide"), {"choice": "edit", "content": edited})
    review.refresh_from_db()
    assert review.final_content == review.content + "\nKind regards, Rita"


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["abc", "%00", "%C2%B2", "9" * 30])
def test_a_history_version_that_is_not_a_number_is_a_404(client, desk, version):
    review = desk_review("refund-17")
    client.force_login(desk["admin"])
    for url in (
        f"/admin/reviews/approvalreview/{review.pk}/history/{version}/",
        f"/admin/reviews/queue/{review.queue_id}/history/{version}/",
        f"/admin/policies/ruleset/1/history/{version}/",
    ):
        assert client.get(url).status_code == 404, url


@pytest.mark.django_db
def test_a_lead_adds_a_queue_to_a_tenant_they_own_a_queue_in(client, desk):
    client.force_login(desk["globex"])
    form = client.get(reverse("admin:reviews_queue_add") + "?tenant=globex").content.decode()
    tenant_select = form.split('name="tenant"')[1].split("</select>")[0]
    assert 'value="globex" selected' in tenant_select and 'value=""' not in tenant_select
    response = client.post(
        reverse("admin:reviews_queue_add"),
        {
            "name": "Globex refunds",
            "slug": "refunds",
            "tenant": "globex",
            "sla": "04:00:00",
            "remind_before": "00:30:00",
            "remind_every": "01:00:00",
            "expiry": "3 00:00:00",
            "expiry_behaviour": "cancel",
        },
    )
    assert response.status_code == 302, response.content[:1000]
    queue = Queue.objects.get(tenant="globex", slug="refunds")
    assert queue.owner == desk["globex"]
    assert client.get(reverse("admin:reviews_queue_change", args=[queue.pk])).status_code == 200


@pytest.mark.django_db
def test_a_platform_admin_renames_a_tenant_but_never_its_slug(client, desk):
    from policies.models import Tenant

    tenant = Tenant.objects.get(slug="globex")
    client.force_login(desk["admin"])
    url = reverse("admin:policies_tenant_change", args=[tenant.pk])
    response = client.post(url, {"name": "Globex Corporation", "slug": "hijacked"})
    assert response.status_code == 302, response.content[:500]
    tenant.refresh_from_db()
    assert (tenant.slug, tenant.name) == ("globex", "Globex Corporation")
    assert tenant.history.latest().history_change_reason == "renamed to Globex Corporation"
    assert client.post(url, {"name": ""}).status_code == 200  # required: shown, not saved
    client.force_login(desk["lead"])
    assert client.post(url, {"name": "Mine"}).status_code == 403


@pytest.mark.django_db
def test_the_dashboard_workload_is_one_tenants(client, desk):
    client.force_login(desk["admin"])
    url = reverse("admin:reviews_reviewrequest_metrics")
    globex = client.get(url + "?tenant=globex").context["workload"]
    assert (
        sum(row["open"] for row in globex)
        == ReviewRequest.objects.filter(tenant="globex", state__in=("pending", "escalated")).count()
    )
    everyone = client.get(url + "?tenant=*").context["workload"]
    assert sum(r["open"] for r in everyone) > sum(r["open"] for r in globex)
    api = client.get("/api/v1/metrics/?tenant=globex").json()
    assert api["filters"]["tenant"] == "globex"


@pytest.mark.django_db
def test_a_lead_changes_who_works_a_queue_and_the_queues_history_says_so(client, desk):
    from django.utils.duration import duration_string

    queue = Queue.objects.get(tenant="", slug="operations")
    client.force_login(desk["lead"])
    url = reverse("admin:reviews_queue_change", args=[queue.pk])
    form = {
        "name": queue.name,
        "slug": queue.slug,
        "members": [desk["reviewer2"].pk],
        "escalation_owner": "",
        "sla": duration_string(queue.sla),
        "remind_before": duration_string(queue.remind_before),
        "remind_every": duration_string(queue.remind_every),
        "expiry": duration_string(queue.expiry),
        "expiry_behaviour": queue.expiry_behaviour,
        "fallback": "",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content[:1000]
    assert list(queue.members.all()) == [desk["reviewer2"]]
    row = queue.history.latest()
    assert (row.history_user, row.history_change_reason) == (
        desk["lead"],
        "settings changed; members added: reviewer2; members removed: reviewer",
    )
    assert [member.user_id for member in row.members.all()] == [desk["reviewer2"].pk]
    history = client.get(reverse("admin:reviews_queue_history", args=[queue.pk]))
    assert "members removed: reviewer" in history.text


@pytest.mark.django_db
def test_an_agent_changed_in_the_admin_is_in_its_history(client, desk):
    from reviews.models import Agent

    agent = Agent.objects.get(name="support-agent")
    keys = list(agent.keys.values_list("pk", flat=True))
    client.force_login(desk["admin"])
    url = reverse("admin:reviews_agent_change", args=[agent.pk])
    form = {
        "tenant": "",
        "callback_url": "https://agent.example.com/hook",
        # is_active left out: the box is unticked
        "keys-TOTAL_FORMS": str(len(keys)),
        "keys-INITIAL_FORMS": str(len(keys)),
        "keys-MIN_NUM_FORMS": "0",
        "keys-MAX_NUM_FORMS": "1000",
        **{f"keys-{index}-id": pk for index, pk in enumerate(keys)},
    }
    refused = client.post(url, {**form, "tenant": "nobody"})
    assert refused.status_code == 200 and "No tenant" in refused.text
    response = client.post(url, form)
    assert response.status_code == 302, response.content[:1000]
    agent.refresh_from_db()
    assert (agent.callback_url, agent.is_active) == ("https://agent.example.com/hook", False)
    row = agent.history.latest()
    assert (row.history_user, row.history_change_reason) == (
        desk["admin"],
        "changed callback_url, is_active",
    )
