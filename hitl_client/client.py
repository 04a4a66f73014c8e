"""HTTP client for agents: propose, wait, claim, report, and webhook verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

WAITING_STATES = {"pending", "escalated"}


class HitlError(Exception):
    """An error answer from the platform, with its HTTP status and error body."""

    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.body = body
        self.code = body.get("error", "error")
        super().__init__(f"{status} {self.code}: {body.get('detail', '')}")


class HitlClient:
    """One agent's connection to the platform, authenticated by its API key."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    # --- the calls ---

    def propose(self, proposal: dict[str, Any], *, idempotency_key: str | None = None) -> dict:
        """Send a proposal; retries with the same idempotency key never create twice."""
        key = idempotency_key or str(uuid.uuid4())
        return self._call("POST", "/api/v1/actions/", proposal, {"Idempotency-Key": key})

    def review(self, review_id: str) -> dict:
        return self._call("GET", f"/api/v1/reviews/{review_id}/")

    def run(self, run_id: str) -> dict:
        """The stored checkpoint and the resume instruction of every review of the run."""
        return self._call("GET", f"/api/v1/runs/{run_id}/")

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

    # --- plumbing ---

    def _call(self, method: str, path: str, body: Any = None, headers: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the base URL is the caller's
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data is not None else {}),
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"error": "http_error", "detail": raw.decode(errors="replace")[:500]}
            raise HitlError(exc.code, payload) from None


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
