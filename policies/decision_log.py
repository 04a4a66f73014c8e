"""The decision log's plumbing: the operator's logging mode, the deferred buffer, and the
validation of the local decisions an agent sends in a batch. The writes themselves are
``policies.services.evaluations_record`` and ``local_decisions_log``.

``settings.HITL_DECISION_LOG`` (default ``"sync"``):

- ``"sync"``: every decision POST /actions/ makes is inserted in the request's transaction.
- ``"deferred"``: auto-executed reads (the calls that change nothing) are not written in the
  request. When its transaction commits they join a buffer in the web process, which hands
  them to the worker as one task (``reviews.tasks.log_decisions``) every
  ``HITL_DECISION_LOG_SECONDS`` (default 1; 0: by size only) or ``HITL_DECISION_LOG_BATCH``
  entries (default 500), and the task bulk-inserts them. What can be lost: the buffered
  entries of a web process killed without an exit (SIGKILL, out of memory) before its next
  flush, at most one interval's worth; a task the broker loses (Redis without persistence).
  A task the broker delivers twice logs its entries twice. A broker that refuses the task
  does not lose them: the flush inserts them itself, and if that fails too they stay
  buffered for the next round. Reviews, runs and calls are never deferred: only this log.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from hitl.tasks import enqueue
from policies import engine
from policies.exceptions import PolicyInputError
from policies.models import SOURCE_LOCAL, PolicyEvaluation, PolicyVersion
from policies.selectors import action_type_for

logger = logging.getLogger(__name__)

DECISION_LOG_SYNC = "sync"
DECISION_LOG_DEFERRED = "deferred"
# The most local decisions one POST /decisions/ may carry.
MAX_LOCAL_DECISIONS = 1000
# Outcomes an agent may decide and log by itself: a person's review is the server's.
LOCAL_OUTCOMES = tuple(o for o in engine.OUTCOMES if o != engine.HUMAN_REVIEW)


def decision_log_mode() -> str:
    mode = getattr(settings, "HITL_DECISION_LOG", DECISION_LOG_SYNC)
    if mode not in (DECISION_LOG_SYNC, DECISION_LOG_DEFERRED):
        raise ValueError(f"HITL_DECISION_LOG must be 'sync' or 'deferred', not {mode!r}.")
    return mode


# --- the deferred buffer ---------------------------------------------------------------


class _Buffer:
    """Log rows waiting for their task, per process; a daemon thread flushes them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[dict[str, Any]] = []
        self.pid = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            self.rows.extend(rows)
            full = len(self.rows) >= getattr(settings, "HITL_DECISION_LOG_BATCH", 500)
            if self.pid != os.getpid() and _interval():
                # First use in this process (a forked gunicorn worker has no thread yet).
                self.pid = os.getpid()
                threading.Thread(target=self._loop, daemon=True, name="decision-log").start()
        if full:
            self.flush()

    def flush(self) -> int:
        with self.lock:
            rows, self.rows = self.rows, []
        if rows:
            try:
                _hand_over(rows)
            except Exception:
                with self.lock:
                    self.rows[:0] = rows  # kept for the next flush, in their order
                raise
        return len(rows)

    def _loop(self) -> None:
        while True:
            time.sleep(max(_interval(), 0.1))
            # This thread outlives requests: drop a connection the database closed.
            close_old_connections()
            try:
                self.flush()
            except Exception:
                # The rows stay buffered for the next round; never kill the thread.
                logger.exception("decision log: flushing the deferred rows failed")


def _interval() -> float:
    # 0 turns the timer off: rows then leave at the batch size, on flush_deferred() or
    # when the process exits.
    return float(getattr(settings, "HITL_DECISION_LOG_SECONDS", 1.0))


def _hand_over(rows: list[dict[str, Any]]) -> None:
    from policies.services import evaluations_insert

    try:
        enqueue("reviews.tasks.log_decisions", rows, task_name="decision-log")
    except Exception:
        # A broker that is down must not lose the entries: write them from here.
        logger.warning("decision log: the broker refused the task; inserting %d rows", len(rows))
        evaluations_insert(rows=rows)


_buffer = _Buffer()
atexit.register(_buffer.flush)


def defer(rows: list[dict[str, Any]]) -> None:
    """Buffer log rows (JSON-safe dicts, see ``evaluations_insert``) for a worker task."""
    _buffer.add(rows)


def flush_deferred() -> int:
    """Hand every buffered row to the worker now; answers how many."""
    return _buffer.flush()


# --- local decisions, as an agent sends them ------------------------------------------


def parse_local_entries(entries: Any, *, tenant: str) -> list[dict[str, Any]]:
    """Check a batch of local decisions; PolicyInputError names each bad entry and field
    (``entries[3].outcome``). Answers the entries with their ``decided_at`` parsed."""
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_LOCAL_DECISIONS:
        raise PolicyInputError({"entries": [f"a list of 1 to {MAX_LOCAL_DECISIONS} decisions"]})
    errors: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    parsed = []
    for index, entry in enumerate(entries):
        where = f"entries[{index}]"
        if not isinstance(entry, Mapping):
            errors[where] = ["must be an object"]
            continue
        problems = _entry_problems(entry, tenant)
        call_id = entry.get("tool_call_id")
        if isinstance(call_id, str) and call_id in seen:
            problems.setdefault("tool_call_id", []).append(
                f"{call_id!r} is also entries[{seen[call_id]}]"
            )
        elif isinstance(call_id, str):
            seen[call_id] = index
        errors.update({f"{where}.{field}": msgs for field, msgs in problems.items()})
        if not problems:
            parsed.append({**entry, "decided_at": parse_datetime(entry["decided_at"])})
    if errors:
        raise PolicyInputError(errors)
    return parsed


def _entry_problems(entry: Mapping[str, Any], tenant: str) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    call_id = entry.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id.strip() or len(call_id) > 200:
        problems["tool_call_id"] = ["1 to 200 characters"]
    outcome = entry.get("outcome")
    if outcome == engine.HUMAN_REVIEW:
        problems["outcome"] = [
            "human_review is the server's: propose the call through POST /api/v1/actions/"
        ]
    elif outcome not in LOCAL_OUTCOMES:
        problems["outcome"] = [f"one of {', '.join(LOCAL_OUTCOMES)}"]
    rule = entry.get("rule", "")
    if rule is not None and (not isinstance(rule, str) or len(rule) > 80):
        problems["rule"] = ["a rule name (at most 80 characters), or empty"]
    version = entry.get("policy_version")
    if not isinstance(version, str) or len(version) != 64:
        problems["policy_version"] = ["the content hash (64 hex characters) decided with"]
    problem = _decided_at_problem(entry.get("decided_at"))
    if problem:
        problems["decided_at"] = [problem]
    try:
        proposal = engine.parse_proposal(entry.get("proposal"))
    except engine.ProposalError as exc:
        problems.update(
            {k if k == "proposal" else f"proposal.{k}": v for k, v in exc.errors.items()}
        )
    else:
        if proposal.tenant != tenant:
            problems["proposal.tenant"] = [f"this agent decides for tenant {tenant!r} only"]
    return problems


def versions_named(hashes: set[str]) -> dict[str, tuple[int, str, set[str]]]:
    """The published versions with these hashes: (pk, rule set tenant, rule names)."""
    rows = PolicyVersion.objects.filter(content_hash__in=hashes).values_list(
        "content_hash", "pk", "rule_set__tenant", "snapshot"
    )
    return {
        digest: (pk, tenant, {rule["name"] for rule in snapshot.get("rules") or []})
        for digest, pk, tenant, snapshot in rows
    }


def check_versions(parsed: list[dict], versions: Mapping[str, tuple], tenant: str) -> None:
    """Each entry names a version of its tenant (or the default one) and one of its rules;
    ``versions`` maps a hash to (pk, rule set tenant, rule names)."""
    errors: dict[str, list[str]] = {}
    for index, entry in enumerate(parsed):
        found = versions.get(entry["policy_version"])
        if found is None or found[1] not in (tenant, ""):
            errors[f"entries[{index}].policy_version"] = [
                "no published policy version of this tenant has this hash"
            ]
        elif entry.get("rule") and entry["rule"] not in found[2]:
            errors[f"entries[{index}].rule"] = [f"the version has no rule {entry['rule']!r}"]
    if errors:
        raise PolicyInputError(errors)


def local_row(actor_label: str, entry: Mapping[str, Any], version: tuple) -> PolicyEvaluation:
    """The log row of one checked local decision."""
    proposal = entry["proposal"]
    return PolicyEvaluation(
        actor_label=actor_label[:200],
        action_name=str(proposal["action"]["name"]).strip()[:100],
        tenant=proposal.get("tenant") or "",
        outcome=entry["outcome"],
        rule=entry.get("rule") or "",
        version_id=version[0],
        proposal=proposal,
        decision={
            "outcome": entry["outcome"],
            "rule": entry.get("rule") or None,
            "policy_version": entry["policy_version"],
        },
        source=SOURCE_LOCAL,
        tool_call_id=entry["tool_call_id"],
        decided_at=entry["decided_at"],
    )


# --- the server's own decisions --------------------------------------------------------


def server_row(actor_label: str, proposal: Any, decision: engine.PolicyDecision) -> dict:
    """The log row of a decision POST /actions/ made, as JSON-safe values (a deferred row
    travels through the broker)."""
    action = proposal.get("action") if isinstance(proposal, dict) else None
    action = action if isinstance(action, dict) else {}
    tenant = proposal.get("tenant") if isinstance(proposal, dict) else ""
    return {
        "actor_label": actor_label[:200],
        "action_name": str(action.get("name") or "")[:100],
        "tenant": str(tenant or "")[:64],
        "outcome": decision.outcome,
        "rule": decision.rule or "",
        "proposal": proposal,
        "decision": decision.to_dict(),
        "tool_call_id": str(action.get("tool_call_id") or "")[:200],
        "decided_at": timezone.now().isoformat(),
    }


# Keys of a row that are not set as given: created_at is when the row is written (what the
# archive export reads, so a row written late by the worker is still exported), decided_at
# when the server decided ("created_at" in rows queued before it was renamed).
NOT_COLUMNS = frozenset({"created_at", "decided_at", "version_id"})


def when(value: str | None) -> datetime:
    """A row's decided_at: when the server decided, also for a row written later."""
    return (parse_datetime(value) if value else None) or timezone.now()


def evaluation(row: Mapping[str, Any], versions: dict[str, int]) -> PolicyEvaluation:
    """The log's row for a JSON-safe row dict; `versions` maps hashes to version ids for a
    row that names its version by hash only."""
    return PolicyEvaluation(
        **{k: v for k, v in row.items() if k not in NOT_COLUMNS},
        decided_at=when(row.get("decided_at") or row.get("created_at")),
        version_id=row.get("version_id") or versions.get(row["decision"].get("policy_version")),
    )


def is_read(proposal: Any, decision: engine.PolicyDecision) -> bool:
    """An auto-executed call of a read tool: it changed nothing, so its row may wait."""
    if decision.outcome != engine.AUTO_EXECUTE:
        return False
    action = proposal.get("action") if isinstance(proposal, dict) else None
    action_type = action_type_for(action.get("name") if isinstance(action, dict) else "")
    return action_type is not None and action_type.tool_type == engine.READ


# How far a local decision's time may stray from the platform's clock: an agent's clock runs
# a little ahead, and a log an agent could not send waits at most this long.
DECIDED_AT_SKEW = timedelta(minutes=5)
DECIDED_AT_OLDEST = timedelta(days=30)


def _decided_at_problem(value: Any) -> str:
    try:
        when = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # the shape of a datetime, out of range ("12:99")
        when = None
    if not isinstance(when, datetime) or when.tzinfo is None:
        return "an ISO 8601 date and time with its UTC offset"
    now = timezone.now()
    if when > now + DECIDED_AT_SKEW:
        return f"in the future (the platform's time is {now.isoformat(timespec='seconds')})"
    if when < now - DECIDED_AT_OLDEST:
        return f"more than {DECIDED_AT_OLDEST.days} days ago: too old to log"
    return ""
