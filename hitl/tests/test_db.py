"""Row locks: refused outside a transaction on every database, and the only way to lock."""

from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from hitl.db import LockOutsideTransaction, for_update
from hitl.tests.source import lines_matching
from reviews.models import Queue


@pytest.mark.django_db(transaction=True)
def test_a_lock_outside_a_transaction_is_refused_even_on_sqlite():
    # In autocommit PostgreSQL would refuse it; SQLite silently locks nothing.
    with pytest.raises(LockOutsideTransaction, match=r"transaction\.atomic"):
        list(for_update(Queue.objects.all()))
    with transaction.atomic():
        assert list(for_update(Queue.objects.all(), skip_locked=True)) == []


def test_the_product_locks_rows_only_through_for_update():
    db = Path(settings.BASE_DIR) / "hitl" / "db.py"
    assert lines_matching(r"\.select_for_update\(", allowed=db) == []
