"""The behaviour of each Django (and django-fsm, simple-history) internal in hitl.internals,
pinned against the real database: an upgrade that changes one fails here, by name."""

import logging
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models.signals import post_init
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import isolate_apps, register_lookup
from django.urls import reverse
from django.utils.log import log_response
from django_fsm import ConcurrentTransition, ConcurrentTransitionMixin
from simple_history.exceptions import NotHistoricalModelError
from simple_history.manager import HistoryDescriptor
from simple_history.utils import get_history_manager_for_model

from hitl.internals import (
    CHECKED_AGAINST,
    IdsIn,
    _HistoryDescriptorBuiltOnce,
    admin_column_field,
    adopt_identity,
    cache_related,
    column_converters,
    fsm_state_fields,
    history_tracked_columns,
    instance_from_db_row,
    invalid_json_input,
    is_invalid_json_input,
    mark_response_logged,
    missing_object_redirect,
    prefetched,
    queryset_sql,
    raw_id_popup_params,
    registered_admins,
    remember_fsm_state,
    set_change_reason,
    set_history_user,
    set_prefetched,
    share_history_manager,
    takes_any_value,
    writable_fields,
)
from reviews.models import (
    ApprovalReview,
    Evidence,
    Execution,
    Queue,
    ReviewRequest,
    ReviewState,
)
from reviews.models.reviews import PACKET_FIELDS
from reviews.tests.factories import QueueFactory, UserFactory, make_review


def test_the_internals_were_read_against_the_installed_versions():
    installed = {name: version(name) for name in CHECKED_AGAINST}
    assert installed == CHECKED_AGAINST, (
        "A dependency whose internals hitl/internals.py uses changed version. Re-read each "
        "function's docstring against the new release, run hitl/tests/test_internals.py, then "
        "update CHECKED_AGAINST (and the versions the docstrings name)."
    )


# Each private API hitl.internals names, as it reads at a call site.
PRIVATE_USES = re.compile(
    r"ModelState|HistoryDescriptor|InvalidJSONInput|_get_non_gfk_field|set_cached_value"
    r"|_prefetched_objects_cache|_result_cache|_prefetch_done|sql_with_params"
    r"|related_fkey_lookups|_get_obj_does_not_exist_redirect|_has_been_logged"
    r"|_update_initial_state|simple_history_manager_attribute|\.tracked_fields\b"
    r"|\._registry\b|\._history_user\b|\._change_reason\b|class \w+\(In\)"
    r"|\._state\.(adding|db) = |\b(meta|_meta)\.__dict__|_writable_fields|_UnvalidatedField"
    r"|_prepare_cursor|\.get_col\(|\.get_db_converters\("
)


def test_the_product_reaches_private_apis_only_through_hitl_internals():
    root = Path(settings.BASE_DIR)
    offenders = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for app in ("hitl", "policies", "reviews", "evaluation")
        for path in sorted((root / app).rglob("*.py"))
        if not {"tests", "migrations"} & set(path.parts) and path.name != "internals.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_USES.search(line)
    ]
    if offenders:
        pytest.fail(
            "Private APIs used outside hitl/internals.py; call its named function instead:\n"
            + "\n".join(offenders),
            pytrace=False,
        )


# --- model instances -------------------------------------------------------------------


def _row(model, pk, names):
    return list(model.objects.filter(pk=pk).values_list(*names).get())


@pytest.mark.django_db
@pytest.mark.parametrize("only", [(), ("id", "slug", "owner_id")])
def test_an_instance_from_a_row_is_the_one_the_orm_builds(only):
    queue = QueueFactory()
    loaded = (Queue.objects.only(*only) if only else Queue.objects).get(pk=queue.pk)
    names = [f.attname for f in Queue._meta.concrete_fields if not only or f.attname in only]
    ours = instance_from_db_row(Queue, "default", names, _row(Queue, queue.pk, names))
    assert type(ours) is Queue
    assert vars(ours).keys() == vars(loaded).keys()
    assert all(getattr(ours, name) == getattr(loaded, name) for name in names)
    assert (ours._state.adding, ours._state.db) == (loaded._state.adding, loaded._state.db)
    assert (ours._state.adding, ours._state.db) == (False, "default")
    assert ours._state.fields_cache == loaded._state.fields_cache == {}
    assert ours.get_deferred_fields() == loaded.get_deferred_fields()
    assert ours == loaded
    assert ours.name == queue.name  # a field left out of the row loads on access
    assert ours.owner == queue.owner


def test_no_instance_from_a_row_while_init_receivers_listen():
    def receiver(**kwargs):
        pass

    post_init.connect(receiver, sender=Queue)
    try:
        assert instance_from_db_row(Queue, "default", ["id"], [1]) is None
    finally:
        post_init.disconnect(receiver, sender=Queue)
    assert instance_from_db_row(Queue, "default", ["id"], [1]) is not None


@pytest.mark.django_db
def test_a_review_from_a_row_keeps_the_state_machine_guards():
    review = make_review()
    names = [f.attname for f in ReviewRequest._meta.concrete_fields]
    stale = instance_from_db_row(
        ReviewRequest, "default", names, _row(ReviewRequest, review.pk, names)
    )
    remember_fsm_state(stale)
    with pytest.raises(AttributeError):
        stale.state = ReviewState.APPROVED  # the field stays protected
    other = ReviewRequest.objects.get(pk=review.pk)
    other.cancel()
    other.save()
    stale.reject()  # allowed from the pending state the row was read in
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        stale.save()
    fresh = instance_from_db_row(
        ReviewRequest, "default", names, _row(ReviewRequest, review.pk, names)
    )
    remember_fsm_state(fresh)
    assert fresh.state == ReviewState.CANCELLED
    fresh.save()  # a current copy saves


@pytest.mark.django_db
def test_fsm_state_fields_are_django_fsms_own():
    review = make_review()
    assert fsm_state_fields(ReviewRequest) == tuple(
        ConcurrentTransitionMixin.state_fields.fget(review)
    )
    assert fsm_state_fields(ReviewRequest) == (ReviewRequest._meta.get_field("state"),)
    assert fsm_state_fields(ApprovalReview) == fsm_state_fields(ReviewRequest)
    # The states it remembers are those of the fields the property names.
    assert set(review._ConcurrentTransitionMixin__initial_states) == {"state"}


@pytest.mark.django_db
def test_adopted_instances_are_the_saved_row():
    saved = Group.objects.create(name="pinned")
    built = Group(name="pinned")
    with pytest.raises(ValidationError):
        built.validate_unique()  # a new row would clash with the saved one
    adopt_identity(built, saved)
    assert built.pk == saved.pk
    assert vars(built._state) == {"adding": False, "db": "default"}
    built.validate_unique()  # the same row no longer clashes with itself
    built.refresh_from_db()


# --- related-object caches ---------------------------------------------------------------


@pytest.mark.django_db
def test_set_prefetched_rows_serve_the_related_manager_without_queries(
    django_assert_num_queries,
):
    review = ReviewRequest.objects.get(pk=make_review().pk)
    rows = list(Evidence.objects.filter(review=review).order_by("position"))
    assert rows
    set_prefetched(review, "evidence", rows)
    set_prefetched(review, "decisions", [])
    with django_assert_num_queries(0):
        assert list(review.evidence.all()) == rows
        assert review.evidence.count() == len(rows)
        assert review.evidence.exists()
        assert list(review.decisions.all()) == []
        assert not review.decisions.exists()
        assert list(prefetched(review, "evidence")) == rows


@pytest.mark.django_db
def test_prefetched_reads_what_prefetch_related_left():
    pk = make_review().pk
    loaded = ReviewRequest.objects.prefetch_related("evidence").get(pk=pk)
    rows = prefetched(loaded, "evidence")
    assert rows is not None
    assert {e.pk for e in rows} == {e.pk for e in Evidence.objects.filter(review_id=pk)} != set()
    assert prefetched(loaded, "decisions") is None
    assert prefetched(ReviewRequest.objects.get(pk=pk), "evidence") is None


@pytest.mark.django_db
def test_a_cached_reverse_one_to_one_answers_without_queries(django_assert_num_queries):
    review = ReviewRequest.objects.get(pk=make_review().pk)
    cache_related(review, "execution", None)
    with django_assert_num_queries(0), pytest.raises(Execution.DoesNotExist):
        review.execution  # noqa: B018
    execution = Execution(review_id=review.pk)  # by id: the accessor's cache stays untouched
    cache_related(review, "execution", execution)
    with django_assert_num_queries(0):
        assert review.execution is execution


# --- queries -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_ids_in_selects_what_in_selects():
    queues = [QueueFactory() for _ in range(4)]
    with register_lookup(models.BigAutoField, IdsIn, lookup_name="ids_in_pinned"):
        for ids in (
            [q.pk for q in queues[1:3]] + [10**12],
            [str(queues[0].pk), queues[0].pk],  # prepared by the field, each row once
            [],
        ):
            ours = Queue.objects.filter(pk__ids_in_pinned=ids).order_by("pk")
            django_own = Queue.objects.filter(pk__in=ids).order_by("pk")
            assert list(ours) == list(django_own)


@pytest.mark.postgres
@pytest.mark.django_db
def test_ids_in_sends_one_array_on_postgresql():
    ids = [QueueFactory().pk, QueueFactory().pk]
    with register_lookup(models.BigAutoField, IdsIn, lookup_name="ids_in_pinned"):
        sql, params = queryset_sql(Queue.objects.filter(pk__ids_in_pinned=ids))
    assert "= ANY(%s)" in sql
    assert params == (ids,)


@pytest.mark.django_db
def test_queryset_sql_runs_as_the_queryset():
    queues = [QueueFactory(name=f"pinned {n}") for n in range(3)]
    queryset = Queue.objects.filter(name__startswith="pinned").order_by("-pk").values_list("pk")
    sql, params = queryset_sql(queryset)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        assert cursor.fetchall() == [(q.pk,) for q in reversed(queues)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            assert cursor.fetchone()[0]


@pytest.mark.django_db
def test_column_converters_are_the_ones_the_compiler_applies():
    queryset = ReviewRequest.objects.values_list("created_at", "policy")
    compiler = queryset.query.get_compiler(using=connection.alias)
    compiler.setup_query()
    compilers = {
        index: converters
        for index, (converters, _expr) in compiler.get_converters(
            [column for column, _alias, _sql in compiler.select]
        ).items()
    }
    for index, name in enumerate(("created_at", "policy")):
        field = ReviewRequest._meta.get_field(name)
        ours, column = column_converters(field, "t0", connection)
        assert ours == compilers.get(index, [])
        assert column.target is field


# --- the admin ---------------------------------------------------------------------------


def test_admin_column_fields_are_the_fields_the_admin_shows():
    opts = ReviewRequest._meta
    assert admin_column_field(opts, "summary") is opts.get_field("summary")
    assert admin_column_field(opts, "queue") is opts.get_field("queue")
    # A foreign key's column name, a reverse relation, a method: no field of the row.
    assert admin_column_field(opts, "queue_id") is None
    assert admin_column_field(opts, "decisions") is None
    assert admin_column_field(opts, "is_past_expiry") is None


def test_registered_admins_list_the_sites_registry():
    site = admin.AdminSite(name="pinned")
    site.register(Group)
    site.register(Queue)
    listed = registered_admins(site)
    assert {model for model, _ in listed} == {Group, Queue}
    assert all(site.get_model_admin(model) is model_admin for model, model_admin in listed)
    for model, _ in listed:
        site.unregister(model)  # the list is a copy: the registry may change meanwhile
    assert registered_admins(site) == []


@isolate_apps("reviews")
def test_raw_id_popup_params_are_what_the_popups_carry():
    class Target(models.Model):  # noqa: DJ008
        active = models.BooleanField(default=True)
        kind = models.CharField(max_length=10)

        class Meta:
            app_label = "reviews"

    class Source(models.Model):  # noqa: DJ008
        target = models.ForeignKey(
            Target, models.CASCADE, related_name="sources", limit_choices_to={"active": True}
        )
        other = models.ForeignKey(
            Target, models.CASCADE, related_name="others", limit_choices_to=lambda: {"kind": "a"}
        )
        free = models.ForeignKey(Target, models.CASCADE, related_name="free_sources")

        class Meta:
            app_label = "reviews"

    site = admin.AdminSite(name="pinned")
    carried = [
        ForeignKeyRawIdWidget(Source._meta.get_field(name).remote_field, site).base_url_parameters()
        for name in ("target", "other")
    ]
    assert raw_id_popup_params(Target) == carried == [{"active": "1"}, {"kind": "a"}]


def test_a_missing_object_gets_the_admins_own_answer():
    request = RequestFactory().get("/")
    request._messages = CookieStorage(request)
    response = missing_object_redirect(admin.site.get_model_admin(Group), request, "42")
    assert response.status_code == 302
    assert response.url == reverse("admin:index")
    assert [str(m) for m in get_messages(request)] == [
        "group with ID \u201c42\u201d doesn\u2019t exist. Perhaps it was deleted?"
    ]


# --- forms and responses -----------------------------------------------------------------


def test_text_a_json_field_cannot_parse_is_recognised():
    seen = []

    class Recording(forms.JSONField):
        def prepare_value(self, value):
            seen.append(value)
            return super().prepare_value(value)

    class Form(forms.Form):
        data = Recording()

    Form({"data": "{not json"})["data"].value()
    Form({"data": '{"a": 1}'})["data"].value()
    assert [is_invalid_json_input(value) for value in seen] == [True, False]
    assert seen[0] == "{not json"
    # The same marker made by hand is shown again as typed, never re-encoded.
    marked = invalid_json_input("[[[")
    assert is_invalid_json_input(marked)
    assert forms.JSONField().prepare_value(marked) == "[[["


def test_a_response_marked_logged_is_not_logged_again(caplog):
    logger = logging.getLogger("internals_pinned")
    request = RequestFactory().get("/")
    with caplog.at_level(logging.ERROR, logger=logger.name):
        log_response("unmarked", response=HttpResponse(status=500), request=request, logger=logger)
        marked = HttpResponse(status=500)
        mark_response_logged(marked)
        log_response("marked", response=marked, request=request, logger=logger)
    assert [r.getMessage() for r in caplog.records] == ["unmarked"]


# --- django-simple-history ---------------------------------------------------------------


@pytest.mark.django_db
def test_history_rows_carry_the_user_and_reason_set():
    queue, lead = QueueFactory(), UserFactory()
    set_history_user(queue, lead)
    set_change_reason(queue, "renamed")
    queue.name = "Renamed"
    queue.save()
    row = queue.history.latest()
    assert (row.history_user, row.history_change_reason) == (lead, "renamed")
    set_change_reason(queue, "in bulk")
    Queue.history.bulk_history_create([queue], update=True)
    assert queue.history.latest().history_change_reason == "in bulk"


def test_history_copies_every_column_of_the_model_but_the_packet():
    columns = history_tracked_columns(ReviewRequest)
    assert columns == [f.attname for f in ReviewRequest._meta.fields if f.name not in PACKET_FIELDS]
    history = {f.attname for f in ReviewRequest.history.model._meta.concrete_fields}
    assert set(columns) <= history
    assert not history & set(PACKET_FIELDS)
    assert history_tracked_columns(ApprovalReview) == columns


@isolate_apps("reviews")
def test_a_proxy_finds_its_concrete_models_history_once_shared():
    class PinnedProxy(ReviewRequest):
        class Meta:
            proxy = True
            app_label = "reviews"

    with pytest.raises(NotHistoricalModelError):
        get_history_manager_for_model(PinnedProxy)
    share_history_manager(PinnedProxy)
    assert get_history_manager_for_model(PinnedProxy).model is ReviewRequest.history.model
    assert get_history_manager_for_model(ApprovalReview).model is ReviewRequest.history.model


def test_every_history_manager_is_built_once():
    tracked = [
        m
        for m in apps.get_models()
        if not m._meta.proxy and hasattr(m._meta, "simple_history_manager_attribute")
    ]
    assert ReviewRequest in tracked and Group not in tracked
    for model in tracked:
        # simple-history still installs its own descriptor, which the project replaces.
        descriptor = model.__dict__[model._meta.simple_history_manager_attribute]
        assert type(descriptor) is _HistoryDescriptorBuiltOnce, model
        assert type(model.history) is type(model.history)


@pytest.mark.django_db
def test_a_history_manager_built_once_is_simple_historys_own():
    review = make_review()
    ours = ReviewRequest.__dict__["history"]
    stock = HistoryDescriptor(ours.model, manager=ours.manager_class, queryset=ours.queryset_class)
    for instance in (None, review):
        built, expected = (
            ours.__get__(instance, ReviewRequest),
            stock.__get__(instance, ReviewRequest),
        )
        assert type(built).__mro__[1:] == type(expected).__mro__[1:]
        assert (built.model, built.instance) == (expected.model, expected.instance)
        assert str(built.all().query) == str(expected.all().query)
        assert list(built.all()) == list(expected.all())
    assert review.history.count() == ReviewRequest.history.filter(id=review.pk).count() > 0
    assert hasattr(review.history, "as_of")


# --- Django REST framework ----------------------------------------------------------------


def test_writable_fields_are_the_ones_drf_validates_input_with():
    from reviews.api.serializers import ProposalIn

    serializer = ProposalIn()
    names = [f.field_name for f in writable_fields(serializer)]
    assert names == [name for name, f in serializer.fields.items() if not f.read_only]
    assert {"run_id", "action", "actions", "evidence"} <= set(names)


def test_takes_any_value_is_drfs_pass_through_child():
    from rest_framework import serializers

    assert takes_any_value(serializers.DictField().child)
    assert takes_any_value(serializers.ListField().child)
    assert not takes_any_value(serializers.DictField(child=serializers.CharField()).child)
