"""The state machine's plumbing: django-fsm's concurrency guard, bulk-safe querysets."""

from contextvars import ContextVar

from django.db import models
from django.db.models.base import ModelState
from django.db.models.lookups import In
from django.db.models.signals import post_init, pre_init
from django_fsm import ConcurrentTransitionMixin, FSMFieldMixin


class StateMachineMixin(ConcurrentTransitionMixin):
    """django-fsm's concurrency guard, with the state fields found once per model rather
    than by scanning every field of every instance loaded (a fifth of a bulk sweep's time)."""

    @property
    def state_fields(self):
        meta = self._meta
        found = meta.__dict__.get("_hitl_state_fields")
        if found is None:
            found = tuple(f for f in meta.fields if isinstance(f, FSMFieldMixin))
            meta._hitl_state_fields = found
        return found

    @classmethod
    def from_db(cls, db, field_names, values):
        # Model.__init__ walks every field of the model for each row, loaded or deferred: a
        # sixth of a 100k-review expiry sweep. These are the attributes it would set.
        if pre_init.has_listeners(cls) or post_init.has_listeners(cls):
            return super().from_db(db, field_names, values)
        new = cls.__new__(cls)
        new._state = ModelState()
        new._state.adding = False
        new._state.db = db
        new.__dict__.update(zip(field_names, values, strict=True))
        new._update_initial_state()
        return new


@models.BigAutoField.register_lookup
class IdsIn(In):
    """`pk__ids_in=[...]` is `pk__in`, but on PostgreSQL the ids travel as one array
    (`= ANY(%s)`): a batch of 2000 ids as 2000 parameters is parsed on both sides, a tenth
    of a bulk expiry sweep."""

    lookup_name = "ids_in"

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, list(self.rhs))


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

    def update_transitioned(self, objs, **values):
        """One UPDATE for rows the FSM just moved to the same new values (bulk expiry)."""
        objs = list(objs)
        if not all(getattr(o, "_moved_by_fsm", False) for o in objs):
            raise TypeError("ReviewRequest.state changes only through reviews.services.")
        token = _writing_transitioned_rows.set(True)
        try:
            return self.filter(pk__ids_in=[o.pk for o in objs]).update(**values)
        finally:
            _writing_transitioned_rows.reset(token)
