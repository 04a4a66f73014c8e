"""HTTP client for agents: propose, wait, claim, report, and webhook verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable
from typing import Any

WAITING_STATES = {"pending", "escalated"}
# The longest long-poll the platform accepts (GET /runs/<id>/?wait=SECONDS).
MAX_WAIT_SECONDS = 30


class HitlError(Exception):
    """An error answer from the platform, with its HTTP status and error body."""

    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.body = body
        self.code = body.get("error", "error")
        super().__init__(f"{status} {self.code}: {body.get('detail', '')}")


class NotResumable(Exception):
    """The run cannot resume yet: some call of its latest batch is still undecided."""

    def __init__(self, run: dict[str, Any], waiting: list[str]):
        self.run = run
        self.waiting = waiting
        super().__init__(f"run {run.get('run_id')} is {run.get('status')}: waiting for {waiting}")


class HitlClient:
    """One agent's connection to the platform, authenticated by its API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        # Sent with every request (a proxy's or tracer's headers).
        self.headers = dict(headers or {})

    # --- the calls ---

    def propose(self, proposal: dict[str, Any], *, idempotency_key: str | None = None) -> dict:
        """Send a proposal; retries with the same idempotency key never create twice."""
        key = idempotency_key or str(uuid.uuid4())
        return self._call("POST", "/api/v1/actions/", proposal, {"Idempotency-Key": key})

    def propose_batch(
        self,
        *,
        run_id: str,
        actions: Iterable[dict[str, Any]],
        summary: str,
        checkpoint: dict | None = None,
        thread_id: str = "",
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> dict:
        """Propose every tool call of one model turn at once (each with its `tool_call_id`);
        the policy decides each call. Answers the run, as `run()` does."""
        body: dict[str, Any] = {
            "run_id": run_id,
            "thread_id": thread_id,
            "actions": list(actions),
            "summary": summary,
            **fields,
        }
        if checkpoint is not None:
            body["checkpoint"] = checkpoint
        return self.propose(body, idempotency_key=idempotency_key)

    def review(self, review_id: str) -> dict:
        return self._call("GET", f"/api/v1/reviews/{review_id}/")

    def run(self, run_id: str, *, wait: float = 0) -> dict:
        """The run: its checkpoint, every call with its decision, and whether it may resume.
        With `wait`, the platform answers as soon as the run is resumable (at most
        MAX_WAIT_SECONDS later)."""
        path = f"/api/v1/runs/{_segment(run_id)}/"
        seconds = min(MAX_WAIT_SECONDS, math.ceil(max(wait, 0)))
        if seconds:
            path += f"?wait={seconds}"
        return self._call("GET", path, timeout=self.timeout + seconds)

    def wait_until_resumable(self, run_id: str, *, timeout: float) -> dict:
        """Long-poll until every call of the run's latest batch is decided (or the run is no
        longer waiting); raises TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id, wait=deadline - time.monotonic())
            if run.get("resumable") or run.get("status") != "waiting":
                return run
            if time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still waiting")

    def save_checkpoint(self, run_id: str, checkpoint: dict, *, version: int) -> int:
        """Replace the run's checkpoint if it is still at `version`; answers the new version.
        Raises HitlError 409 'checkpoint_conflict' when another process saved first."""
        body = {"checkpoint": checkpoint, "version": version}
        answer = self._call("PUT", f"/api/v1/runs/{_segment(run_id)}/checkpoint/", body)
        return answer["checkpoint_version"]

    def finish(self, run_id: str, *, outcome: str = "completed", cancel_open: bool = False):
        """End the run (completed or stopped) so no process resumes it again; finishing twice
        is harmless. With open reviews: HitlError 409 unless `cancel_open` cancels them."""
        body: dict[str, Any] = {"outcome": outcome}
        if cancel_open:
            body["cancel_open"] = True
        return self._call("POST", f"/api/v1/runs/{_segment(run_id)}/finish/", body)

    def supply_evidence(self, review_id: str, evidence: list[dict], note: str = "") -> dict:
        body = {"evidence": evidence, "note": note}
        return self._call("POST", f"/api/v1/reviews/{review_id}/evidence/", body)

    def cancel(self, review_id: str, reason: str) -> dict:
        return self._call("POST", f"/api/v1/reviews/{review_id}/cancel/", {"reason": reason})

    def claim(
        self,
        review_id: str,
        *,
        facts: dict | None = None,
        affected_resources: list[dict] | None = None,
    ) -> dict:
        """Claim the approved action; raises HitlError 409 'blocked_stale' if it is stale."""
        body: dict[str, Any] = {}
        if facts is not None:
            body["facts"] = facts
        if affected_resources is not None:
            body["affected_resources"] = affected_resources
        return self._call("POST", f"/api/v1/reviews/{review_id}/execution/claim/", body)

    def report(self, review_id: str, *, succeeded: bool, result: Any = None, error: str = ""):
        body = {"outcome": "succeeded" if succeeded else "failed", "result": result}
        if error:
            body["error"] = error
        return self._call("POST", f"/api/v1/reviews/{review_id}/execution/report/", body)

    def wait_for_decision(
        self, review_id: str, *, timeout: float = 3600.0, interval: float = 2.0
    ) -> dict:
        """Poll until someone acts (decided, expired, or a question for the agent)."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self.review(review_id)
            if packet["state"] not in WAITING_STATES:
                return packet
            if time.monotonic() >= deadline:
                raise TimeoutError(f"review {review_id} is still {packet['state']}")
            time.sleep(interval)

    def policy(self, *, etag: str | None = None) -> tuple[dict | None, str]:
        """The active policy version of the agent's tenant, for `hitl_client.engine`, and
        its ETag; (None, etag) while the version you hold (`etag`) is still active."""
        headers = {"If-None-Match": etag} if etag else None
        status, response_headers, body = self._exchange("GET", "/api/v1/policy/", None, headers)
        return (None if status == 304 else body), response_headers.get("ETag", etag or "")

    def log_decisions(self, entries: list[dict[str, Any]]) -> dict:
        """Log decisions made in process (see `hitl_client.local`); answers how many were
        new and how many this agent had logged already (a retried batch logs once)."""
        return self._call("POST", "/api/v1/decisions/", {"entries": entries})

    # --- plumbing ---

    def _call(self, *args: Any, **kwargs: Any):
        """The JSON body of the answer (see `_exchange`)."""
        return self._exchange(*args, **kwargs)[2]

    def _exchange(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[int, Any, Any]:
        """(status, headers, JSON body); raises HitlError on an error answer (not on 304)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the base URL is the caller's
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data is not None else {}),
                **self.headers,
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(  # noqa: S310 - the base URL is the caller's
                request, timeout=timeout or self.timeout
            ) as response:
                return response.status, response.headers, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return exc.code, exc.headers, None
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"error": "http_error", "detail": raw.decode(errors="replace")[:500]}
            raise HitlError(exc.code, payload) from None


def _segment(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


def verify_signature(
    *,
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """Check a webhook: the HMAC matches and the timestamp is recent (no replays)."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_seconds:
        return False
    mac = hmac.new(secret.encode(), f"{sent_at}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest("v1=" + mac.hexdigest(), signature or "")
