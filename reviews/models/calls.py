"""The tool calls a run proposed: one row per call, whatever the policy decided about it."""

from django.db import models
from django.utils import timezone

from hitl.kernel import HistoricalRecords
from policies.engine import OUTCOMES

from .queues import AgentRun
from .reviews import ReviewRequest


class RunCall(models.Model):
    """One tool call a run proposed: the agent's id for it, what the policy decided, and
    the review that decides it when a person must."""

    run = models.ForeignKey(AgentRun, on_delete=models.PROTECT, related_name="calls")
    # The framework's id of the call; "" when the agent gave none.
    tool_call_id = models.CharField(max_length=200, blank=True, default="")
    action_name = models.CharField(max_length=200)
    target_system = models.CharField(max_length=200, blank=True, default="")
    args = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True, default="")
    # The decisions the agent can consume (of FRAMEWORK_DECISIONS); empty: any.
    allowed_decisions = models.JSONField(default=list, blank=True)
    # The reviewer may answer in the tool's place (the `respond` choice).
    answerable = models.BooleanField(default=False)
    outcome = models.CharField(max_length=30, choices=[(o, o.replace("_", " ")) for o in OUTCOMES])
    # The policy's explanation: what a call it denies tells the agent.
    explanation = models.TextField(blank=True, default="")
    # The review deciding it (the live one: a rerouted review's successor); None without.
    review = models.OneToOneField(
        ReviewRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="call"
    )
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ["run", "created_at", "id"]
        constraints = [
            # The agent matches answers back by its own id: one call per id in a run.
            models.UniqueConstraint(
                fields=["run", "tool_call_id"],
                condition=~models.Q(tool_call_id=""),
                name="run_call_unique_tool_call_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tool_call_id or self.action_name} in {self.run_id}"
