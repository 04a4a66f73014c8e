"""Retention: what the platform keeps, per table and per tenant, and the purge that archives
what is past its window (JSONL with a manifest) before it deletes it, in batches.

One `Target` per table that grows without bound. Only closed work goes: the history of
reviews in a final state, the policy's decision log, idempotency records, and webhook
deliveries that are no longer pending. Open reviews, decisions and executions themselves
stay (they are the audit); their history rows are archived, not lost.

Windows come from ``settings.HITL_RETENTION``: ``{"<target>": days or None, ...,
"tenants": {"<slug>": {"<target>": days or None}}}``; None keeps forever, a missing target
keeps its default.
"""

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
from django.db.models import Q
from django.utils import timezone

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

# Rows per batch: one DELETE and one archive write each, small enough to keep locks short.
BATCH_SIZE = 5000
# Any constant: only one purge runs at a time (two would archive the same rows twice).
_ADVISORY_LOCK = 0x68_69_74_6C  # "hitl"


def _closed_reviews(tenant_q: Q) -> models.QuerySet:
    return ReviewRequest.objects.filter(tenant_q, state__in=FINAL_STATES).values("id")


def _history_of(model: type[models.Model], review_field: str) -> Callable[..., models.QuerySet]:
    def rows(cutoff: datetime, tenant_q: Q) -> models.QuerySet:
        return model.history.model.objects.filter(
            history_date__lt=cutoff, **{f"{review_field}__in": _closed_reviews(tenant_q)}
        )

    return rows


@dataclass(frozen=True)
class Target:
    """A table retention purges: its rows past a cutoff, and where its tenant is."""

    name: str
    label: str
    default_days: int | None
    tenant_field: str
    rows: Callable[[datetime, Q], models.QuerySet]

    def scoped(self, cutoff: datetime, tenants: Iterable[str], exclude: bool) -> models.QuerySet:
        """Rows past the cutoff of these tenants (or, with exclude, of every other one)."""
        where = Q(**{f"{self.tenant_field}__in": list(tenants)})
        return self.rows(cutoff, ~where if exclude else where)


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            "review_history",
            "history of closed reviews",
            365,
            "tenant",
            _history_of(ReviewRequest, "id"),
        ),
        Target(
            "evidence_history",
            "history of closed reviews' evidence",
            365,
            "tenant",
            _history_of(Evidence, "review_id"),
        ),
        Target(
            "execution_history",
            "history of closed reviews' executions",
            365,
            "tenant",
            _history_of(Execution, "review_id"),
        ),
        Target(
            "call_history",
            "history of closed reviews' tool calls",
            365,
            "tenant",
            _history_of(RunCall, "review_id"),
        ),
        Target(
            "policy_evaluations",
            "the policy's decision log",
            90,
            "tenant",
            lambda cutoff, tenant_q: PolicyEvaluation.objects.filter(
                tenant_q, created_at__lt=cutoff
            ),
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


@dataclass
class RetentionReport:
    """What a purge went through (or, dry, would): each scope with its row count."""

    dry_run: bool
    started_at: datetime
    scopes: list[Scope] = field(default_factory=list)
    archive: str = ""

    @property
    def total(self) -> int:
        return sum(scope.rows for scope in self.scopes)


def _scopes(windows: Mapping[str, Any], now: datetime, only: Iterable[str]):
    """(Scope, queryset) for each target and tenant set with a window."""
    overridden = sorted(windows["tenants"])
    for name, target in TARGETS.items():
        if only and name not in only:
            continue
        for slug in overridden:
            days = windows["tenants"][slug].get(name, windows["default"][name])
            if days is not None:
                cutoff = now - timedelta(days=days)
                yield (
                    Scope(name, slug or "default", days, cutoff),
                    target.scoped(cutoff, [slug], exclude=False),
                )
        days = windows["default"][name]
        if days is not None:
            cutoff = now - timedelta(days=days)
            label = (
                "all"
                if not overridden
                else "all but " + ", ".join(s or "default" for s in overridden)
            )
            yield Scope(name, label, days, cutoff), target.scoped(cutoff, overridden, exclude=True)


def retention_apply(
    *,
    actor: Actor | None,
    dry_run: bool = False,
    now: datetime | None = None,
    only: Iterable[str] = (),
    batch_size: int = BATCH_SIZE,
    archive_dir: Path | None = None,
) -> RetentionReport:
    """Archive then delete, batch by batch, every row past its window (dry: count them).
    The manifest (who, when, each scope's window, rows, file and SHA-256) is the audit."""
    only = set(only)
    unknown = only - set(TARGETS)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown target {', '.join(sorted(unknown))}; one of {', '.join(TARGETS)}."
        )
    if batch_size < 1:
        raise ImproperlyConfigured("batch_size must be at least 1.")
    windows = retention_windows()
    now = now or timezone.now()
    report = RetentionReport(dry_run=dry_run, started_at=now)
    if dry_run:
        for scope, rows in _scopes(windows, now, only):
            scope.rows = rows.count()
            report.scopes.append(scope)
        return report
    root = archive_dir or getattr(settings, "HITL_ARCHIVE_DIR", Path(settings.BASE_DIR) / "archive")
    folder = Path(root) / now.strftime("%Y%m%dT%H%M%S%fZ")
    with _single_purge():
        folder.mkdir(parents=True, exist_ok=True)
        report.archive = str(folder)
        for scope, rows in _scopes(windows, now, only):
            _purge(scope, rows, folder, batch_size)
            report.scopes.append(scope)
        _write_manifest(folder, report, as_actor(actor, system="retention"))
    return report


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
        "scopes": [
            {
                "target": s.target,
                "tenants": s.tenants,
                "days": s.days,
                "cutoff": s.cutoff.isoformat(),
                "rows": s.rows,
                "file": s.file,
                "sha256": s.sha256,
            }
            for s in report.scopes
        ],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
