"""Who may see and do what: every role against every endpoint and admin page, for objects
of their own tenant and queue and of another's. Each cell is asserted."""

import json

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from evaluation.models import Dataset
from evaluation.services import dataset_create, dataset_publish
from evaluation.tests.factories import evaluation_role_groups
from hitl.kernel import Actor
from policies.models import PolicyVersion, Tenant
from policies.seed import seed_policy
from reviews.models import Queue
from reviews.services import agent_create, tenant_create
from reviews.tests.factories import UserFactory, make_review

ROLES = ["agent_a", "agent_b", "reviewer_x", "reviewer_y", "lead", "ml", "anonymous"]

# endpoint -> roles allowed on the object of tenant A / queue X (the mirror cells, object of
# tenant B / queue Y, swap agent_a<->agent_b and reviewer_x<->reviewer_y).
ALLOWED = {
    "api: get review": {"agent_a", "reviewer_x", "lead"},
    "api: supply evidence": {"agent_a"},
    "api: cancel": {"agent_a"},
    "api: decide": {"reviewer_x", "lead"},
    "api: claim execution": {"agent_a"},
    "api: report execution": {"agent_a"},
    "api: propose for the tenant": {"agent_a"},
    "api: get run": {"agent_a", "reviewer_x", "lead"},
    "api: metrics": {"reviewer_x", "reviewer_y", "lead", "ml"},
    "api: dataset export": {"ml"},
    "admin: review page": {"reviewer_x", "lead"},
    "admin: review history": {"reviewer_x", "lead"},
    "admin: decide": {"reviewer_x", "lead"},
    "admin: run page": {"reviewer_x", "lead"},
    "admin: eval cases": {"ml"},
    "admin: queue page": {"reviewer_x", "lead"},
    "admin: tenant page": set(),  # platform admins only
    "admin: dataset page": {"ml"},
}
MIRROR = {"agent_a": "agent_b", "agent_b": "agent_a", "reviewer_x": "reviewer_y",
          "reviewer_y": "reviewer_x"}  # fmt: skip


@pytest.fixture
def world(db):
    seed_policy()
    groups = evaluation_role_groups()
    reviewers, leads, ml_group = (groups[n] for n in ("Reviewers", "Leads", "ML engineers"))
    people = {
        "reviewer_x": UserFactory(username="rx"),
        "reviewer_y": UserFactory(username="ry"),
        "lead": UserFactory(username="boss"),
        "ml": UserFactory(username="mlx", grant=False),
    }
    people["reviewer_x"].groups.add(reviewers)
    people["reviewer_y"].groups.add(reviewers)
    people["lead"].groups.add(leads)
    people["ml"].groups.add(ml_group)
    # Two tenants, each with its own queue (of the same name), reviewer, agent, policy
    # activation and dataset; the lead owns both queues.
    version = PolicyVersion.objects.order_by("-pk").first()
    admin = UserFactory(username="admin", is_superuser=True, grant=False)
    for tenant, reviewer in (("acme", "reviewer_x"), ("initech", "reviewer_y")):
        tenant_create(
            actor=admin,
            slug=tenant,
            name=tenant.title(),
            owner=people["lead"],
            members=[people[reviewer]],
            queue_slug="ops",
            policy_version=version,
        )
    queue_x = Queue.objects.get(tenant="acme", slug="ops")
    queue_y = Queue.objects.get(tenant="initech", slug="ops")
    keys = {}
    for role, tenant in (("agent_a", "acme"), ("agent_b", "initech")):
        _, keys[role] = agent_create(actor=Actor.system("t"), name=role.replace("_", "-"),
                                     tenant=tenant)  # fmt: skip
    objects = {
        "A": make_review(queue=queue_x, agent="agent-a", tenant="acme", run_id="run-a"),
        "B": make_review(queue=queue_y, agent="agent-b", tenant="initech", run_id="run-b"),
    }
    from evaluation.models import EvalCase

    for tenant in ("acme", "initech"):
        EvalCase.objects.create(review_id="x", run_id="x", action_name="a", label="reject",
                                status="accepted", tenant=tenant)  # fmt: skip
        dataset_publish(dataset=dataset_create(slug=f"cases-{tenant}", name=tenant, tenant=tenant),
                        actor=None)  # fmt: skip
    ml_perms = Permission.objects.filter(codename__in=["view_dataset"])
    people["ml"].user_permissions.add(*ml_perms)
    return {"people": people, "keys": keys, "objects": objects}


def client_for(world, role):
    if role in ("agent_a", "agent_b"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['keys'][role]}")
        return client
    client = APIClient()
    if role != "anonymous":
        client.force_login(world["people"][role])
    return client


def call(client, endpoint, review):
    rid, pk = review.review_id, review.pk
    body = json.dumps
    if endpoint == "api: get review":
        return client.get(f"/api/v1/reviews/{rid}/")
    if endpoint == "api: supply evidence":
        return client.post(f"/api/v1/reviews/{rid}/evidence/",
                           body({"evidence": [{"id": "e", "title": "E"}]}),
                           content_type="application/json")  # fmt: skip
    if endpoint == "api: cancel":
        return client.post(f"/api/v1/reviews/{rid}/cancel/", body({"reason": "withdrawn"}),
                           content_type="application/json")  # fmt: skip
    if endpoint == "api: decide":
        return client.post(f"/api/v1/reviews/{rid}/decisions/", body({"choice": "approve"}),
                           content_type="application/json")  # fmt: skip
    if endpoint == "api: claim execution":
        return client.post(f"/api/v1/reviews/{rid}/execution/claim/", body({}),
                           content_type="application/json")  # fmt: skip
    if endpoint == "api: report execution":
        report = body({"outcome": "succeeded"})
        return client.post(f"/api/v1/reviews/{rid}/execution/report/", report,
                           content_type="application/json")  # fmt: skip
    if endpoint == "api: propose for the tenant":
        proposal = {"run_id": f"run-new-{review.tenant}", "tenant": review.tenant,
                    "action": {"name": "send_email", "target_system": "mailer",
                               "args": {"template_id": "t", "customer_id": "c"}},
                    "summary": "Mail", "audience": "external", "confidence": 0.9,
                    "estimated_cost_usd": 0.01}  # fmt: skip
        return client.post("/api/v1/actions/", body(proposal), content_type="application/json")
    if endpoint == "admin: queue page":
        return client.get(f"/admin/reviews/queue/{review.queue_id}/change/")
    if endpoint == "admin: tenant page":
        tenant = Tenant.objects.get(slug=review.tenant)
        return client.get(f"/admin/policies/tenant/{tenant.pk}/change/")
    if endpoint == "admin: dataset page":
        dataset = Dataset.objects.get(tenant=review.tenant)
        return client.get(f"/admin/evaluation/dataset/{dataset.pk}/change/")
    if endpoint == "api: get run":
        return client.get(f"/api/v1/runs/{review.run.run_id}/")
    if endpoint == "api: metrics":
        return client.get("/api/v1/metrics/")
    if endpoint == "api: dataset export":
        tenant = {"run-a": "acme", "run-b": "initech"}[review.run.run_id]
        return client.get(f"/api/v1/datasets/cases-{tenant}/export/")
    if endpoint == "admin: review page":
        return client.get(f"/admin/reviews/approvalreview/{pk}/change/")
    if endpoint == "admin: review history":
        return client.get(f"/admin/reviews/approvalreview/{pk}/history/")
    if endpoint == "admin: decide":
        return client.post(f"/admin/reviews/approvalreview/{pk}/decide/", {"choice": "approve"})
    if endpoint == "admin: run page":
        return client.get(f"/admin/reviews/agentrun/{review.run.pk}/change/")
    if endpoint == "admin: eval cases":
        return client.get("/admin/evaluation/evalcase/")
    raise AssertionError(endpoint)


def refused(response) -> bool:
    if response.status_code in (401, 403, 404):
        return True
    location = response.get("Location", "") if response.status_code == 302 else ""
    # The admin sends strangers to its login, and hides what a person may not see by
    # answering "doesn't exist" with a redirect to its index.
    return "/login/" in location or location.rstrip("/").endswith("/admin")


CELLS = [(endpoint, role, obj) for endpoint in ALLOWED for role in ROLES for obj in ("A", "B")]


@pytest.mark.django_db
@pytest.mark.parametrize(("endpoint", "role", "obj"), CELLS)
def test_access_matrix(world, endpoint, role, obj):
    allowed_roles = ALLOWED[endpoint]
    if obj == "B":
        allowed_roles = {MIRROR.get(r, r) for r in allowed_roles}
    response = call(client_for(world, role), endpoint, world["objects"][obj])
    assert response.status_code < 500
    if role in allowed_roles:
        assert not refused(response), (response.status_code, response.get("Location"))
    else:
        assert refused(response), (response.status_code, response.content[:200])
