"""B8: the retention purge of closed reviews' history against one raw DELETE of the same
rows. The history is archived (JSONL) by the hourly export before the purge runs, as in
production; the export of those rows is timed too, and `with_export` counts both."""

import tempfile
import time

from .common import emit

# Two history rows per review (created, decided), both older than the 365-day window.
AGED = {
    "history_actor": "'agent:bench-agent'",
    "history_date": "now() - interval '400 days' + step",
    "history_change_reason": "'bench'",
    "history_type": "kind_of_row",
    "history_user_id": "NULL",
}
ROWS = (
    "(VALUES (interval '0 minutes', '+'), (interval '5 minutes', '~')) AS rows(step, kind_of_row)"
)

RAW = """
DELETE FROM reviews_historicalreviewrequest h USING reviews_reviewrequest r
WHERE h.id = r.id AND r.state IN ('approved', 'edited', 'rejected', 'expired', 'cancelled')
  AND h.history_date < now() - interval '365 days'
"""


def run(*, n: int, rounds: int = 2) -> None:
    from django.db import connection
    from django.test import override_settings

    from reviews.models import ArchiveCursor, ReviewRequest
    from reviews.services.retention import archive_export, retention_apply

    from . import data

    def fresh():
        data.clear_reviews()
        _, run_obj, queues = data.base_objects(queues=4)
        data.fill_reviews(n=n, run_id=run_obj.pk, queue_ids=[q.pk for q in queues],
                          open_share=0.0)  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(data.history_copy_sql(AGED, extra_from=ROWS))
            cursor.execute("ANALYZE reviews_historicalreviewrequest")
        ArchiveCursor.objects.all().delete()

    raw_times, ours_times, export_times, rows = [], [], [], 0
    for _ in range(rounds):
        fresh()
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(RAW)
            raw_rows = cursor.rowcount
            raw_times.append(time.perf_counter() - started)
        fresh()
        with tempfile.TemporaryDirectory() as archive, override_settings(HITL_RETENTION={}):
            started = time.perf_counter()
            exported = archive_export(actor=None, only=["review_history"], archive_dir=archive)
            export_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = retention_apply(actor=None, only=["review_history"], archive_dir=archive)
            ours_times.append(time.perf_counter() - started)
        rows = report.total
        if exported.exported != rows or report.exported:
            raise SystemExit(f"B8: exported {exported.exported} rows, purged {rows}")
    left = ReviewRequest.history.count()
    raw_s, ours_s, export_s = min(raw_times), min(ours_times), min(export_times)
    emit(
        {
            "bench": "B8",
            "ratio": round(raw_s / ours_s, 3),
            "ours": round(rows / ours_s),
            "raw": round(raw_rows / raw_s),
            "export": round(rows / export_s),
            "with_export": round(raw_s / (export_s + ours_s), 3),
            "unit": "history rows/s",
            "reviews": n,
            "rows": rows,
            "left": left,
            "rounds": rounds,
        }
    )
