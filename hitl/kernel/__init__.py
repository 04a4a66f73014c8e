"""What every app shares: one Actor, one way to stamp history."""

from .actors import Actor, as_actor
from .history import HistoricalRecords, HistoryActorMixin, create_with_history, stamp

__all__ = [
    "Actor",
    "HistoricalRecords",
    "HistoryActorMixin",
    "as_actor",
    "create_with_history",
    "stamp",
]
