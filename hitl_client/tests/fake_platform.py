"""The agent endpoints of the issue 17 contract, in memory, behind a real local HTTP server.

Batch proposals, the run (with ?wait= long-poll), the checkpoint, finish, claim and report;
a test plays the reviewer with `decide()`. Its policy is a table: action name -> outcome
(human_review unless told); `executors` names the actions the platform runs itself.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

KEY = "fake-agent-key"


class FakePlatform:
    """An in-memory platform; `url` serves it until `close()`."""

    def __init__(
        self,
        outcomes: dict[str, str] | None = None,
        executors: dict[str, Callable[[dict], Any]] | None = None,
    ):
        self.outcomes = outcomes or {}
        self.executors = executors or {}
        self.runs: dict[str, dict] = {}
        self.replays: dict[str, tuple[int, dict]] = {}
        self.requests: list[tuple[str, str, Any, dict]] = []
        self.changed = threading.Condition()
        self._reviews = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the reviewer --------------------------------------------------------------------

    def decide(
        self,
        tool_call_id: str,
        decision: str,
        *,
        reason: str = "",
        arguments: dict | None = None,
        response: str | None = None,
    ) -> dict:
        """Close the call's review with `decision`, as a reviewer's choice would."""
        with self.changed:
            call = self.call(tool_call_id)
            assert call["status"] == "pending", call
            call.update(status="decided", decision=decision, reason=reason or response or "")
            if decision in ("approve", "edit"):
                call["final_arguments"] = arguments if decision == "edit" else call["args"]
                call["executed_by"] = "platform" if call["action"] in self.executors else "agent"
                self._run_executor(call)
            if decision in ("respond", "guide"):
                call["response"] = response or reason
            self.changed.notify_all()
            return call

    def call(self, tool_call_id: str, *, field: str = "tool_call_id") -> dict:
        """The call with this tool_call_id (or this value of another `field`)."""
        calls = (call for run in self.runs.values() for call in run["calls"])
        return next(call for call in calls if call[field] == tool_call_id)

    # --- the endpoints -------------------------------------------------------------------

    def propose(self, body: dict, key: str | None) -> tuple[int, dict]:
        if key and key in self.replays:
            return self.replays[key]
        run = self.runs.setdefault(
            body["run_id"],
            {
                "run_id": body["run_id"],
                "status": "waiting",
                "checkpoint": {},
                "version": 0,
                "calls": [],
                "batch": [],
            },
        )
        if run["status"] in ("completed", "stopped"):
            return 409, _error("run_finished", "The run is finished.")
        known = {c["tool_call_id"] for c in run["calls"]}
        if any(a["tool_call_id"] in known for a in body["actions"]):
            return 409, _error("duplicate_tool_call_id", "A tool_call_id is already in the run.")
        batch = [self._call(action) for action in body["actions"]]
        run["calls"] += batch
        run["batch"] = [c["tool_call_id"] for c in batch]
        run["fields"] = {k: v for k, v in body.items() if k not in ("actions", "checkpoint")}
        if "checkpoint" in body:
            run["checkpoint"], run["version"] = body["checkpoint"], run["version"] + 1
        answer = (201 if any(c["review_id"] for c in batch) else 200), self.body(run)
        if key:
            self.replays[key] = answer
        return answer

    def _call(self, action: dict) -> dict:
        outcome = self.outcomes.get(action["name"], "human_review")
        review_id = None
        if outcome == "human_review":
            self._reviews += 1
            review_id = f"rev-{self._reviews}"
        call = {
            "tool_call_id": action["tool_call_id"],
            "action": action["name"],
            "args": action.get("args", {}),
            "allowed_decisions": action.get("allowed_decisions"),
            "answerable": action.get("answerable", False),
            "review_id": review_id,
            "outcome": outcome,
            "status": {"human_review": "pending", "auto_execute": "auto_executed"}.get(
                outcome, "denied"
            ),
            "decision": None,
            "final_arguments": action.get("args", {}) if outcome == "auto_execute" else None,
            "reason": {"deny": "Refunds to this order are closed."}.get(outcome, ""),
            "response": None,
            "executed_by": None,
            "execution": None,
            "resume": {},
        }
        if outcome == "auto_execute":
            call["executed_by"] = "platform" if action["name"] in self.executors else "agent"
            self._run_executor(call)
        return call

    def _run_executor(self, call: dict) -> None:
        if call["executed_by"] == "platform":
            result = self.executors[call["action"]](call["final_arguments"])
            call["execution"] = {"state": "succeeded", "result": result, "error": ""}

    def body(self, run: dict) -> dict:
        batch = [c for c in run["calls"] if c["tool_call_id"] in run["batch"]]
        open_ = any(c["status"] == "pending" for c in batch)
        status = run["status"]
        if status in ("waiting", "resumable"):
            status = run["status"] = "waiting" if open_ else "resumable"
        calls = [
            {k: v for k, v in c.items() if k not in ("allowed_decisions", "answerable")}
            for c in run["calls"]
        ]
        return json.loads(
            json.dumps(
                {
                    "run_id": run["run_id"],
                    "status": status,
                    "checkpoint": run["checkpoint"],
                    "checkpoint_version": run["version"],
                    "resumable": not open_,
                    "calls": calls,
                    "reviews": [],
                    "pending_reviews": [
                        c["review_id"] for c in run["calls"] if c["status"] == "pending"
                    ],
                }
            )
        )

    def get_run(self, run_id: str, wait: float) -> tuple[int, dict]:
        deadline = time.monotonic() + wait
        with self.changed:
            if run_id not in self.runs:
                return 404, _error("not_found", "Not found.")
            while True:
                body = self.body(self.runs[run_id])
                left = deadline - time.monotonic()
                if body["resumable"] or body["status"] != "waiting" or left <= 0:
                    return 200, body
                self.changed.wait(left)

    def save_checkpoint(self, run_id: str, body: dict) -> tuple[int, dict]:
        run = self.runs[run_id]
        if body.get("version") != run["version"]:
            return 409, {
                **_error("checkpoint_conflict", "Stale."),
                "checkpoint_version": run["version"],
            }
        run["checkpoint"], run["version"] = body["checkpoint"], run["version"] + 1
        return 200, {"checkpoint_version": run["version"]}

    def finish(self, run_id: str, body: dict) -> tuple[int, dict]:
        run = self.runs[run_id]
        open_calls = [c for c in run["calls"] if c["status"] == "pending"]
        if run["status"] not in ("completed", "stopped"):
            if open_calls and not body.get("cancel_open"):
                return 409, _error("run_has_open_reviews", "The run has open reviews.")
            for call in open_calls:
                call["status"] = "cancelled"
            run["status"] = body.get("outcome", "completed")
        self.changed.notify_all()
        return 200, self.body(run)

    def claim(self, review_id: str) -> tuple[int, dict]:
        call = self.call(review_id, field="review_id")
        if call["decision"] not in ("approve", "edit"):
            return 409, _error("review_pending", "Not approved.")
        if call["execution"] is not None:
            return 409, _error("already_claimed", "Claimed before.")
        call["execution"] = {"state": "claimed", "result": None, "error": ""}
        return 200, {**call["execution"], "idempotency_key": f"exec-{review_id}"}

    def report(self, review_id: str, body: dict) -> tuple[int, dict]:
        call = self.call(review_id, field="review_id")
        state = body["outcome"]
        call["execution"] = {
            "state": state,
            "result": body.get("result"),
            "error": body.get("error", ""),
        }
        return 200, call["execution"]


ROUTES = [
    ("POST", r"/api/v1/actions/", "propose"),
    ("GET", r"/api/v1/runs/(?P<run>[^/]+)/", "get_run"),
    ("PUT", r"/api/v1/runs/(?P<run>[^/]+)/checkpoint/", "save_checkpoint"),
    ("POST", r"/api/v1/runs/(?P<run>[^/]+)/finish/", "finish"),
    ("POST", r"/api/v1/reviews/(?P<review>[^/]+)/execution/claim/", "claim"),
    ("POST", r"/api/v1/reviews/(?P<review>[^/]+)/execution/report/", "report"),
]


def _dispatch(platform: FakePlatform, method: str, path: str, query: dict, body, headers):
    for verb, pattern, name in ROUTES:
        match = re.fullmatch(pattern, path)
        if verb != method or match is None:
            continue
        if name == "propose":
            return platform.propose(body, headers.get("Idempotency-Key"))
        if name == "get_run":
            try:
                wait = float(query.get("wait", ["0"])[0])
            except ValueError:
                return 400, _error("invalid", "wait must be a number of seconds")
            if not 0 <= wait <= 30:
                return 400, _error("invalid", "wait is 0..30")
            return platform.get_run(match["run"], wait)
        if name in ("claim", "report"):
            args = (match["review"],) if name == "claim" else (match["review"], body)
            return getattr(platform, name)(*args)
        return getattr(platform, name)(match["run"], body)
    return 404, _error("not_found", "Not found.")


def _handler(platform: FakePlatform):
    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            platform.requests.append((self.command, url.path, body, dict(self.headers)))
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                code, answer = 401, _error("not_authenticated", "Bad key.")
            elif self.command == "GET":
                code, answer = _dispatch(
                    platform, "GET", url.path, parse_qs(url.query), body, self.headers
                )
            else:
                with platform.changed:
                    code, answer = _dispatch(
                        platform, self.command, url.path, parse_qs(url.query), body, self.headers
                    )
                    platform.changed.notify_all()
            raw = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args):
            pass

    return Handler


def _error(code: str, detail: str) -> dict:
    return {"error": code, "detail": detail, "fields": {}}
