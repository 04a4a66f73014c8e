"""Concurrent writes on PostgreSQL: real row locks, real unique constraints."""

import threading

import pytest
from django.db import connection

from policies import selectors, services
from policies.models import PolicyActivation, PolicyVersion
from policies.tests.factories import RuleFactory, RuleSetFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _together(*calls):
    """Run the calls at the same moment, each in its own thread and connection."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call):
        try:
            barrier.wait()
            call()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def _published(name, tenant=""):
    rule_set = RuleSetFactory(name=name, tenant=tenant)
    RuleFactory(rule_set=rule_set, name=f"{name}-rule", priority=1, outcome="deny")
    return services.rule_set_publish(actor=None, rule_set=rule_set, activate=False)


def test_first_activations_for_a_new_tenant_at_once_both_succeed():
    first, second = _published("one"), _published("two")
    errors = _together(
        lambda: services.version_activate(actor=None, version=first, tenant="acme"),
        lambda: services.version_activate(actor=None, version=second, tenant="acme"),
    )
    assert errors == []
    assert PolicyActivation.objects.filter(tenant="acme").count() == 1
    assert selectors.active_version_for("acme") in (first, second)
    assert PolicyActivation.history.filter(tenant="acme").count() == 2


def test_publishing_the_same_draft_twice_at_once_makes_one_version():
    rule_set = RuleSetFactory(name="draft")
    RuleFactory(rule_set=rule_set, name="deny", priority=1, outcome="deny")
    errors = _together(
        lambda: services.rule_set_publish(actor=None, rule_set=rule_set),
        lambda: services.rule_set_publish(actor=None, rule_set=rule_set),
    )
    assert errors == []
    assert PolicyVersion.objects.filter(rule_set=rule_set).count() == 1
