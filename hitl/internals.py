"""The private APIs of Django and its add-ons that the product leans on, each behind one name.

Every function names the internal it touches, the version it was checked against
(`CHECKED_AGAINST`) and why the public API does not do. hitl/tests/test_internals.py pins the
behaviour each one relies on, and fails as soon as an installed version differs from
`CHECKED_AGAINST`: an upgrade re-reads this module and reruns those tests before it ships.
Product code reaches these internals only through this module.
"""

from functools import cache

from django.contrib.admin.utils import FieldIsAForeignKeyColumnName, _get_non_gfk_field
from django.contrib.admin.widgets import url_params_from_lookup_dict
from django.core.exceptions import FieldDoesNotExist
from django.db.models.base import ModelState
from django.db.models.lookups import In
from django.db.models.signals import post_init, pre_init
from django.forms.fields import InvalidJSONInput
from django_fsm import FSMFieldMixin
from rest_framework.fields import _UnvalidatedField
from simple_history.manager import HistoryDescriptor
from simple_history.utils import get_history_manager_for_model

# The distributions whose internals are used below, at the versions they were read in.
CHECKED_AGAINST = {
    "Django": "5.2.19",
    "django-fsm-2": "4.2.4",
    "django-simple-history": "3.13.0",
    "djangorestframework": "3.18.3",
}


# --- model instances -------------------------------------------------------------------


def instance_from_db_row(model, db, field_names, values):
    """The instance `Model.from_db` builds for one row, without running `Model.__init__`;
    None when pre_init or post_init receivers listen for `model` (they must see __init__ run).

    Private (Django 5.2.19): sets `instance._state` to a `django.db.models.base.ModelState`
    by hand and fills `instance.__dict__` with the row, as `Model.__init__` does with its
    positional values; fields left out of the row stay out of `__dict__`, so they load on
    access like any deferred field. Why: `__init__` walks every field of the model for each
    row, loaded or deferred: a sixth of a 100k-review expiry sweep.
    """
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return None
    instance = model.__new__(model)
    instance._state = ModelState()
    instance._state.adding = False
    instance._state.db = db
    instance.__dict__.update(zip(field_names, values, strict=True))
    return instance


def adopt_identity(instance, saved) -> None:
    """Make `instance` stand for the row `saved` was written to: its primary key, and a
    `_state` saying the row exists, in saved's database.

    Private (Django 5.2.19): writes `Model._state.adding` and `Model._state.db`. Why: the
    admin keeps using the instance its form built (messages, the log entry, the redirect)
    while a service saved another instance of the same row.
    """
    instance.pk = saved.pk
    instance._state.adding = False
    instance._state.db = saved._state.db


# --- related-object caches ---------------------------------------------------------------


def set_prefetched(instance, name: str, rows) -> None:
    """Serve `instance.<name>.all()` from `rows` with no query, as `prefetch_related(name)`
    would have left it.

    Private (Django 5.2.19): the queryset's `_result_cache` and `_prefetch_done`, and the
    instance's `_prefetched_objects_cache` keyed by the accessor name, exactly as
    `django.db.models.query.prefetch_one_level` fills them. Why: a service that has just
    created the rows hands back a packet its caller shows at once, without fetching back
    what it wrote.
    """
    queryset = getattr(instance, name).get_queryset()
    queryset._result_cache = list(rows)
    queryset._prefetch_done = True
    if not hasattr(instance, "_prefetched_objects_cache"):
        instance._prefetched_objects_cache = {}
    instance._prefetched_objects_cache[name] = queryset


def prefetched(instance, name: str):
    """The queryset `prefetch_related(name)` (or `set_prefetched`) left on `instance`, or
    None when `name` was not prefetched.

    Private (Django 5.2.19): reads `Model._prefetched_objects_cache`, keyed by the accessor
    name. Why: a selector takes the prefetched rows when they are there, and otherwise asks
    the database a narrower question than `.all()` (the last decision only).
    """
    return getattr(instance, "_prefetched_objects_cache", {}).get(name)


def cache_related(instance, name: str, value) -> None:
    """Serve `instance.<name>` (the reverse side of a one-to-one) from `value` with no
    query; None makes the accessor raise `DoesNotExist`, as a missing row does.

    Private (Django 5.2.19): `ReverseOneToOneDescriptor.related` and its
    `FieldCacheMixin.set_cached_value`. Why: a review just created has no execution, and
    the packet built from it asks.
    """
    getattr(type(instance), name).related.set_cached_value(instance, value)


# --- queries -----------------------------------------------------------------------------


class IdsIn(In):
    """`pk__ids_in=[...]` is `pk__in`, but on PostgreSQL the ids travel as one array
    (`= ANY(%s)`): a batch of 2000 ids as 2000 parameters is parsed on both sides, a tenth
    of a bulk expiry sweep. Register it on a field class: `BigAutoField.register_lookup(IdsIn)`.

    Private (Django 5.2.19): subclasses `django.db.models.lookups.In` and relies on
    `self.rhs` holding the values already prepared by the field (`get_prep_lookup`); `In`'s
    own `process_rhs` (None removed, duplicates dropped, EmptyResultSet for no values) is
    skipped on PostgreSQL, where `= ANY` gives the same rows.
    """

    lookup_name = "ids_in"

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, list(self.rhs))


def queryset_sql(queryset) -> tuple[str, tuple]:
    """The SQL and parameters `queryset` would run, to embed in a statement the ORM cannot
    write (EXPLAIN, INSERT ... SELECT).

    Private (Django 5.2.19): `QuerySet.query` (a `django.db.models.sql.Query`) and its
    `sql_with_params()`, which compiles for the default database. Why: the inbox asks the
    planner for a row estimate instead of a COUNT, and the expiry sweep copies history rows
    inside the database.
    """
    return queryset.query.sql_with_params()


def copy_out(cursor, statement: str, params) -> list[bytes]:
    """The data rows of `COPY (...) TO STDOUT` run on a Django cursor, as bytes.

    Private (Django 5.2.19): `CursorWrapper.cursor`, the psycopg 3 cursor it wraps, whose
    `copy()` Django does not expose. Why: the retention purge streams the rows a DELETE
    returns as JSON without building a Python object per row (bench B8).
    """
    with cursor.cursor.copy(statement, params) as copy:
        return [bytes(chunk) for chunk in copy]


def raw_delete(queryset) -> int:
    """DELETE the rows of `queryset` in one statement, without collecting related objects,
    sending signals or loading a row; the number deleted.

    Private (Django 5.2.19): `QuerySet._raw_delete`, what `delete()` itself runs once it
    knows nothing cascades. Why: retention deletes history rows and log rows, which nothing
    references, millions at a time (bench B8).
    """
    return queryset._raw_delete(queryset.db)


def prepared_cursor(connection):
    """A cursor whose statements PostgreSQL prepares once per connection and then runs
    without parsing or planning them again (on other databases, `connection.cursor()`).

    Private (Django 5.2.19): repeats `BaseDatabaseWrapper._cursor` (health check, connect,
    `_prepare_cursor` for the thread checks) with a psycopg cursor that binds on the server
    and prepares every statement, instead of `create_cursor`'s client-side binding. Where
    queries are logged (DEBUG, tests) its wrapper logs each statement composed with its
    values through `CursorDebugWrapper.debug_sql`: psycopg keeps no text of a prepared run
    for `last_executed_query` to read back. Why: the hot path's statements (an agent's
    key, the policy activation, the rows of a proposal) are the same text on every
    request; planning them was half of PostgreSQL's time per proposal. Off when the
    connection disables preparing (`DB_PREPARED_STATEMENTS=0`, for a PgBouncer).
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:
        return connection.cursor()
    with connection.wrap_database_errors:
        cursor = _prepared_class()(connection.connection)
    if connection.queries_logged:
        connection.validate_thread_sharing()
        return _logged_prepared_class()(cursor, connection)
    return connection._prepare_cursor(cursor)


@cache
def _logged_prepared_class():
    from django.db.backends.postgresql.base import CursorDebugWrapper
    from django.db.backends.utils import CursorWrapper

    class LoggedPrepared(CursorDebugWrapper):
        # psycopg keeps no text of a statement run prepared for Django's query log to read
        # back (it logged None): the log shows it composed with its values instead.
        def execute(self, sql, params=None):
            try:
                shown = self.db.ops.compose_sql(sql, params)
            except Exception:  # the log must never fail the statement
                shown = sql
            with self.debug_sql(shown, params):
                return CursorWrapper.execute(self, sql, params)

    return LoggedPrepared


@cache
def _prepared_class():
    from django.db.backends.postgresql.base import ServerBindingCursor
    from psycopg import errors
    from psycopg.pq import TransactionStatus

    class PreparedCursor(ServerBindingCursor):
        def execute(self, query, params=None, *, prepare=True, binary=None):
            try:
                return super().execute(query, params, prepare=prepare, binary=binary)
            except (errors.FeatureNotSupported, errors.InvalidSqlStatementName):
                # A migration changed what a prepared statement returns ("cached plan must
                # not change result type"), or a pooler lost it. In a transaction the
                # error stands and its ROLLBACK makes psycopg forget what it prepared;
                # in autocommit nothing would, so forget it all now and run it afresh.
                if self.connection.info.transaction_status != TransactionStatus.IDLE:
                    raise
                self.connection.execute("DEALLOCATE ALL")
                return super().execute(query, params, prepare=prepare, binary=binary)

    return PreparedCursor


def column_converters(field, alias: str, connection) -> tuple[list, object]:
    """What the ORM applies to a raw value of `field` read as `alias`.<column> (SQLite's
    dates, JSON documents), and the column expression the converters take.

    Private (Django 5.2.19): `Field.get_col` and the two `get_db_converters` (the backend's,
    then the expression's), gathered in that order as `SQLCompiler.get_converters` does.
    Why: a composed read (hitl.kernel.rows.Read) must give the values the ORM gives.
    """
    column = field.get_col(alias)
    converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
    return converters, column


# --- the admin ---------------------------------------------------------------------------


def admin_column_field(opts, name: str):
    """The model field a changelist column shows, as the admin's `items_for_result` finds
    it; None for a column that is no field (a method, a reverse relation, an `<fk>_id`).

    Private (Django 5.2.19): `django.contrib.admin.utils._get_non_gfk_field`. Why: the inbox
    classifies each column once per page instead of once per cell, and must agree with the
    admin on which columns are fields.
    """
    try:
        return _get_non_gfk_field(opts, name)
    except (FieldDoesNotExist, FieldIsAForeignKeyColumnName):
        return None


def registered_admins(site) -> list[tuple]:
    """Every (model, model admin) registered on the admin site `site`, as a list.

    Private (Django 5.2.19): `AdminSite._registry`; the public API looks up one model at a
    time (`get_model_admin`) but never lists them. Why: the project gives the admins other
    apps registered (auth, django_q) its checked changelist.
    """
    return list(site._registry.items())


def raw_id_popup_params(model) -> list[dict[str, str]]:
    """The query parameters a raw-id popup listing `model` may carry: one dict per foreign
    key to `model` with `limit_choices_to`, as the admin's `lookup_allowed` accepts them.

    Private (Django 5.2.19): `Options.related_fkey_lookups` (filled by ForeignKey for its
    target model) and `django.contrib.admin.widgets.url_params_from_lookup_dict`. Why: the
    checked changelist refuses every parameter no filter declares, except these.
    """
    found = []
    for lookup in model._meta.related_fkey_lookups:
        found.append(url_params_from_lookup_dict(lookup() if callable(lookup) else lookup))
    return found


def missing_object_redirect(model_admin, request, object_id: str):
    """The admin's answer to a URL naming an object that does not exist: a message and a
    redirect to the admin index, as its own change view gives.

    Private (Django 5.2.19): `ModelAdmin._get_obj_does_not_exist_redirect`. Why: custom
    admin views (publish, simulate) answer a missing object as the built-in views do.
    """
    return model_admin._get_obj_does_not_exist_redirect(request, model_admin.opts, object_id)


# --- forms and responses -----------------------------------------------------------------


def is_invalid_json_input(value) -> bool:
    """Whether `value` is the text a `forms.JSONField` could not parse, handed back to be
    shown again as typed.

    Private (Django 5.2.19): `django.forms.fields.InvalidJSONInput`, which
    `JSONField.bound_data` returns for such text. Why: a JSON field that formats its value
    (indented, one condition per line) must leave that text alone.
    """
    return isinstance(value, InvalidJSONInput)


def invalid_json_input(text: str):
    """`text` marked as JSON a form field could not parse, to be shown again as typed (the
    value `forms.JSONField.bound_data` returns for such text; see is_invalid_json_input)."""
    return InvalidJSONInput(text)


def mark_response_logged(response) -> None:
    """Tell Django's request logging that `response` has been logged already.

    Private (Django 5.2.19): the `_has_been_logged` attribute that
    `django.utils.log.log_response` checks and sets. Why: the API's error middleware logs
    a server error with what matters; Django would log it a second time.
    """
    response._has_been_logged = True


# --- Django REST framework ----------------------------------------------------------------


def writable_fields(serializer) -> list:
    """The fields a serializer validates input with, in order.

    Private (DRF 3.18.3): `Serializer._writable_fields`, what `to_internal_value` loops on.
    Why: reviews.api.fastpath compiles a serializer's checks from the same fields.
    """
    return list(serializer._writable_fields)


def takes_any_value(field) -> bool:
    """Whether `field` is DRF's pass-through child (a DictField's or ListField's values
    taken as they are, None included).

    Private (DRF 3.18.3): `rest_framework.fields._UnvalidatedField`, the default child.
    Why: a DictField whose values are not checked is compiled to a copy of the dict.
    """
    return type(field) is _UnvalidatedField


# --- django-fsm --------------------------------------------------------------------------


@cache
def fsm_state_fields(model) -> tuple:
    """The state-machine fields of `model`, found once per model.

    Private (django-fsm-2 4.2.4): `ConcurrentTransitionMixin.state_fields`, the property its
    private `_do_update` and `_update_initial_state` read; a model overrides it to return
    this. Why: django-fsm scans every field of the model each time, for every instance
    loaded and saved: a fifth of a bulk sweep's time.
    """
    return tuple(f for f in model._meta.fields if isinstance(f, FSMFieldMixin))


def remember_fsm_state(instance) -> None:
    """Record the instance's current states as the ones it was loaded in, which its next
    save checks the row still holds (django-fsm's concurrent-transition guard).

    Private (django-fsm-2 4.2.4): `ConcurrentTransitionMixin._update_initial_state`, which
    its `__init__` calls. Why: an instance built without `__init__`
    (`instance_from_db_row`) would otherwise save without the guard, or not at all.
    """
    instance._update_initial_state()


# --- django-simple-history ---------------------------------------------------------------


def set_history_user(instance, user) -> None:
    """The person the next history row of `instance` names (None: nobody), instead of the
    request's user.

    Private (django-simple-history 3.13.0): the `_history_user` attribute that
    `HistoricalRecords.get_history_user` reads (documented, underscored). Why: outside a
    request (the worker, commands, agents) nothing else tells it who acted.
    """
    instance._history_user = user


def set_change_reason(instance, reason: str) -> None:
    """The reason the next history row of `instance` gives, on save or in
    `bulk_history_create`.

    Private (django-simple-history 3.13.0): the `_change_reason` attribute that
    `simple_history.utils.get_change_reason_from_object` reads (documented, underscored).
    Why: every change in the audit says why it happened.
    """
    instance._change_reason = reason


def history_tracked_columns(model) -> list[str]:
    """The columns of `model` its history rows copy, in the history model's order.

    Private (django-simple-history 3.13.0): the `tracked_fields` attribute of the history
    model. Why: the expiry sweep writes history rows with one INSERT ... SELECT and must
    copy exactly what simple-history would.
    """
    return [f.attname for f in get_history_manager_for_model(model).model.tracked_fields]


def share_history_manager(proxy, manager_name: str = "history") -> None:
    """Let simple-history find the history of a proxy model: its concrete model's.

    Private (django-simple-history 3.13.0): `Options.simple_history_manager_attribute`, set
    on the tracked model's own `_meta` only, and read by its admin and
    `get_history_manager_for_model`. Why: the review proxies (one admin screen per kind)
    share the concrete model's history table, and their admins show it.
    """
    proxy._meta.simple_history_manager_attribute = manager_name


class _HistoryDescriptorBuiltOnce(HistoryDescriptor):
    def __get__(self, instance, owner):
        manager_class = self.__dict__.get("_manager_class")
        if manager_class is None:
            manager_class = self.manager_class.from_queryset(self.queryset_class)
            self._manager_class = manager_class
        return manager_class(self.model, instance)


def build_history_manager_once(model, manager_name: str) -> None:
    """Make `model.<manager_name>` (simple-history's manager) build its class once.

    Private (django-simple-history 3.13.0): `HistoryDescriptor` (its `model`,
    `manager_class` and `queryset_class`), which `HistoricalRecords.finalize` sets on the
    model; replaced here by one that builds `manager_class.from_queryset(queryset_class)`
    on first use instead of on every read. Why: simple-history reads the manager for each
    historical row it writes, and building the class inspects every queryset method: half
    a millisecond per saved object, a tenth of a proposal's time.
    """
    descriptor = model.__dict__.get(manager_name)
    if type(descriptor) is HistoryDescriptor:
        setattr(
            model,
            manager_name,
            _HistoryDescriptorBuiltOnce(
                descriptor.model,
                manager=descriptor.manager_class,
                queryset=descriptor.queryset_class,
            ),
        )
