"""django-q2 entry point of the takeover sweep: a thin caller, safe to run twice."""


def takeover_sweep() -> str:
    """The scheduled sweep: remind people holding taken-over cases, hand back overdue ones."""
    from .services.takeovers import takeover_sweep as sweep

    return sweep().line("taken-over cases")
