"""Retention: what the platform keeps, per table and per tenant, and the purge that archives
what is past its window (JSONL with a manifest) before it deletes it, in batches.

One `Target` per table that grows without bound. Only closed work goes: the history of
reviews in a final state, the policy's decision log, idempotency records, and webhook
deliveries that are no longer pending. Open reviews, decisions and executions themselves
stay (they are the audit); their history rows are archived, not lost.

Append-only tables (the history tables and the decision log) are archived ahead of time by
the export (reviews.services.archive, hourly), so their purge only deletes rows an export
already wrote, a range of reviews at a time. The other tables change after they are written
and are archived by the purge itself, batch by batch, in the transaction that deletes them.

Windows come from ``settings.HITL_RETENTION``: ``{"<target>": days or None, ...,
"tenants": {"<slug>": {"<target>": days or None}}}``; None keeps forever, a missing target
keeps its default.
"""

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from hitl.internals import raw_delete
from hitl.kernel import Actor, as_actor
from policies.models import PolicyEvaluation

from ..models import (
    FINAL_STATES,
    DeliveryStatus,
    Evidence,
    Execution,
    IdempotencyRecord,
    ReviewRequest,
    RunCall,
    WebhookDelivery,
)
from .archive import Rows, Section, export_target, exported_through, safe_point

# Rows per batch: one DELETE and one archive write each, small enough to keep locks short.
BATCH_SIZE = 5000
# Any constant: only one purge runs at a time (two would archive the same rows twice).
_ADVISORY_LOCK = 0x68_69_74_6C  # "hitl"


Span = tuple[int, int] | None  # [first, last) of the keys a purge batch covers


def _history_of(model: type[models.Model], review_field: str) -> Callable[..., models.QuerySet]:
    def rows(cutoff: datetime, tenant_q: Q, span: Span = None) -> models.QuerySet:
        reviews = ReviewRequest.objects.filter(tenant_q, state__in=FINAL_STATES)
        history = model.history.model.objects.filter(history_date__lt=cutoff)
        if span:
            # The same range on both sides: each batch joins a few thousand reviews.
            reviews = reviews.filter(pk__gte=span[0], pk__lt=span[1])
            history = history.filter(**{f"{review_field}__gte": span[0]})
            history = history.filter(**{f"{review_field}__lt": span[1]})
        return history.filter(**{f"{review_field}__in": reviews.values("id")})

    return rows


def _evaluations(cutoff: datetime, tenant_q: Q, span: Span = None) -> models.QuerySet:
    rows = PolicyEvaluation.objects.filter(tenant_q, created_at__lt=cutoff)
    return rows.filter(pk__gte=span[0], pk__lt=span[1]) if span else rows


def _dated(model: type[models.Model], field: str):
    """An export's reader: every row of `model` dated in [since, until)."""

    def rows(since: datetime | None, until: datetime) -> models.QuerySet:
        chosen = model._default_manager.filter(**{f"{field}__lt": until})
        return chosen.filter(**{f"{field}__gte": since}) if since else chosen

    return rows


@dataclass(frozen=True)
class Target:
    """A table retention purges: its rows past a cutoff, and where its tenant is. An
    append-only one also has `exported` (the export's reader) and `spans` (the table whose
    key ranges the purge walks)."""

    name: str
    label: str
    default_days: int | None
    tenant_field: str
    rows: Callable[..., models.QuerySet]
    exported: Rows | None = None
    spans: type[models.Model] | None = None

    def scoped(
        self, cutoff: datetime, tenants: Iterable[str], exclude: bool, span: Span = None
    ) -> models.QuerySet:
        """Rows past the cutoff of these tenants (or, with exclude, of every other one)."""
        where = Q(**{f"{self.tenant_field}__in": list(tenants)})
        return self.rows(cutoff, ~where if exclude else where, *([span] if span else []))


def _history_target(name: str, label: str, model: type[models.Model], field: str) -> Target:
    return Target(
        name,
        label,
        365,
        "tenant",
        _history_of(model, field),
        exported=_dated(model.history.model, "history_date"),
        spans=ReviewRequest,
    )


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        _history_target("review_history", "history of closed reviews", ReviewRequest, "id"),
        _history_target(
            "evidence_history", "history of closed reviews' evidence", Evidence, "review_id"
        ),
        _history_target(
            "execution_history", "history of closed reviews' executions", Execution, "review_id"
        ),
        _history_target(
            "call_history", "history of closed reviews' tool calls", RunCall, "review_id"
        ),
        Target(
            "policy_evaluations",
            "the policy's decision log",
            90,
            "tenant",
            _evaluations,
            exported=_dated(PolicyEvaluation, "created_at"),
            spans=PolicyEvaluation,
        ),
        Target(
            "idempotency_records",
            "idempotency records (replayed answers)",
            30,
            "agent__tenant",
            lambda cutoff, tenant_q: IdempotencyRecord.objects.filter(
                tenant_q, created_at__lt=cutoff
            ),
        ),
        Target(
            "webhook_deliveries",
            "finished webhook deliveries",
            30,
            "agent__tenant",
            lambda cutoff, tenant_q: WebhookDelivery.objects.filter(
                tenant_q, created_at__lt=cutoff
            ).exclude(status=DeliveryStatus.PENDING),
        ),
    )
}


def retention_windows(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configured windows, checked: {"default": {target: days}, "tenants": {slug:
    {target: days}}}. Raises ImproperlyConfigured naming what is wrong."""
    config = dict(getattr(settings, "HITL_RETENTION", {}) if config is None else config)
    tenants = config.pop("tenants", {}) or {}
    problems: list[str] = []
    default = {name: t.default_days for name, t in TARGETS.items()}
    default.update(_windows(config, "HITL_RETENTION", problems))
    if not isinstance(tenants, Mapping):
        problems.append("HITL_RETENTION.tenants must map tenant slugs to windows")
        tenants = {}
    per_tenant = {
        str(slug): _windows(windows, f"HITL_RETENTION.tenants.{slug}", problems)
        for slug, windows in tenants.items()
    }
    if problems:
        raise ImproperlyConfigured("; ".join(problems))
    return {"default": default, "tenants": per_tenant}


def _windows(raw: Any, where: str, problems: list[str]) -> dict[str, int | None]:
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be an object of target: days")
        return {}
    windows = {}
    for name, days in raw.items():
        if name not in TARGETS:
            problems.append(f"{where}: unknown target {name!r} (one of {', '.join(TARGETS)})")
        elif days is not None and (isinstance(days, bool) or not isinstance(days, int)):
            problems.append(f"{where}.{name} must be a whole number of days or null")
        elif days is not None and days < 1:
            problems.append(f"{where}.{name} must be at least 1 day (null keeps forever)")
        else:
            windows[name] = days
    return windows


@dataclass
class Scope:
    """One target over one set of tenants, with its window: what a purge goes through."""

    target: str
    tenants: str  # "acme" or "all but acme, globex"
    days: int
    cutoff: datetime
    rows: int = 0
    file: str = ""
    sha256: str = ""
    # Append-only targets: the export that archived what this scope deleted.
    exported_through: datetime | None = None


@dataclass
class RetentionReport:
    """What a purge went through (or, dry, would): each scope with its row count, and the
    export that ran first."""

    dry_run: bool
    started_at: datetime
    scopes: list[Scope] = field(default_factory=list)
    exports: list[Section] = field(default_factory=list)
    archive: str = ""

    @property
    def total(self) -> int:
        return sum(scope.rows for scope in self.scopes)

    @property
    def exported(self) -> int:
        return sum(section.rows for section in self.exports)


def _scopes(windows: Mapping[str, Any], now: datetime, only: Iterable[str]):
    """(Scope, target, tenants, exclude) for each target and tenant set with a window."""
    overridden = sorted(windows["tenants"])
    for name, target in TARGETS.items():
        if only and name not in only:
            continue
        for slug in overridden:
            days = windows["tenants"][slug].get(name, windows["default"][name])
            if days is not None:
                cutoff = now - timedelta(days=days)
                yield Scope(name, slug or "default", days, cutoff), target, [slug], False
        days = windows["default"][name]
        if days is not None:
            cutoff = now - timedelta(days=days)
            label = (
                "all"
                if not overridden
                else "all but " + ", ".join(s or "default" for s in overridden)
            )
            yield Scope(name, label, days, cutoff), target, overridden, True


def _check(only: set[str], batch_size: int) -> None:
    unknown = only - set(TARGETS)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown target {', '.join(sorted(unknown))}; one of {', '.join(TARGETS)}."
        )
    if batch_size < 1:
        raise ImproperlyConfigured("batch_size must be at least 1.")


def _folder(archive_dir: Path | str | None, now: datetime) -> Path:
    root = archive_dir or getattr(settings, "HITL_ARCHIVE_DIR", Path(settings.BASE_DIR) / "archive")
    return Path(root) / now.strftime("%Y%m%dT%H%M%S%fZ")


def archive_export(
    *,
    actor: Actor | None,
    now: datetime | None = None,
    only: Iterable[str] = (),
    batch_size: int = BATCH_SIZE,
    archive_dir: Path | None = None,
) -> RetentionReport:
    """Copy the append-only tables' rows dated since their last export into a new archive
    folder with its manifest (none when there was nothing new); the hourly task."""
    only = set(only)
    _check(only, batch_size)
    now = now or timezone.now()
    report = RetentionReport(dry_run=False, started_at=now)
    folder = _folder(archive_dir, now)
    with _single_purge():
        _export(report, folder, only, batch_size)
        if report.exported:
            _write_manifest(folder, report, as_actor(actor, system="archive export"))
    return report


def _export(report: RetentionReport, folder: Path, only: set[str], batch_size: int) -> None:
    point = safe_point(report.started_at)
    folder.mkdir(parents=True, exist_ok=True)
    report.archive = str(folder)
    for name, target in TARGETS.items():
        if target.exported and (not only or name in only):
            section = export_target(
                target=name, rows=target.exported, point=point, folder=folder,
                batch_size=batch_size,
            )  # fmt: skip
            report.exports.append(section)
    for section in report.exports:
        if not section.rows:
            (folder / section.file).unlink(missing_ok=True)
    if not report.exported:
        with contextlib.suppress(OSError):
            folder.rmdir()
        report.archive = ""


def retention_apply(
    *,
    actor: Actor | None,
    dry_run: bool = False,
    now: datetime | None = None,
    only: Iterable[str] = (),
    batch_size: int = BATCH_SIZE,
    archive_dir: Path | None = None,
) -> RetentionReport:
    """Export the append-only tables, then delete, batch by batch, every row past its window
    (archived by an export, or by the purge as it deletes); dry: count them. The manifest
    (who, when, each scope's window, rows, file and SHA-256) is the audit."""
    only = set(only)
    _check(only, batch_size)
    windows = retention_windows()
    now = now or timezone.now()
    report = RetentionReport(dry_run=dry_run, started_at=now)
    if dry_run:
        for scope, target, tenants, exclude in _scopes(windows, now, only):
            scope.rows = target.scoped(scope.cutoff, tenants, exclude).count()
            report.scopes.append(scope)
        return report
    folder = _folder(archive_dir, now)
    with _single_purge():
        _export(report, folder, only, batch_size)
        folder.mkdir(parents=True, exist_ok=True)
        report.archive = str(folder)
        for scope, target, tenants, exclude in _scopes(windows, now, only):
            if target.exported:
                _delete_archived(scope, target, tenants, exclude, batch_size)
            else:
                _purge(scope, target.scoped(scope.cutoff, tenants, exclude), folder, batch_size)
            report.scopes.append(scope)
        _write_manifest(folder, report, as_actor(actor, system="retention"))
    return report


def _delete_archived(
    scope: Scope, target: Target, tenants: list[str], exclude: bool, batch_size: int
) -> None:
    """Delete the scope's rows that an export already wrote, one range of `batch_size` keys
    of `target.spans` (reviews, or the log itself) per transaction."""
    through = exported_through(target.name)
    if through is None:
        return
    cutoff = min(scope.cutoff, through)
    bounds = target.spans.objects.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return
    for low in range(bounds["low"], bounds["high"] + 1, batch_size):
        with transaction.atomic():
            rows = target.scoped(cutoff, tenants, exclude, span=(low, low + batch_size))
            scope.rows += raw_delete(rows)
    scope.exported_through = through


class _single_purge:
    """On PostgreSQL, a session advisory lock: a second purge at the same time refuses to
    start instead of archiving the same rows again. (SQLite has one writer anyway.)"""

    def __enter__(self):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [_ADVISORY_LOCK])
                if not cursor.fetchone()[0]:
                    raise RetentionBusy("Another retention purge is running; try again later.")
        return self

    def __exit__(self, *exc):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_ADVISORY_LOCK])
        return False


class RetentionBusy(RuntimeError):
    """Another purge holds the lock."""


def _purge(scope: Scope, rows: models.QuerySet, folder: Path, batch_size: int) -> None:
    """Archive each batch (written and flushed to disk) before its delete commits: a crash
    in between leaves the rows in place and, at worst, archived twice, never lost."""
    name = f"{scope.target}.{_slug(scope.tenants)}.jsonl"
    take = _batch_on_postgres if connection.vendor == "postgresql" else _batch_in_python
    digest = hashlib.sha256()
    last = None
    with (folder / name).open("ab") as out:
        while True:
            # Keyset order: a batch never rescans the rows the batches before it deleted.
            page = rows if last is None else rows.filter(pk__gt=last)
            pks = list(page.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not pks:
                break
            with transaction.atomic():
                lines = take(rows.model, pks)
                data = b"".join(line + b"\n" for line in lines)
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            digest.update(data)
            scope.rows += len(lines)
            last = pks[-1]
    scope.file, scope.sha256 = name, digest.hexdigest()


def _batch_in_python(model: type[models.Model], pks: list[Any]) -> list[bytes]:
    """Delete these rows and return them as JSON lines, in key order (any database)."""
    columns = [f.attname for f in model._meta.concrete_fields]
    chosen = model._default_manager.filter(pk__in=pks)
    lines = [
        json.dumps(row, cls=DjangoJSONEncoder, sort_keys=True).encode()
        for row in chosen.order_by("pk").values(*columns)
    ]
    chosen.delete()
    return lines


def _batch_on_postgres(model: type[models.Model], pks: list[Any]) -> list[bytes]:
    """One DELETE ... RETURNING row_to_json: the database encodes the rows it deletes, so a
    purge costs about what the bare DELETE does (bench B8)."""
    table, pk = model._meta.db_table, model._meta.pk.column
    # Table and column names come from the model; the keys are a bound parameter.
    statement = f'DELETE FROM "{table}" WHERE "{pk}" = ANY(%s) '  # noqa: S608
    statement += f'RETURNING "{pk}", row_to_json("{table}".*)::text'
    with connection.cursor() as cursor:
        cursor.execute(statement, [pks])
        return [line.encode() for _key, line in sorted(cursor.fetchall())]


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:80]


def _write_manifest(folder: Path, report: RetentionReport, actor: Actor) -> None:
    manifest = {
        "started_at": report.started_at.isoformat(),
        "finished_at": timezone.now().isoformat(),
        "by": actor.label,
        "rows": report.total,
        "exported": [section.manifest() for section in report.exports if section.rows],
        "scopes": [
            {
                "target": s.target,
                "tenants": s.tenants,
                "days": s.days,
                "cutoff": s.cutoff.isoformat(),
                "rows": s.rows,
                # Either this folder's file, or the exports (earlier folders) that wrote them.
                "file": s.file,
                "sha256": s.sha256,
                "exported_through": s.exported_through and s.exported_through.isoformat(),
            }
            for s in report.scopes
        ],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
