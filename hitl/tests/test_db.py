"""Row locks: refused outside a transaction on every database, and the only way to lock."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from hitl.db import LockOutsideTransaction, for_update
from reviews.models import Queue


@pytest.mark.django_db(transaction=True)
def test_a_lock_outside_a_transaction_is_refused_even_on_sqlite():
    # In autocommit PostgreSQL would refuse it; SQLite silently locks nothing.
    with pytest.raises(LockOutsideTransaction, match=r"transaction\.atomic"):
        list(for_update(Queue.objects.all()))
    with transaction.atomic():
        assert list(for_update(Queue.objects.all(), skip_locked=True)) == []


def test_the_product_locks_rows_only_through_for_update():
    root = Path(settings.BASE_DIR)
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for app in ("hitl", "policies", "reviews", "evaluation")
        for path in (root / app).rglob("*.py")
        if "tests" not in path.parts and path.name != "db.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.select_for_update\(", line)
    ]
    assert offenders == []
