"""The engine reads a well-formed proposal without its readers' bookkeeping (the local
decider parses every tool call); whatever that shortcut accepts, it must read exactly as
the full readers do, and everything else must still get the readers' errors."""

from decimal import Decimal
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_client.engine import ProposalError, parse_proposal
from hitl_client.engine.proposal import _read_plain

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5))
anything = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
names = st.one_of(
    st.sampled_from(["search_docs", " issue_refund ", "", "   ", "x" * 101]), anything
)
actions = st.one_of(
    st.fixed_dictionaries(
        {"name": names},
        optional={
            "target_system": st.one_of(st.sampled_from(["kb", " billing "]), anything),
            "args": st.one_of(st.dictionaries(st.text(max_size=3), scalars, max_size=3), anything),
        },
    ),
    anything,
)
proposals = st.fixed_dictionaries(
    {"action": actions},
    optional={
        "confidence": st.one_of(st.floats(-1, 2), st.integers(-1, 2), anything),
        "estimated_cost_usd": st.one_of(st.floats(-1, 10), st.integers(-5, 5), anything),
        "audience": st.one_of(st.sampled_from(["internal", "external", "public"]), anything),
        "tenant": st.one_of(st.sampled_from(["", "acme", "Acme", "a" * 65, "globex-2"]), anything),
        "facts": st.one_of(st.dictionaries(st.text(max_size=3), anything, max_size=3), anything),
    },
)


well_formed = st.fixed_dictionaries(
    {
        "action": st.fixed_dictionaries(
            {"name": st.sampled_from(["search_docs", " issue_refund "])},
            optional={
                "target_system": st.sampled_from(["kb", " billing ", ""]),
                "args": st.dictionaries(st.text(max_size=3), scalars, max_size=3),
            },
        )
    },
    optional={
        "confidence": st.one_of(st.none(), st.floats(0, 1), st.integers(0, 1)),
        "estimated_cost_usd": st.one_of(
            st.none(),
            st.floats(0, 100),
            st.sampled_from([0.01, -0.0, 0.0]),
            st.integers(0, 100),
            st.decimals(0, 100, places=2),
            st.sampled_from([Decimal("0.01"), Decimal("0.0100"), Decimal("-0")]),
        ),
        "audience": st.sampled_from(["internal", "external"]),
        "tenant": st.sampled_from(["", "acme", "globex-2"]),
        "facts": st.dictionaries(st.text(max_size=3), scalars, max_size=3),
    },
)


def full_readers(data):
    # Not a dict: parse_proposal takes the readers' path for any other Mapping.
    return parse_proposal(MappingProxyType(data))


@settings(max_examples=1500, deadline=None)
@given(proposals)
def test_the_shortcut_reads_what_the_readers_read_and_leaves_them_the_rest(data):
    try:
        expected = full_readers(data)
    except ProposalError:
        assert _read_plain(data) is None
        with pytest.raises(ProposalError):
            parse_proposal(data)
        return
    got = parse_proposal(data)
    assert got == expected
    # Equal Decimals may still print differently ("1" and "1.0"): the log shows them.
    assert str(got.estimated_cost_usd) == str(expected.estimated_cost_usd)


@settings(max_examples=500, deadline=None)
@given(well_formed)
def test_a_well_formed_proposal_takes_the_shortcut_and_reads_the_same(data):
    got = _read_plain(data)
    assert got is not None
    expected = full_readers(data)
    assert got == expected
    assert str(got.estimated_cost_usd) == str(expected.estimated_cost_usd)


def test_a_typical_tool_call_takes_the_shortcut():
    data = {
        "action": {"name": "search_docs", "target_system": "kb", "args": {"query": "x"}},
        "confidence": 0.9,
        "estimated_cost_usd": 0.01,
        "facts": {"refund_window_valid": True},
    }
    assert _read_plain(data) is not None
    assert parse_proposal(data) == full_readers(data)
