"""Rollup rows summed by the database, one group per slice label: the counts with one
UNION ALL of GROUP BYs, the histograms by unnesting their JSON buckets the same way. The
process receives groups x buckets rows, whatever the number of rollup rows or reviews."""

from collections import defaultdict
from collections.abc import Iterator
from datetime import date

from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import CharField, QuerySet, Sum, Value
from django.db.models.functions import Cast

from hitl.internals import queryset_sql

from .metrics_tally import ReviewerTally, Tally

# Slice name -> the rollup's column (ORM path) and its SQL expression in _histograms.
REVIEW_GROUPS = {
    "day": ("day__day", "d.day"),
    "queue": ("queue__slug", "q.slug"),
    "action": ("action_name", "r.action_name"),
    "agent_version": ("agent_version", "r.agent_version"),
    "rule": ("rule", "r.rule"),
}
REVIEWER_GROUPS = {"reviewer": ("reviewer__username", "u.username")}
Group = tuple[str, object]  # (slice name, label)
# Rows per fetch: a chunk is the largest thing the process holds besides the histograms.
CHUNK = 500


def label(name: str, raw: str) -> object:
    """A group's label as the figures show it: a date for days, "-" for an unset value."""
    if name == "day":
        return date.fromisoformat(str(raw)[:10])
    return raw or "-"


def grouped_tallies(rollups: QuerySet, columns: tuple[str, ...], make=Tally) -> dict:
    """Sums of `columns` and of the `minutes` histogram per slice label."""
    return _grouped(rollups, REVIEW_GROUPS, columns, "minutes", make)


def grouped_reviewers(rollups: QuerySet, columns: tuple[str, ...]) -> dict:
    """Sums of `columns` and of the `seconds` histogram per reviewer's username."""
    grouped = _grouped(rollups, REVIEWER_GROUPS, columns, "seconds", ReviewerTally)
    return defaultdict(ReviewerTally, {name: tally for (_, name), tally in grouped.items()})


def _grouped(rollups: QuerySet, groups: dict, columns, histogram: str, make) -> dict:
    out: dict[Group, object] = defaultdict(make)
    sums = {column: Sum(column) for column in columns}
    parts = [
        rollups.annotate(slice=Value(name), label=Cast(path, CharField()))
        .values("slice", "label")
        .annotate(**sums)
        .order_by()
        for name, (path, _) in groups.items()
    ]
    for row in parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]:
        out[(row["slice"], label(row["slice"], row["label"]))].merge(row)
    for name, raw, bucket, count, low, high in _histograms(rollups, groups, histogram):
        target = getattr(out[(name, label(name, raw))], histogram)
        target.add_cell(int(bucket), int(count), float(low), float(high))
    return out


def _histograms(rollups: QuerySet, groups: dict, column: str) -> Iterator[tuple]:
    try:
        inner, params = queryset_sql(rollups.values("pk"))
    except EmptyResultSet:  # no day of the period has rollups
        return
    if connection.vendor == "postgresql":
        each = f"jsonb_each(r.{column}) AS e"
        count, low, high = (f"CAST(e.value ->> {i} AS double precision)" for i in range(3))
    else:
        each = f"json_each(r.{column}) AS e"
        count, low, high = (f"json_extract(e.value, '$[{i}]')" for i in range(3))
    table = rollups.model._meta.db_table
    joins = (
        "JOIN reviews_rollupday d ON d.id = r.day_id JOIN reviews_queue q ON q.id = r.queue_id"
        if "day" in groups
        else f"JOIN {get_user_model()._meta.db_table} u ON u.id = r.reviewer_id"
    )
    keys = ", ".join(f"{expr} AS g{i}" for i, (_, expr) in enumerate(groups.values()))
    # Names and expressions are this module's constants; values go in as parameters.
    selects = " UNION ALL ".join(
        f"SELECT '{name}', CAST(g{i} AS text), k, SUM(n), MIN(lo), MAX(hi) "  # noqa: S608
        "FROM h GROUP BY 2, 3"
        for i, name in enumerate(groups)
    )
    sql = (
        f"WITH h AS (SELECT {keys}, CAST(e.key AS integer) AS k, {count} AS n, {low} AS lo, "  # noqa: S608
        f"{high} AS hi FROM {table} r {joins}, {each} WHERE r.id IN ({inner})) {selects}"
    )
    # A server-side cursor on PostgreSQL: the rows arrive a chunk at a time.
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(CHUNK):
            yield from rows
