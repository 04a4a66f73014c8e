"""Decide locally, review centrally: the agent decides its own tool calls in process with
the platform's policy engine (shipped in ``hitl_client.engine``), and only the calls the
policy sends to a person go over the network.

    from hitl_client import HitlClient, LocalDecider
    decider = LocalDecider(HitlClient(url, key))      # fetches the policy (ETag)
    answer = decider.propose({"action": {...}, "confidence": 0.9, ...})
    if answer["outcome"] == "auto_execute": ...       # decided here, in microseconds
    decider.close()                                    # logs what is still buffered

``propose`` takes and answers what ``HitlClient.propose`` does. A call the policy sends to
``human_review`` (and any call of an action the platform decides on trusted facts, or a
proposal the engine cannot read) is proposed to the platform, which decides it again: the
server stays the authority for reviews, claims and re-validation. Every other decision is
logged to the platform in batches (POST /api/v1/decisions/), by size or time, so the audit
of what ran unattended stays complete.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import engine
from .client import HitlClient, HitlError

# Retried after these (the platform busy, away or throttling); other errors are the batch's.
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# A batch stays under the platform's default body limit (HITL_MAX_BODY_BYTES, 256 KiB).
MAX_BATCH_BYTES = 200_000


class LocalPolicy:
    """The tenant's active policy version, compiled; refreshed every `refresh_seconds` in
    a background thread, with the ETag so an unchanged policy costs a 304."""

    def __init__(self, client: HitlClient, *, refresh_seconds: float = 30.0, start: bool = True):
        self.client = client
        self.refresh_seconds = refresh_seconds
        self.etag = ""
        self.tenant = ""
        self.server_decides: frozenset[str] = frozenset()
        self.compiled: engine.CompiledPolicy | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()
        if start and refresh_seconds > 0:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="hitl-policy")
            self._thread.start()

    @property
    def version(self) -> str | None:
        return self.compiled.version if self.compiled else None

    def refresh(self) -> bool:
        """Fetch the policy unless it is unchanged; True when a new one was compiled."""
        body, etag = self.client.policy(etag=self.etag or None)
        if body is None:
            return False
        compiled = engine.compile_policy(
            body["snapshot"], version=body["version"], default_queue=body["default_queue"]
        )
        # One assignment each: a decision in another thread sees the old or the new policy.
        self.tenant, self.server_decides = body["tenant"], frozenset(body["server_decides"])
        self.compiled, self.etag = compiled, etag
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            # A failed refresh leaves the policy in hand in force; the next round tries again.
            with contextlib.suppress(HitlError, OSError, ValueError):
                self.refresh()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class DecisionLog:
    """Local decisions on their way to the platform: sent in batches of `batch_size` (or
    every `flush_seconds`) by a background thread. A failed send keeps the entries and
    retries them; a 400 sets aside only the entries it names (`rejected`)."""

    def __init__(
        self,
        client: HitlClient,
        *,
        batch_size: int = 500,
        flush_seconds: float = 2.0,
        retry_seconds: float = 1.0,
        on_rejected: Callable[[dict, dict], None] | None = None,
    ):
        self.client = client
        self.batch_size = max(1, min(batch_size, 1000))
        self.flush_seconds = flush_seconds
        self.retry_seconds = retry_seconds
        self.on_rejected = on_rejected
        self.rejected: list[tuple[dict, dict]] = []
        self.logged = 0
        self._pending: deque[dict] = deque()
        self._wake = threading.Condition()
        self._send_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="hitl-decisions")
        self._thread.start()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, entry: dict) -> None:
        with self._wake:
            self._pending.append(entry)
            if len(self._pending) >= self.batch_size:
                self._wake.notify()

    def flush(self) -> None:
        """Send everything buffered now; raises HitlError/OSError if the platform cannot
        take it (the entries stay buffered for the next try)."""
        with self._send_lock:
            while self._pending:
                self._send(self._take())

    def close(self) -> None:
        """Stop the thread and send what is left (raises if the platform cannot take it)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)
        self.flush()

    def _take(self) -> list[dict]:
        batch, size = [], 2
        while self._pending and len(batch) < self.batch_size:
            size += len(json.dumps(self._pending[0])) + 1
            if batch and size > MAX_BATCH_BYTES:
                break
            batch.append(self._pending.popleft())
        return batch

    def _send(self, batch: list[dict]) -> None:
        try:
            answer = self.client.log_decisions(batch)
        except HitlError as exc:
            if exc.status == 400 and self._set_aside(batch, exc.body.get("fields") or {}):
                return
            self._pending.extendleft(reversed(batch))
            raise
        except (OSError, ValueError):
            self._pending.extendleft(reversed(batch))
            raise
        self.logged += answer.get("logged", 0)

    def _set_aside(self, batch: list[dict], fields: dict) -> bool:
        """Keep the entries a 400 did not name for the next send; False if it named none."""
        bad = {}
        for field, messages in fields.items():
            if field.startswith("entries[") and "]" in field:
                index = field[len("entries[") : field.index("]")]
                if index.isdigit() and int(index) < len(batch):
                    bad.setdefault(int(index), {})[field] = messages
        if not bad:
            return False
        for index, errors in sorted(bad.items()):
            self.rejected.append((batch[index], errors))
            if self.on_rejected is not None:
                self.on_rejected(batch[index], errors)
        self._pending.extendleft(reversed([e for i, e in enumerate(batch) if i not in bad]))
        return True

    def _loop(self) -> None:
        while True:
            with self._wake:
                if not self._closed and len(self._pending) < self.batch_size:
                    self._wake.wait(self.flush_seconds)
                if self._closed:
                    return
            try:
                self.flush()
            except (HitlError, OSError, ValueError) as exc:
                if isinstance(exc, HitlError) and exc.status not in TRANSIENT_STATUSES:
                    # A refusal that is not the platform being busy: wait longer, keep all.
                    time.sleep(self.retry_seconds * 10)
                time.sleep(self.retry_seconds)


class LocalDecider:
    """`propose` with the policy decided in process: only human_review goes to the
    platform; the rest is answered here and logged in batches (see the module)."""

    def __init__(
        self,
        client: HitlClient,
        *,
        refresh_seconds: float = 30.0,
        batch_size: int = 500,
        flush_seconds: float = 2.0,
        policy: LocalPolicy | None = None,
        log: DecisionLog | None = None,
    ):
        self.client = client
        self.policy = policy or LocalPolicy(client, refresh_seconds=refresh_seconds)
        self.log = log or DecisionLog(client, batch_size=batch_size, flush_seconds=flush_seconds)

    def decide(self, proposal: dict[str, Any]) -> engine.PolicyDecision | None:
        """The policy's decision on a proposal (API shape), in process; None when the
        platform must decide it (no policy yet, an action it decides on trusted facts,
        a proposal the engine cannot read)."""
        compiled, action = self.policy.compiled, proposal.get("action")
        if compiled is None or not isinstance(action, dict):
            return None
        if action.get("name") in self.policy.server_decides:
            return None
        try:
            parsed = engine.parse_proposal({**proposal, "tenant": self.policy.tenant})
        except engine.ProposalError:
            return None  # the platform answers with the field errors
        return engine.evaluate(compiled, parsed)

    def propose(self, proposal: dict[str, Any], *, idempotency_key: str | None = None) -> dict:
        """Decide the proposal's `action`: a person's review is proposed to the platform
        (answering what it answers); any other outcome is answered here, `"local": True`."""
        decision = self.decide(proposal)
        # An auto-execution its rule audits is the platform's to sample: the draw opens an
        # after-the-fact review there, which a local answer would skip.
        audited = decision is not None and decision.outcome == engine.AUTO_EXECUTE
        if decision is None or decision.needs_review or (audited and decision.audit_sample_rate):
            return self.client.propose(proposal, idempotency_key=idempotency_key)
        action = proposal["action"]
        tool_call_id = str(action.get("tool_call_id") or uuid.uuid4())
        self.log.add(
            {
                "tool_call_id": tool_call_id,
                "proposal": _policy_input(proposal, self.policy.tenant),
                "outcome": decision.outcome,
                "rule": decision.rule or "",
                "policy_version": decision.policy_version,
                "decided_at": datetime.now(UTC).isoformat(),
            }
        )
        return {
            "outcome": decision.outcome,
            "review": None,
            "execution": None,
            "policy": decision.to_dict(),
            "tool_call_id": tool_call_id,
            "local": True,
        }

    def flush(self) -> None:
        self.log.flush()

    def close(self) -> None:
        self.policy.close()
        self.log.close()

    def __enter__(self) -> LocalDecider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _policy_input(proposal: dict[str, Any], tenant: str) -> dict[str, Any]:
    """What the engine decided on (the platform replays it in simulations)."""
    shared = {k: proposal[k] for k in engine.POLICY_KEYS if proposal.get(k) is not None}
    return json.loads(json.dumps({**shared, "tenant": tenant}, default=str))
