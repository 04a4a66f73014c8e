"""B4: the expiry sweep over many overdue reviews against one raw UPDATE ... RETURNING plus
an INSERT of the history rows."""

import time

from .common import emit

EXPIRE = """
WITH expired AS (
    UPDATE reviews_reviewrequest SET state = 'expired', decided_at = now(),
        expiry_action = 'cancel', updated_at = now()
    WHERE state IN ('pending', 'escalated', 'awaiting_evidence') AND expires_at <= now()
    RETURNING *
)
"""
HISTORY = {
    "history_actor": "'system:expiry'",
    "history_date": "now()",
    "history_change_reason": "'expired: cancelled, the agent is told'",
    "history_type": "'~'",
    "history_user_id": "NULL",
}


def run(*, n: int, rounds: int = 3) -> None:
    from django.db import connection

    from reviews.models import ReviewRequest
    from reviews.services.sweeps import expire_due

    from . import data

    def fresh():
        data.clear_reviews()
        _, run_obj, queues = data.base_objects(queues=4)
        data.fill_reviews(n=n, run_id=run_obj.pk, queue_ids=[q.pk for q in queues],
                          open_share=1.0, overdue=True)  # fmt: skip

    # Alternate raw and ours and keep each one's best: a sweep of 100k rows takes seconds,
    # long enough for the other core's noise to swing a single pair by a third.
    raw_times, ours_times = [], []
    for _ in range(rounds):
        fresh()
        # Committed, as the sweep's batches are: the WAL flush is part of the work.
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(EXPIRE + data.history_copy_sql(HISTORY, source="expired"))
            raw_rows = cursor.rowcount
            raw_times.append(time.perf_counter() - started)
        fresh()
        started = time.perf_counter()
        summary = expire_due()
        ours_times.append(time.perf_counter() - started)
    raw_s, ours_s = min(raw_times), min(ours_times)
    history = ReviewRequest.history.filter(state="expired").count()
    emit(
        {
            "bench": "B4",
            "ratio": round(raw_s / ours_s, 3),
            "ours": round(summary.processed / ours_s),
            "raw": round(raw_rows / raw_s),
            "unit": "reviews/s",
            "n": n,
            "history_rows": history,
            "rounds": rounds,
        }
    )
