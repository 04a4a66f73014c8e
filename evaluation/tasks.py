"""django-q2 entry points of the evaluation app."""

from .services import capture_decision


def capture(decision_id: int) -> str:
    """Capture one decision as a candidate case (safe to run twice)."""
    case = capture_decision(decision_id=decision_id)
    return "skipped" if case is None else f"case {case.pk}"
