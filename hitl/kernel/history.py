"""One way to stamp history for every app: who acted (person, agent or system) and why.

Also simple-history's HistoricalRecords with its manager class built once per model
(see `hitl.internals.build_history_manager_once`).
"""

from django.db import models
from django.dispatch import receiver
from simple_history.models import HistoricalRecords as BaseHistoricalRecords
from simple_history.signals import pre_create_historical_record
from simple_history.utils import bulk_create_with_history

from ..internals import build_history_manager_once, set_change_reason, set_history_user
from .actors import Actor


class HistoryActorMixin(models.Model):
    """Extra columns on every historical table: the acting principal as a label."""

    # history_user only holds people; agents and the sweeps act too and must be named.
    history_actor = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        abstract = True


@receiver(pre_create_historical_record)
def _stamp_actor(sender, instance, history_instance, history_user, **kwargs):
    if not isinstance(history_instance, HistoryActorMixin):
        return
    label = getattr(instance, "_history_actor", "")
    if not label and history_user is not None:
        label = f"user:{history_user.get_username()}"
    history_instance.history_actor = label


def stamp(instance, actor: Actor, reason: str) -> None:
    """Name who changes `instance` and why, for the history row its next save writes."""
    # simple-history reads these attributes when it writes the row; outside a request
    # (the worker, commands, the API's agents) nothing else tells it who acted.
    set_history_user(instance, actor.user)
    instance._history_actor = actor.label
    set_change_reason(instance, reason)


def create_with_history(objs: list, *, actor: Actor, reason: str) -> list:
    """Insert new rows of one model and their history rows: two statements, however many."""
    if not objs:
        return []
    for obj in objs:
        # Stamped, so an agent's request never becomes the history user (simple-history's
        # fallback when an object carries none).
        stamp(obj, actor, reason)
    return bulk_create_with_history(
        objs, type(objs[0]), custom_historical_attrs={"history_actor": actor.label}
    )


class HistoricalRecords(BaseHistoricalRecords):
    """HistoricalRecords whose `history` manager class is built once per model, and whose
    rows always carry the acting principal (`history_actor`)."""

    def __init__(self, *args, bases=(), **kwargs):
        if not any(issubclass(b, HistoryActorMixin) for b in bases):
            bases = (*bases, HistoryActorMixin)
        super().__init__(*args, bases=list(bases), **kwargs)

    def finalize(self, sender, **kwargs):
        super().finalize(sender, **kwargs)
        build_history_manager_once(sender, self.manager_name)
