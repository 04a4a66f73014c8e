"""The state machine's plumbing: django-fsm's concurrency guard, bulk-safe querysets."""

import operator
from contextvars import ContextVar
from functools import reduce

from django.db import models
from django_fsm import ConcurrentTransition, ConcurrentTransitionMixin

from hitl.internals import IdsIn, fsm_state_fields, instance_from_db_row, remember_fsm_state


class StateMachineMixin(ConcurrentTransitionMixin):
    """django-fsm's concurrency guard, with the state fields found once per model rather
    than by scanning every field of every instance loaded (a fifth of a bulk sweep's time)."""

    @property
    def state_fields(self):
        return fsm_state_fields(type(self))

    @classmethod
    def from_db(cls, db, field_names, values):
        # Model.__init__ walks every field of the model for each row, loaded or deferred: a
        # sixth of a 100k-review expiry sweep.
        new = instance_from_db_row(cls, db, field_names, values)
        if new is None:
            return super().from_db(db, field_names, values)
        remember_fsm_state(new)
        return new


# `pk__ids_in=[...]`: pk__in with the ids as one array on PostgreSQL (hitl.internals).
models.BigAutoField.register_lookup(IdsIn)


_writing_transitioned_rows: ContextVar[bool] = ContextVar("writing_transitioned", default=False)


class ReviewQuerySet(models.QuerySet):
    """Refuses bulk writes of state: only the state machine moves a review."""

    def update(self, **kwargs):
        if "state" in kwargs and not _writing_transitioned_rows.get():
            raise TypeError("ReviewRequest.state changes only through reviews.services.")
        return super().update(**kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        if "state" in fields:
            raise TypeError("ReviewRequest.state changes only through reviews.services.")
        return super().bulk_update(objs, fields, *args, **kwargs)

    def update_transitioned(self, objs, *, sources, **values):
        """One UPDATE for rows the FSM just moved from one of `sources` to the same new
        values (bulk expiry). Raises ConcurrentTransition, writing nothing the caller's
        transaction keeps, if any row left `sources` meanwhile (no row lock on SQLite)."""
        objs = list(objs)
        if not all(getattr(o, "_moved_by_fsm", False) for o in objs):
            raise TypeError("ReviewRequest.state changes only through reviews.services.")
        token = _writing_transitioned_rows.set(True)
        try:
            # States ORed rather than IN (...): the sweep's UPDATE keeps one array parameter.
            left = reduce(operator.or_, (models.Q(state=source) for source in sources))
            rows = self.filter(left, pk__ids_in=[o.pk for o in objs])
            updated = rows.update(**values)
        finally:
            _writing_transitioned_rows.reset(token)
        if updated != len(objs):
            raise ConcurrentTransition("A review changed state while it was being expired.")
        return updated
