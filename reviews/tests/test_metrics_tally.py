"""The metrics' histograms: the same percentiles from either shape, within a bucket of the
exact value, and a rollup's stored buckets merge whatever their key."""

import random

import pytest

from reviews.selectors.metrics_tally import Histogram, SparseHistogram, percentile


def exact(values, q):
    """percentile_cont over the values themselves."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    if low + 1 >= len(ordered):
        return ordered[low]
    return ordered[low] + (ordered[low + 1] - ordered[low]) * (position - low)


def both(values):
    dense, sparse = Histogram(), SparseHistogram()
    for value in values:
        dense.add(value)
        sparse.add(value)
    return dense, sparse


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_few_distinct_values_give_exact_percentiles_beyond_the_range_too(q):
    # Zero, a negative, values far below and above the dense range, and ordinary ones.
    values = [0.0, -3.0, 1e-9, 2e-9, 5e12, 7e12, 10.0, 10.0, 30.0, 50.0, 120.0]
    for hist in both(values):
        assert percentile(hist, q) == pytest.approx(exact(values, q), rel=1e-12)


def test_many_values_are_within_a_bucket_and_both_shapes_agree():
    rng = random.Random(20)
    values = [rng.lognormvariate(3, 2) for _ in range(5000)]
    dense, sparse = both(values)
    for q in (0.5, 0.9, 0.99):
        assert percentile(dense, q) == percentile(sparse, q)
        assert percentile(dense, q) == pytest.approx(exact(values, q), rel=0.021)


def test_stored_buckets_merge_into_the_dense_range_and_back():
    stored = SparseHistogram()
    for value in (1e-7, 3e-7, 4.0, 4.5, 1e9):
        stored.add(value)
    as_json = {str(key): cell for key, cell in stored.items()}  # JSON keys are strings
    dense = Histogram()
    dense.merge(as_json)
    dense.merge(as_json)
    again = SparseHistogram()
    again.merge(dense)
    assert sum(cell[0] for cell in again.values()) == 10
    assert percentile(again, 0.0) == 1e-7 and percentile(again, 1.0) == 1e9
    assert percentile(dense, 0.5) == percentile(again, 0.5) == 4.0


def test_an_empty_histogram_has_no_percentile():
    assert percentile(Histogram(), 0.5) is None
    assert percentile(SparseHistogram(), 0.5) is None
