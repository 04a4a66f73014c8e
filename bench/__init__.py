"""Benchmarks at scale against hand-written baselines (``python -m bench.<name>``)."""
