"""B3: the reviewer's inbox changelist at scale against the same page's SQL run raw."""

import time

from .common import best_of, emit


def run(*, n: int, repeats: int) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from . import data

    data.clear_reviews()
    _, run_obj, queues = data.base_objects(queues=2)
    started = time.perf_counter()
    data.fill_reviews(n=n, run_id=run_obj.pk, queue_ids=[q.pk for q in queues])
    fill_seconds = time.perf_counter() - started
    user, _ = get_user_model().objects.get_or_create(username="bench-reviewer",
                                                     defaults={"is_staff": True})  # fmt: skip
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_approvalreview", "view_reviewrequest"])
    )
    queues[0].members.add(user)
    client = Client()
    client.force_login(user)
    base = f"/admin/reviews/approvalreview/?queue={queues[0].pk}&state=pending"
    # Page 500 when there are that many (the full size); the last page otherwise.
    matching = n // 2 * 0.3
    last = min(499, int(matching // 50) - 1)
    first_raw = None
    for label, url in (("first page", base), (f"page {last + 1}", f"{base}&p={last}")):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url, secure=True)
            assert response.status_code == 200, (response.status_code, response.get("Location"))
        page_sql = next(
            q["sql"]
            for q in ctx.captured_queries
            if "LIMIT" in q["sql"]
            and "ORDER BY" in q["sql"]
            and "reviews_reviewrequest" in q["sql"]
        )
        queries = len(ctx.captured_queries)
        full_counts = [
            q["sql"] for q in ctx.captured_queries
            if "COUNT(" in q["sql"].upper() and "WHERE" not in q["sql"].upper()
            and "reviews_reviewrequest" in q["sql"]
        ]  # fmt: skip

        def ours(url=url):
            client.get(url, secure=True)

        def raw(sql=page_sql):
            with connection.cursor() as cursor:
                cursor.execute(sql)
                cursor.fetchall()

        ours_s, raw_s = best_of(ours, repeats), best_of(raw, repeats)
        first_raw = first_raw or raw_s
        emit(
            {
                "bench": "B3",
                "page": label,
                "ratio": round(raw_s / ours_s, 3),
                "ours": round(ours_s * 1000, 2),
                "raw": round(raw_s * 1000, 2),
                "unit": "ms/page",
                "n": n,
                "queries": queries,
                "full_counts": len(full_counts),
                "fill_seconds": round(fill_seconds, 1),
            }
        )
    # What limits the first page's ratio: the smallest page the admin serves (password
    # change: no list, no filters) against the same raw query.
    floor_s = best_of(lambda: client.get("/admin/password_change/", secure=True), repeats)
    emit(
        {
            "bench": "B3 floor",
            "page": "password change, the smallest admin page",
            "ratio": round(first_raw / floor_s, 3),
            "ours": round(floor_s * 1000, 2),
            "raw": round(first_raw * 1000, 2),
            "unit": "ms/page",
            "n": n,
        }
    )
