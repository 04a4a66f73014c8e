"""The archive export: append-only tables (history rows, the policy's decision log) are
copied to JSON Lines files as they age past a safe point, long before retention deletes
them, so the purge itself only deletes what an earlier export already wrote (bench B8).

Each table has an `ArchiveCursor`: every row dated before its `through` is in a file that was
flushed to disk and listed in a manifest. An export copies the rows dated in
[through, safe point) and then moves the cursor; a crash in between leaves the cursor where it
was, so the next export writes those rows again (at worst twice, never lost).

The safe point is what makes a date cursor exact: a row is dated when its transaction writes
it and becomes visible when that transaction commits, so an export must not pass the start
of any transaction still open. On PostgreSQL the safe point is the start of the oldest open
transaction of this database (minus a margin for clocks between hosts), and never later than
now minus the margin.
"""

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction

from hitl.db import for_update
from hitl.internals import copy_out, queryset_sql

from ..models import ArchiveCursor

# Covers clock differences between the hosts that date rows and the database's own clock.
MARGIN = timedelta(minutes=5)

# An export held back longer than this by an open transaction is logged as a warning.
HELD_BACK = timedelta(hours=1)

logger = logging.getLogger(__name__)

# What an export reads: the rows of one table dated in [since, until) (since None: all).
Rows = Callable[[datetime | None, datetime], models.QuerySet]


@dataclass
class Section:
    """One table's part of an archive folder: how many rows, in which file, its SHA-256;
    for an export, the dates it covers."""

    target: str
    rows: int = 0
    file: str = ""
    sha256: str = ""
    since: datetime | None = None
    through: datetime | None = None

    def manifest(self) -> dict[str, Any]:
        """This section as the manifest lists it."""
        entry = {"target": self.target, "rows": self.rows, "file": self.file, "sha256": self.sha256}
        if self.through:
            entry["since"] = self.since.isoformat() if self.since else None
            entry["through"] = self.through.isoformat()
        return entry


def safe_point(now: datetime) -> datetime:
    """The latest moment before which every row that will ever be dated is committed."""
    point = now - MARGIN
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            (oldest,) = cursor.fetchone()
        if oldest is not None and oldest - MARGIN < point:
            point = oldest - MARGIN
            if now - point > HELD_BACK:
                logger.warning(
                    "The archive export stops at %s: a transaction of this database has been "
                    "open since then (pg_stat_activity); retention deletes nothing newer.",
                    point.isoformat(),
                )
    return point


def exported_through(target: str) -> datetime | None:
    """Every row of `target` dated before this is archived (None: nothing yet)."""
    cursor = ArchiveCursor.objects.filter(target=target).first()
    return cursor.through if cursor else None


def export_target(
    *, target: str, rows: Rows, point: datetime, folder: Path, batch_size: int
) -> Section:
    """Copy the target's rows dated since its cursor and before `point` into
    `folder/<target>.jsonl` (flushed to disk batch by batch), then move the cursor."""
    since = exported_through(target)
    section = Section(target, file=f"{target}.jsonl", since=since, through=point)
    if since is not None and since >= point:
        return section
    digest = hashlib.sha256()
    chosen = rows(since, point)
    take = _batch_on_postgres if connection.vendor == "postgresql" else _batch_in_python
    last = None
    with (folder / section.file).open("ab") as out:
        while True:
            # Keyset order: each batch starts after the last key the one before it wrote.
            page = chosen if last is None else chosen.filter(pk__gt=last)
            data, count, last = take(page.order_by("pk"), batch_size)
            if not count:
                break
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
            digest.update(data)
            section.rows += count
    section.sha256 = digest.hexdigest()
    _advance(target, point, section.rows)
    return section


def _advance(target: str, point: datetime, rows: int) -> None:
    with transaction.atomic():
        cursor = for_update(ArchiveCursor.objects.filter(target=target)).first()
        if cursor is None:
            ArchiveCursor.objects.create(target=target, through=point, rows=rows)
        else:
            cursor.through, cursor.rows = point, cursor.rows + rows
            cursor.save(update_fields=["through", "rows", "updated_at"])


def _batch_in_python(page: models.QuerySet, size: int) -> tuple[bytes, int, Any]:
    """The first `size` rows of `page` as JSON lines, how many, and the last key."""
    columns = [f.attname for f in page.model._meta.concrete_fields]
    found = list(page.values(*columns)[:size])
    data = b"".join(
        json.dumps(row, cls=DjangoJSONEncoder, sort_keys=True).encode() + b"\n" for row in found
    )
    return data, len(found), found[-1][page.model._meta.pk.attname] if found else None


def _batch_on_postgres(page: models.QuerySet, size: int) -> tuple[bytes, int, Any]:
    """As `_batch_in_python`, encoded by the database and streamed by COPY: no row becomes
    a Python object."""
    pk = page.model._meta.pk.column
    chosen, params = queryset_sql(page[:size])
    statement = (
        f"COPY (SELECT row_to_json(t)::text FROM ({chosen}) t "  # noqa: S608 - the ORM's SQL
        f'ORDER BY t."{pk}") TO STDOUT'
    )
    with connection.cursor() as cursor:
        chunks = copy_out(cursor, statement, params)
    # COPY's text format doubles each backslash; JSON holds no raw tab or newline.
    data = b"".join(chunks).replace(b"\\\\", b"\\")
    count = data.count(b"\n")
    if not count:
        return b"", 0, None
    return data, count, json.loads(data[data.rfind(b"\n", 0, len(data) - 1) + 1 :])[pk]
