"""The evaluation log: every decision the policy made, on the server or in an agent.

Imported by ``policies.models`` (import the model from there).
"""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from policies.exceptions import ImmutableVersionError
from policies.models import OUTCOME_CHOICES

# Where a decision was made: by the platform answering POST /actions/, or by an agent with
# the shipped engine, logged afterwards through POST /decisions/.
SOURCE_SERVER = "server"
SOURCE_LOCAL = "local"
SOURCE_CHOICES = [(SOURCE_SERVER, "server"), (SOURCE_LOCAL, "local (in the agent)")]


class PolicyEvaluationQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableVersionError("The evaluation log is append-only.")


class PolicyEvaluation(models.Model):
    """Append-only log of evaluated proposals, replayed by the simulation."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_label = models.CharField(max_length=200)
    action_name = models.CharField(max_length=100, db_index=True)
    tenant = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=30, choices=OUTCOME_CHOICES)
    rule = models.CharField(max_length=80, blank=True)
    version = models.ForeignKey(
        "policies.PolicyVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    proposal = models.JSONField(encoder=DjangoJSONEncoder)
    decision = models.JSONField(encoder=DjangoJSONEncoder)
    source = models.CharField(max_length=10, choices=SOURCE_CHOICES, default=SOURCE_SERVER)
    tool_call_id = models.CharField(max_length=200, blank=True, default="")
    # When the agent decided (local decisions); created_at is when the platform logged it.
    decided_at = models.DateTimeField(null=True, blank=True)

    objects = PolicyEvaluationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A retried batch of local decisions logs each call once (agent names are unique,
            # so the label names the agent).
            models.UniqueConstraint(
                fields=["actor_label", "tool_call_id"],
                condition=models.Q(source=SOURCE_LOCAL),
                name="policies_evaluation_unique_local_call",
            ),
        ]

    def __str__(self) -> str:
        return f"evaluation #{self.pk}: {self.action_name} -> {self.outcome}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableVersionError("The evaluation log is append-only.")
        super().save(*args, **kwargs)
