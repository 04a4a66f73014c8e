"""B7: deciding in the agent, and logging what it decided.

Two JSON lines:

- ``{"bench": "B7", "cost_ratio": ours/raw, ...}``: microseconds per decision, one process,
  one core. Ours: ``hitl_client.engine.evaluate`` with the seed's policy as GET
  /api/v1/policy/ serves it to ``LocalPolicy``; raw: ``approval_policy``, the seed's prose
  as plain ifs (bench/policy.py), on the same parsed proposals, checked to agree first.
  ``"with_parse"`` adds what ``LocalDecider.decide`` also does per call: reading the
  proposal from its API shape (``parse_proposal``), for the same raw figure.
- ``{"bench": "B7 logging", "ratio": ours/raw, ...}``: auto-executed reads per second whose
  decision reaches the platform's log, 8 client threads, one gunicorn server (2 workers).
  Ours: ``LocalDecider.propose`` decides each in process and its ``DecisionLog`` posts them
  in batches (POST /api/v1/decisions/); raw: today's path, one POST /api/v1/actions/ per
  read (HITL_DECISION_LOG="sync", its default), each logged in the request.
"""

import http.client
import json
import time
from unittest import mock

from .common import emit
from .policy import _best_us, approval_policy, proposals

PORT = 8140
# The 8 client threads are B1's (ingest.CLIENTS, ingest.in_threads).
CLIENTS = 8
# As the TLS-terminating proxy in front of a production server sends it.
PROXY = {"X-Forwarded-Proto": "https"}


def run(*, n: int) -> None:
    from . import ingest

    key = ingest._agent_key()
    # Our port, with B1's server: the same gunicorn as production runs it.
    with mock.patch.object(ingest, "PORT", PORT), ingest.serving():
        url = f"http://127.0.0.1:{PORT}"
        policy = _served_policy(url, key)
        ours_s, logged = _local_path(url, key, n)
        base_n = max(CLIENTS * 50, n // 20)  # today's endpoint is slow: its rate needs fewer
        raw_s, answered = _actions_path(key, base_n)
    _cost(policy, n)
    ours_rate, raw_rate = logged / ours_s, answered / raw_s
    emit(
        {
            "bench": "B7 logging",
            "ratio": round(ours_rate / raw_rate, 2),
            "ours": round(ours_rate, 1),
            "raw": round(raw_rate, 1),
            "unit": "logged decisions/s",
            "n": logged,
            "raw_n": answered,
            "clients": CLIENTS,
        }
    )


def _served_policy(url: str, key: str):
    from hitl_client import HitlClient, LocalPolicy

    return LocalPolicy(HitlClient(url, key, headers=PROXY), refresh_seconds=0)


def _cost(policy, n: int) -> None:
    from hitl_client import engine

    compiled = policy.compiled
    inputs = proposals(n)
    for proposal in inputs:
        ours = engine.evaluate(compiled, proposal)
        got = (ours.outcome, ours.review_kind, ours.queue, ours.required_approvals)
        if got != approval_policy(proposal):
            raise SystemExit(f"B7: engine {got} != baseline {approval_policy(proposal)}")
    shapes = [_api_shape(p) for p in inputs]
    repeats = 5

    def ours_fn(p, compiled=compiled, evaluate=engine.evaluate):
        return evaluate(compiled, p)

    ours_us, raw_us = _best_us(ours_fn, approval_policy, inputs, repeats)

    def parse_and_decide(d, compiled=compiled, evaluate=engine.evaluate):
        return evaluate(compiled, engine.parse_proposal(d))

    with_parse_us, _ = _best_us(parse_and_decide, lambda d: None, shapes, repeats)
    emit(
        {
            "bench": "B7",
            "cost_ratio": round(ours_us / raw_us, 2),
            "ours": round(ours_us, 3),
            "raw": round(raw_us, 3),
            "with_parse": round(with_parse_us, 3),
            "with_parse_ratio": round(with_parse_us / raw_us, 2),
            "unit": "us/decision",
            "n": n,
            "rules": len(compiled.rules),
            "decisions_per_s": round(1e6 / ours_us),
        }
    )


def _api_shape(proposal) -> dict:
    from hitl_client import engine

    return engine.proposal_input(
        action_name=proposal.action_name,
        target_system=proposal.target_system,
        args=proposal.args,
        confidence=proposal.confidence,
        estimated_cost_usd=proposal.estimated_cost_usd,
        tenant=proposal.tenant,
        facts=proposal.facts,
    )


def _read(index: int, i: int) -> dict:
    return {
        "action": {
            "name": "search_docs",
            "target_system": "knowledge_base",
            "args": {"query": f"refund window {i}"},
            "tool_call_id": f"b7-{time.time_ns()}-{index}-{i}",
        },
        "confidence": 0.9,
        "estimated_cost_usd": 0.01,
    }


def _local_path(url: str, key: str, n: int) -> tuple[float, int]:
    """8 agents' threads deciding n reads in process; done when all are in the log."""
    from hitl_client import HitlClient, LocalDecider
    from policies.models import PolicyEvaluation

    from . import ingest

    before = PolicyEvaluation.objects.filter(source="local").count()
    deciders = [
        LocalDecider(
            HitlClient(url, key, headers=PROXY),
            refresh_seconds=0,
            batch_size=500,
            flush_seconds=0.2,
        )
        for _ in range(CLIENTS)
    ]

    def agent(index: int, count: int) -> None:
        decider = deciders[index]
        for i in range(count):
            if decider.propose(_read(index, i)).get("outcome") != "auto_execute":
                raise SystemExit("B7: a read was not auto-executed")
        decider.close()

    seconds = ingest.in_threads(n, agent)
    logged = PolicyEvaluation.objects.filter(source="local").count() - before
    if logged != n // CLIENTS * CLIENTS:
        raise SystemExit(f"B7: {logged} local decisions logged, expected {n}")
    return seconds, logged


def _actions_path(key: str, n: int) -> tuple[float, int]:
    """Today's path: one POST /actions/ per read, each decided and logged by the server."""
    from . import ingest

    answered = []

    def agent(index: int, count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        ok = 0
        for i in range(count):
            run_id = f"b7-{index}-{i}-{time.time_ns()}"
            body = json.dumps({**_read(index, i), "run_id": run_id, "summary": "Look it up"})
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                       **PROXY}  # fmt: skip
            conn.request("POST", "/api/v1/actions/", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise SystemExit(f"B7: POST /actions/ answered {response.status} {payload[:300]!r}")
            ok += 1
        answered.append(ok)

    seconds = ingest.in_threads(n, agent)
    return seconds, sum(answered)
