"""A paginator that does not COUNT a large table on every inbox page."""

import json

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

from hitl.internals import queryset_sql

# Below this many rows (as the planner estimates them) an exact COUNT is cheap and shown.
EXACT_BELOW = 10_000


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL, trust the planner's row estimate when it is large; elsewhere count."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return super().count
        sql, params = queryset_sql(queryset)
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        if estimate < EXACT_BELOW:
            return super().count
        return estimate
