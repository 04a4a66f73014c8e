"""A small client for the hitl API that needs nothing but the standard library.

    from hitl_client import HitlClient
    client = HitlClient("http://127.0.0.1:8000", api_key)
    answer = client.propose({...})            # outcome, review packet, policy
    review = client.wait_for_decision(answer["review"]["review_id"])
    execution = client.claim(review_id, affected_resources=[...])
    client.report(review_id, succeeded=True, result={...})

A model turn with several tool calls is one batch: `client.propose_batch(run_id=...,
actions=[...], summary=...)` answers the run; `client.wait_until_resumable(run_id,
timeout=...)` long-polls until every call is decided; `client.finish(run_id)` ends it.
A restarted agent needs only its run id: `client.run(run_id)` returns the checkpoint it
stored and each call with its decision. Framework adapters live in submodules that import
their framework: `hitl_client.langchain`. `LocalDecider(client).propose(...)` decides in
process with the platform's own engine (`hitl_client.engine`) and sends only the calls a
person must review (see `hitl_client.local`).
"""

from .client import HitlClient, HitlError, NotResumable, verify_signature
from .local import DecisionLog, LocalDecider, LocalPolicy

__all__ = [
    "DecisionLog",
    "HitlClient",
    "HitlError",
    "LocalDecider",
    "LocalPolicy",
    "NotResumable",
    "verify_signature",
]
