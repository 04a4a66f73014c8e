"""Who did it, for every historical row: a user, an agent or the system."""

from django.db import models
from django.dispatch import receiver
from simple_history.signals import pre_create_historical_record


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
