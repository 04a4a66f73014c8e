"""One way to stamp history for every app: who acted (person, agent or system) and why.

Also simple-history's HistoricalRecords with its manager class built once per model
(see `hitl.internals.build_history_manager_once`).
"""

from functools import cache

from django.conf import settings
from django.db import connections, models, router
from django.dispatch import receiver
from django.utils import timezone
from simple_history.models import HistoricalRecords as BaseHistoricalRecords
from simple_history.signals import pre_create_historical_record
from simple_history.utils import bulk_create_with_history

from ..internals import (
    build_history_manager_once,
    history_tracked_columns,
    prepared_cursor,
    set_change_reason,
    set_history_user,
)
from .actors import Actor
from .rows import insert_statement, insert_values, take_keys


class HistoryActorMixin(models.Model):
    """Extra columns on every historical table: the acting principal as a label."""

    # history_user only holds people; agents and the sweeps act too and must be named.
    history_actor = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        abstract = True


@receiver(pre_create_historical_record)
def _stamp_actor(sender, instance, history_instance, history_user, **kwargs):
    if not isinstance(history_instance, HistoryActorMixin):
        return
    label = getattr(instance, "_history_actor", "")
    if not label and history_user is not None:
        label = f"user:{history_user.get_username()}"
    history_instance.history_actor = label


def stamp(instance, actor: Actor, reason: str) -> None:
    """Name who changes `instance` and why, for the history row its next save writes."""
    # simple-history reads these attributes when it writes the row; outside a request
    # (the worker, commands, the API's agents) nothing else tells it who acted.
    set_history_user(instance, actor.user)
    instance._history_actor = actor.label
    set_change_reason(instance, reason)


def create_with_history(objs: list, *, actor: Actor, reason: str) -> list:
    """Insert new rows of one model and their history rows: two statements, however many."""
    if not objs:
        return []
    for obj in objs:
        # Stamped, so an agent's request never becomes the history user (simple-history's
        # fallback when an object carries none).
        stamp(obj, actor, reason)
    return bulk_create_with_history(
        objs, type(objs[0]), custom_historical_attrs={"history_actor": actor.label}
    )


def insert_with_history(
    objs: list, *, actor: Actor, reason: str, unless_taken: str | None = None
) -> list:
    """`create_with_history` in one statement on PostgreSQL: the history rows are copied
    from the rows the INSERT returns (WITH ... INSERT ... SELECT), the same columns and
    stamps simple-history writes. With `unless_taken` (a unique field), a row whose value
    is taken is skipped without an error (ON CONFLICT DO NOTHING), so no savepoint is
    needed. Returns the rows inserted, their primary keys set."""
    if not objs:
        return []
    if unless_taken is not None and len(objs) != 1:
        # Which rows were skipped is known only for one row at a time.
        raise ValueError("unless_taken inserts one row at a time.")
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    # Histories off (simple-history's setting) are written by neither path.
    in_one = connection.vendor == "postgresql" and getattr(settings, "SIMPLE_HISTORY_ENABLED", True)
    if not in_one and unless_taken is None:
        return create_with_history(objs, actor=actor, reason=reason)
    for obj in objs:
        stamp(obj, actor, reason)
    sql, fields = insert_statement(model, len(objs), connection.alias, unless_taken)
    values = insert_values(objs, fields, connection)
    if in_one:
        sql, values = _with_history(model, sql, values, actor, reason, connection)
    else:
        sql += f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, values)
        # [] when the one row's value is taken.
        inserted = take_keys(objs, cursor.fetchall(), connection)
    if inserted and not in_one:
        model.history.bulk_history_create(
            objs, custom_historical_attrs={"history_actor": actor.label}
        )
    return inserted


def _with_history(model, insert: str, values: list, actor: Actor, reason: str, connection):
    """The INSERT of `model` rows wrapped so one statement also writes their history rows
    and returns the new rows' keys."""
    user = actor.user.pk if actor.user is not None else None
    sql = f"WITH new AS ({insert} RETURNING *) {_history_copy(model, connection.alias)}"
    return sql, [*values, user, actor.label, timezone.now(), reason]


@cache
def _history_copy(model, alias: str) -> str:
    """`INSERT INTO <history> ... SELECT ... FROM new RETURNING <key>`: the columns and
    stamps simple-history writes, copied from the rows `new` returns."""
    quote = connections[alias].ops.quote_name
    history = model.history.model
    tracked = [quote(model._meta.get_field(name).column) for name in history_tracked_columns(model)]
    stamps = ["history_user_id", "history_actor", "history_date", "history_change_reason"]
    target = ", ".join([*tracked, *(quote(c) for c in stamps), quote("history_type")])
    pk = quote(model._meta.pk.column)
    table, copied = quote(history._meta.db_table), ", ".join(tracked)
    # Names come from the models; every value is a parameter.
    return (
        f"INSERT INTO {table} ({target}) "  # noqa: S608
        f"SELECT {copied}, %s, %s, %s, %s, '+' FROM new RETURNING {pk}"
    )


class HistoricalRecords(BaseHistoricalRecords):
    """HistoricalRecords whose `history` manager class is built once per model, and whose
    rows always carry the acting principal (`history_actor`)."""

    def __init__(self, *args, bases=(), **kwargs):
        if not any(issubclass(b, HistoryActorMixin) for b in bases):
            bases = (*bases, HistoryActorMixin)
        super().__init__(*args, bases=list(bases), **kwargs)

    def finalize(self, sender, **kwargs):
        super().finalize(sender, **kwargs)
        build_history_manager_once(sender, self.manager_name)
