"""The B2 benchmark compares the engine with a hand-written baseline; both must agree, or
the ratio it reports means nothing. A seed policy change must update the baseline too."""

import pytest

from bench.policy import approval_policy, build_policy, proposals
from policies import engine


@pytest.mark.parametrize("all_generic", [False, True])
def test_engine_with_200_rules_agrees_with_the_hard_coded_baseline(all_generic):
    compiled = build_policy(all_generic=all_generic)
    assert len(compiled.rules) == 200
    for proposal in proposals(500):
        ours = engine.evaluate(compiled, proposal)
        got = (ours.outcome, ours.review_kind, ours.queue, ours.required_approvals)
        assert got == approval_policy(proposal), proposal
