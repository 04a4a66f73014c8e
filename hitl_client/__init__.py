"""A small client for the hitl API that needs nothing but the standard library.

    from hitl_client import HitlClient
    client = HitlClient("http://127.0.0.1:8000", api_key)
    answer = client.propose({...})            # outcome, review packet, policy
    review = client.wait_for_decision(answer["review"]["review_id"])
    execution = client.claim(review_id, affected_resources=[...])
    client.report(review_id, succeeded=True, result={...})

A restarted agent needs only its run id: `client.run(run_id)` returns the checkpoint it
stored and what to do next for each review.
"""

from .client import HitlClient, HitlError, verify_signature

__all__ = ["HitlClient", "HitlError", "verify_signature"]
