"""django-q2 entry points of the evaluation app."""

from .services import backfill as backfill_captures
from .services import capture_decision


def capture(decision_id: int) -> str:
    """Capture one decision as a candidate case (safe to run twice)."""
    case = capture_decision(decision_id=decision_id)
    return "skipped" if case is None else f"case {case.pk}"


def backfill() -> str:
    """The scheduled safety net: capture the decisions whose own task failed or was lost."""
    return f"captured {backfill_captures()}"
