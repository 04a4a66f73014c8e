"""Row locks that refuse to run outside a transaction, on every database.

PostgreSQL raises TransactionManagementError for SELECT ... FOR UPDATE in autocommit, but
only there: SQLite ignores the clause and tests run inside a transaction, so a worker entry
point that forgot its `transaction.atomic()` passed every test and failed every time in
production. Every lock in the product goes through `for_update`, which checks the
transaction itself, so the mistake fails on SQLite too in any test that runs in autocommit
as the worker does (`django_db(transaction=True)`).
"""

from django.db import transaction
from django.db.models import QuerySet


class LockOutsideTransaction(RuntimeError):
    """A row lock was asked for outside `transaction.atomic()`: it would lock nothing."""


def for_update(queryset: QuerySet, **options) -> QuerySet:
    """`queryset.select_for_update(**options)`, refused outside an atomic block."""
    if not transaction.get_connection(queryset.db).in_atomic_block:
        raise LockOutsideTransaction(
            f"Locking {queryset.model._meta.label} rows needs transaction.atomic(): "
            "in autocommit the lock ends with the statement."
        )
    return queryset.select_for_update(**options)
