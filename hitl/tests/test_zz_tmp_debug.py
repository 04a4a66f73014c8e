from django.db import connection
from django.test.utils import CaptureQueriesContext
from hitl.tests.test_query_counts import World, person_client
import pytest

@pytest.mark.django_db
def test_dbg():
    world = World()
    c = person_client(world.lead)
    url = f"/api/v1/reviews/{world.busy['acme'].review_id}/"
    c.get(url)
    with CaptureQueriesContext(connection) as a:
        c.get(url)
    world.grow()
    with CaptureQueriesContext(connection) as b:
        c.get(url)
    for q in a.captured_queries: print("A", q["sql"][:300])
    for q in b.captured_queries: print("B", q["sql"][:300])
