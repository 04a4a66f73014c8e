"""Publishing a dataset that has not changed since its last version is refused, with the
reason; and the dataset page names who published a version without linking a page the
curator may not open."""

import pytest
from django.urls import reverse

from evaluation.models import DatasetVersion
from evaluation.services import (
    EvaluationError,
    case_accept,
    case_discard,
    dataset_create,
    dataset_publish,
)
from evaluation.tests.factories import evaluation_role_groups, make_case
from reviews.tests.factories import QueueFactory, UserFactory

pytestmark = pytest.mark.django_db

REASONS = [
    ("A mug arrived broken, photo attached", "17", "The photo shows a different mug"),
    ("The sofa was delivered two weeks late", "512", "Late delivery refunds shipping only"),
    ("Charged twice for a single order", "88", "The second charge was already reversed"),
]


@pytest.fixture
def people(db):
    groups = evaluation_role_groups()
    return {
        "ml": UserFactory(
            username="ml",
            first_name="Mia",
            last_name="Lopez",
            grant=False,
            groups=[groups["ML engineers"]],
        ),
        "rita": UserFactory(username="rita"),
        "queue": QueueFactory(slug="operations"),
    }


def captured(people, index):
    summary, order, reason = REASONS[index]
    return make_case(
        queue=people["queue"],
        reviewer=people["rita"],
        reason=reason,
        seconds_on_screen=60,
        summary=summary,
        arguments={"order_id": order, "amount": "20.00", "currency": "EUR"},
    )


def test_publishing_nothing_new_is_refused_and_a_change_publishes(people):
    ml = people["ml"]
    first, second, third = (captured(people, i) for i in range(3))
    case_accept(case_id=first.pk, actor=ml)
    case_accept(case_id=second.pk, actor=ml)
    dataset = dataset_create(slug="refunds", name="Refunds")
    v1 = dataset_publish(dataset=dataset, actor=ml)
    assert v1.case_count == 2

    with pytest.raises(EvaluationError) as refused:
        dataset_publish(dataset=dataset, actor=ml, note="again")
    assert str(refused.value) == (
        "Nothing changed in refunds since refunds v1: the same 2 accepted case(s). "
        "Accept or discard cases, then publish."
    )
    assert DatasetVersion.objects.filter(dataset=dataset).count() == 1

    case_accept(case_id=third.pk, actor=ml)
    assert dataset_publish(dataset=dataset, actor=ml).number == 2
    # Fewer cases is a change too.
    case_discard(case_id=first.pk, actor=ml, note="label was wrong")
    v3 = dataset_publish(dataset=dataset, actor=ml)
    assert (v3.number, v3.case_count) == (3, 2)


def test_the_admin_action_says_why_nothing_was_published(client, people):
    ml = people["ml"]
    case_accept(case_id=captured(people, 0).pk, actor=ml)
    dataset = dataset_create(slug="refunds", name="Refunds")
    dataset_publish(dataset=dataset, actor=ml)
    client.force_login(ml)
    response = client.post(
        reverse("admin:evaluation_dataset_changelist"),
        {"action": "publish", "_selected_action": [dataset.pk]},
        follow=True,
    )
    assert "Nothing changed in refunds since refunds v1" in response.content.decode()
    assert dataset.versions.count() == 1


def test_the_dataset_page_names_the_publisher_without_a_link_they_cannot_open(client, people):
    ml = people["ml"]
    case_accept(case_id=captured(people, 0).pk, actor=ml)
    dataset = dataset_create(slug="refunds", name="Refunds")
    dataset_publish(dataset=dataset, actor=ml)
    client.force_login(ml)
    page = client.get(reverse("admin:evaluation_dataset_change", args=[dataset.pk]))
    text = page.content.decode()
    assert "Mia Lopez" in text
    user_page = reverse("admin:auth_user_change", args=[ml.pk])
    assert user_page not in text
    assert client.get(user_page).status_code == 403
