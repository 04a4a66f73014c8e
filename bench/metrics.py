"""B6: the leads' dashboard for 28 days (reviews.selectors.metrics.compute, read from the
daily rollups plus what they do not hold yet) against one raw SQL statement with grouping
sets over the same reviews; its memory at n and at n/10; and the rollups' build."""

import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from .common import best_of, emit

DAYS = 28
# Reviews with their decisions, spread over 28 days; the last day's are partly still open.
FILL_REVIEWS = """
INSERT INTO reviews_reviewrequest (
    review_id, run_id, kind, tenant, state, action_name, target_system, arguments, summary,
    consequence, content, affected_resources, confidence, uncertainty, question,
    options_considered, policy, risk, queue_id, choices, required_approvals, due_at,
    versions, audit, proposed_by, expiry_action, created_at, updated_at, decided_at)
SELECT 'M' || lpad((%(offset)s + i)::text, 25, '0'), %(run)s, 'approval', '',
    s.state, (ARRAY['issue_refund', 'send_email', 'delete_record'])[1 + i %% 3], 'billing',
    '{}', 'Bench review', '', '', '[]', 0.9, '', '', '[]',
    jsonb_build_object('rule', (ARRAY['writes', 'big_refund', 'deletes', 'emails'])[1 + i %% 4]),
    'medium', (%(queues)s::bigint[])[1 + i %% %(queue_count)s], '["approve", "reject"]', 1,
    t.created + interval '4 hours',
    jsonb_build_object('agent', 'bench/1.' || (i %% 3)), false, 'agent:bench-agent', '',
    t.created, t.created, CASE WHEN s.state = 'pending' THEN NULL ELSE t.decided END
FROM generate_series(1, %(n)s) AS i,
LATERAL (SELECT %(end)s::timestamptz - (hashint4(i + %(offset)s) & 2147483647) %% (%(days)s * 86400)
    * interval '1 second' AS created) AS c,
LATERAL (SELECT c.created AS created, c.created
    + (1 + (hashint4(-i - %(offset)s) & 2147483647) %% 36000) * interval '1 second' AS decided) t,
LATERAL (SELECT CASE
    WHEN t.decided > %(end)s THEN 'pending'
    ELSE (ARRAY['approved', 'approved', 'approved', 'rejected', 'edited', 'expired'])[1 + i %% 6]
    END AS state) s
"""
# One decision per decided review (an escalation first for every tenth), by ten reviewers.
FILL_DECISIONS = """
INSERT INTO reviews_decision (review_id, reviewer_id, choice, reason, diff, state_before,
    state_after, opened_at, decided_at)
SELECT r.id, (%(reviewers)s::int[])[1 + r.id %% 10], d.choice, d.reason, '', d.before, d.after,
    d.at - (1 + r.id %% 90) * interval '1 second', d.at
FROM reviews_reviewrequest r,
LATERAL (VALUES
    ('escalate', 'Big customer', 'pending', 'escalated', r.decided_at - interval '1 minute',
     r.id %% 10 = 0),
    (CASE r.state WHEN 'approved' THEN 'approve' WHEN 'rejected' THEN 'reject' ELSE 'edit' END,
     CASE WHEN r.state = 'approved' THEN '' ELSE 'Reason ' || (r.id %% 25) END,
     CASE WHEN r.id %% 10 = 0 THEN 'escalated' ELSE 'pending' END, r.state, r.decided_at, true)
) AS d(choice, reason, before, after, at, wanted)
WHERE r.id > %(after)s AND r.state IN ('approved', 'rejected', 'edited') AND d.wanted
"""
# The same figures as compute's, by day and by each slice, in one statement.
RAW = """
WITH escalated AS (SELECT DISTINCT review_id FROM reviews_decision WHERE choice = 'escalate')
SELECT date(r.created_at AT TIME ZONE 'UTC'), q.slug, r.action_name, r.versions ->> 'agent',
    r.policy ->> 'rule', count(*),
    count(*) FILTER (WHERE r.state IN ('approved', 'edited', 'rejected', 'resolved', 'expired')),
    count(*) FILTER (WHERE r.state IN ('pending', 'escalated', 'awaiting_evidence')),
    count(*) FILTER (WHERE r.state = 'approved'), count(*) FILTER (WHERE r.state = 'edited'),
    count(*) FILTER (WHERE r.state = 'rejected'), count(*) FILTER (WHERE r.state = 'expired'),
    count(e.review_id) FILTER (
        WHERE r.state IN ('approved', 'edited', 'rejected', 'resolved', 'expired')),
    percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
        ORDER BY extract(epoch FROM r.decided_at - r.created_at) / 60)
        FILTER (WHERE r.state IN ('approved', 'edited', 'rejected', 'resolved')),
    count(*) FILTER (WHERE r.due_at IS NOT NULL AND r.state <> 'cancelled'),
    count(*) FILTER (WHERE r.due_at IS NOT NULL AND r.state <> 'cancelled' AND (
        r.state = 'expired' OR CASE WHEN r.state IN ('approved', 'edited', 'rejected', 'resolved')
        THEN r.decided_at ELSE %(now)s END > r.due_at))
FROM reviews_reviewrequest r JOIN reviews_queue q ON q.id = r.queue_id
LEFT JOIN escalated e ON e.review_id = r.id
WHERE r.created_at >= %(since)s AND r.created_at < %(until)s
GROUP BY GROUPING SETS ((), (1), (2), (3), (4), (5))
"""


def run(*, n: int, repeats: int = 3) -> None:
    from django.db import connection

    from reviews.selectors.metrics import MetricsFilter, compute
    from reviews.services.rollups import rollups_rebuild

    from . import data

    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = MetricsFilter(since=end - timedelta(days=DAYS), until=end, tenant="*")
    root, reviewers, run_id, queue_ids = _people_and_queues()
    data.clear_reviews()
    _truncate_rollups()

    def fill(count: int, offset: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) FROM reviews_reviewrequest")
            (after,) = cursor.fetchone()
            cursor.execute(FILL_REVIEWS, {
                "n": count, "offset": offset, "run": run_id, "queues": queue_ids,
                "queue_count": len(queue_ids), "end": end, "days": DAYS,
            })  # fmt: skip
            cursor.execute(FILL_DECISIONS, {"reviewers": reviewers, "after": after})
            cursor.execute("ANALYZE reviews_reviewrequest")
            cursor.execute("ANALYZE reviews_decision")

    def dashboard():
        return compute(user=root, filters=window, now=end)

    def build():
        first = (end - timedelta(days=DAYS)).date()
        last = end.date()
        return rollups_rebuild(actor=None, since=first, until=last, now=end + timedelta(hours=1))

    fill(n // 10, 0)
    build()
    small_peak = _peak(dashboard)
    fill(n - n // 10, n // 10)
    _truncate_rollups()
    started = time.perf_counter()
    built = build()
    build_s = time.perf_counter() - started
    peak = _peak(dashboard)
    ours_s = best_of(dashboard, repeats)
    raw_s = best_of(lambda: _raw(window, end), repeats)
    assert dashboard().overall.reviews == _raw_total(window)
    emit({
        "bench": "B6", "ratio": round(raw_s / ours_s, 3),
        "memory_ratio": round(peak / small_peak, 3), "ours_s": round(ours_s, 4),
        "raw_s": round(raw_s, 4), "peak_bytes": peak, "peak_bytes_n_over_10": small_peak,
        "reviews": n, "days": DAYS,
    })  # fmt: skip
    emit({
        "bench": "B6 build", "ratio": round(raw_s / build_s, 3), "seconds": round(build_s, 2),
        "rows_per_s": round(built.reviews / build_s), "reviews": built.reviews,
        "rollup_rows": built.rows, "days": built.days,
        "unit": "ratio: one raw grouping-sets statement over one full build",
    })  # fmt: skip


def _people_and_queues():
    from django.contrib.auth import get_user_model

    from . import data

    users = get_user_model().objects
    root, _ = users.get_or_create(username="bench-root", defaults={"is_superuser": True})
    reviewers = [users.get_or_create(username=f"bench-reviewer-{i}")[0].pk for i in range(10)]
    _, run_obj, queues = data.base_objects(queues=20)
    return root, reviewers, run_obj.pk, [q.pk for q in queues]


def _truncate_rollups() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE reviews_reviewrollup, reviews_reviewerrollup, reviews_reasonrollup, "
            "reviews_rollupday"
        )


def _raw(window, now) -> list:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(RAW, {"since": window.since, "until": window.until, "now": now})
        return cursor.fetchall()


def _raw_total(window) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM reviews_reviewrequest WHERE created_at >= %s AND created_at < %s",
            [window.since, window.until],
        )
        return cursor.fetchone()[0]


def _peak(fn) -> int:
    # Warm first: a process's first call also allocates its imports and caches, which
    # would inflate the peak at n/10 (measured first) and flatter the memory ratio.
    fn()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
