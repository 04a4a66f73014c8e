"""Request and response shapes of the agent and reviewer API."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from policies.engine import AUDIENCES, DEFAULT_AUDIENCE, OUTCOMES

from ..choices import FRAMEWORK_DECISIONS
from ..models import Choice, Decision, Evidence, ReviewRequest
from ..selectors import (
    choice_verdicts,
    execution_of,
    execution_summary,
    resource_history,
    resume_instruction,
)
from ..services.proposals import MAX_ACTIONS
from .packets import packet_data

MAX_ITEMS = 50
# The longest a GET of a run may wait for its decisions (?wait=).
MAX_WAIT_SECONDS = 30


class ActionIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    target_system = serializers.CharField(max_length=200, allow_blank=True, default="")
    args = serializers.DictField(default=dict)
    tool_call_id = serializers.CharField(
        max_length=200,
        allow_blank=True,
        default="",
        help_text="The framework's id of the call; unique in the run.",
    )
    allowed_decisions = serializers.ListField(
        child=serializers.ChoiceField(choices=FRAMEWORK_DECISIONS),
        min_length=1,
        required=False,
        help_text="The decisions the agent can consume; default: any.",
    )
    answerable = serializers.BooleanField(
        default=False, help_text="The reviewer may answer in the tool's place (respond)."
    )
    description = serializers.CharField(
        max_length=5000, allow_blank=True, default="", help_text="The framework's description."
    )


class EvidenceIn(serializers.Serializer):
    id = serializers.CharField(max_length=200)
    title = serializers.CharField(max_length=500)
    url = serializers.URLField(max_length=2000, allow_blank=True, required=False, default="")
    excerpt = serializers.CharField(
        max_length=20000, allow_blank=True, required=False, default="", trim_whitespace=False
    )
    fresh_until = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ResourceIn(serializers.Serializer):
    type = serializers.CharField(max_length=100)
    id = serializers.CharField(max_length=200)
    version = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)


class TraceIn(serializers.Serializer):
    """The agent's own trace of this run, linked from the review."""

    langsmith_url = serializers.URLField(
        max_length=2000, required=False, allow_blank=True, help_text="A LangSmith run URL (https)."
    )
    otel_trace_id = serializers.RegexField(
        r"^[0-9a-f]{32}$",
        required=False,
        allow_blank=True,
        help_text="An OpenTelemetry trace id: 32 lowercase hex digits.",
    )

    def validate_langsmith_url(self, value: str) -> str:
        if value and not value.startswith("https://"):
            raise serializers.ValidationError("Must be an https URL.")
        return value

    def validate_otel_trace_id(self, value: str) -> str:
        if value and not int(value, 16):
            raise serializers.ValidationError("Must not be all zero.")
        return value


class VersionsIn(serializers.Serializer):
    agent = serializers.CharField(max_length=100, allow_blank=True, default="")
    model = serializers.CharField(max_length=100, allow_blank=True, default="")
    prompt = serializers.CharField(max_length=100, allow_blank=True, default="")


class ProposalIn(serializers.Serializer):
    """One tool call (`action`) or a batch of them (`actions`), sharing the other fields."""

    run_id = serializers.CharField(max_length=200)
    thread_id = serializers.CharField(max_length=200, allow_blank=True, default="")
    action = ActionIn(required=False)
    actions = ActionIn(many=True, required=False, min_length=1, max_length=MAX_ACTIONS)
    summary = serializers.CharField(max_length=2000)
    consequence = serializers.CharField(max_length=1000, allow_blank=True, default="")
    content = serializers.CharField(
        max_length=100_000, allow_blank=True, default="", trim_whitespace=False
    )
    confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, allow_null=True, help_text="Missing: unknown."
    )
    estimated_cost_usd = serializers.DecimalField(
        max_digits=14,
        decimal_places=4,
        min_value=0,
        coerce_to_string=False,
        required=False,
        allow_null=True,
        help_text="Missing: unknown.",
    )
    audience = serializers.ChoiceField(choices=AUDIENCES, default=DEFAULT_AUDIENCE)
    tenant = serializers.CharField(max_length=100, allow_blank=True, default="")
    evidence = EvidenceIn(many=True, default=list, max_length=MAX_ITEMS)
    affected_resources = ResourceIn(many=True, default=list, max_length=MAX_ITEMS)
    facts = serializers.DictField(default=dict)
    checkpoint = serializers.DictField(required=False)
    versions = VersionsIn(default=dict)
    uncertainty = serializers.CharField(max_length=5000, allow_blank=True, default="")
    question = serializers.CharField(
        max_length=5000,
        allow_blank=True,
        default="",
        help_text="What the agent asks the person (an escalation shows it first).",
    )
    on_behalf_of = serializers.CharField(
        max_length=150,
        allow_blank=True,
        default="",
        help_text="Username of the person the agent acts for; they may not decide it.",
    )
    options_considered = serializers.ListField(
        child=serializers.CharField(max_length=500), default=list, max_length=MAX_ITEMS
    )
    trace = TraceIn(required=False, help_text="A link to the agent's own trace of this run.")

    def validate(self, attrs):
        if ("action" in attrs) == ("actions" in attrs):
            raise serializers.ValidationError(
                {"actions": ["Send one `action` or a list of `actions`: exactly one of them."]}
            )
        ids = [a["tool_call_id"] for a in attrs.get("actions", []) if a["tool_call_id"]]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError(
                {"actions": ["Each tool_call_id may appear once in a batch."]}
            )
        return attrs


class CheckpointIn(serializers.Serializer):
    checkpoint = serializers.DictField()
    version = serializers.IntegerField(
        min_value=0, help_text="The checkpoint_version the agent read."
    )


class CheckpointOut(serializers.Serializer):
    checkpoint_version = serializers.IntegerField()


class FinishIn(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["completed", "stopped"], default="completed")
    cancel_open = serializers.BooleanField(
        default=False, help_text="Cancel the run's open reviews with it."
    )


class RunWaitIn(serializers.Serializer):
    wait = serializers.FloatField(min_value=0, max_value=MAX_WAIT_SECONDS, default=0)


class EvidenceSupplyIn(serializers.Serializer):
    evidence = EvidenceIn(many=True, min_length=1, max_length=MAX_ITEMS)
    note = serializers.CharField(max_length=2000, allow_blank=True, default="")


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)


class DecisionIn(serializers.Serializer):
    choice = serializers.ChoiceField(choices=Choice.choices)
    reason = serializers.CharField(max_length=5000, allow_blank=True, default="")
    arguments = serializers.DictField(required=False)
    content = serializers.CharField(max_length=100_000, required=False, trim_whitespace=False)
    opened_at = serializers.DateTimeField(required=False)


class ClaimIn(serializers.Serializer):
    facts = serializers.DictField(required=False)
    affected_resources = ResourceIn(many=True, required=False, max_length=MAX_ITEMS)


class ReportIn(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["succeeded", "failed"])
    result = serializers.JSONField(required=False, allow_null=True, default=None)
    error = serializers.CharField(max_length=5000, allow_blank=True, default="")


class EvidenceOut(serializers.ModelSerializer):
    id = serializers.CharField(source="evidence_id")
    stale = serializers.BooleanField(source="is_stale")

    class Meta:
        model = Evidence
        fields = ["id", "title", "url", "excerpt", "fresh_until", "stale"]


class DecisionOut(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.get_username")

    class Meta:
        model = Decision
        fields = [
            "choice",
            "reviewer",
            "reason",
            "edited_arguments",
            "edited_content",
            "diff",
            "state_before",
            "state_after",
            "opened_at",
            "decided_at",
        ]


class ProposedActionOut(serializers.Serializer):
    name = serializers.CharField()
    target_system = serializers.CharField()
    args = serializers.DictField()


class CheckOut(serializers.Serializer):
    name = serializers.CharField()
    passed = serializers.BooleanField()
    detail = serializers.CharField()


class TrustedFactsOut(serializers.Serializer):
    source = serializers.CharField(help_text="Where the facts come from.")
    read_at = serializers.DateTimeField()
    facts = serializers.DictField()
    details = serializers.JSONField(help_text="What the provider shows the reviewer.")
    error = serializers.CharField(
        help_text="Why the provider could not answer (the policy then decided on the "
        "claims, and nothing runs without a person); empty when it answered."
    )


class AgentTraceOut(serializers.Serializer):
    langsmith_url = serializers.URLField(required=False)
    otel_trace_id = serializers.CharField(required=False)


class ResourceHistoryOut(serializers.Serializer):
    review_id = serializers.CharField()
    action_name = serializers.CharField()
    state = serializers.CharField()
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    later = serializers.BooleanField(help_text="Proposed after this review.")
    resources = serializers.ListField(child=serializers.CharField())
    what = serializers.CharField(help_text="What it did or would do, with its final arguments.")
    arguments = serializers.DictField()
    decision = serializers.DictField(allow_null=True)
    execution = serializers.DictField(allow_null=True)
    went_ahead = serializers.BooleanField(help_text="Approved, edited, or executed.")
    warning = serializers.CharField()


class PolicyOut(serializers.Serializer):
    outcome = serializers.CharField()
    version = serializers.CharField(allow_null=True)
    rule = serializers.CharField(allow_null=True)
    risk = serializers.CharField()
    review_kind = serializers.CharField(allow_null=True)
    queue = serializers.CharField(allow_null=True)
    required_approvals = serializers.IntegerField()
    checks = CheckOut(many=True)
    explanation = serializers.CharField()
    claimed_facts = serializers.DictField(help_text="The facts the agent claimed.")
    trusted_facts = TrustedFactsOut(
        allow_null=True,
        help_text="What the action's fact provider said when the proposal arrived; the "
        "policy decided on these over the claims. Null: the action has no fact provider.",
    )
    agent_trace = AgentTraceOut(allow_null=True)


class YourChoiceOut(serializers.Serializer):
    choice = serializers.CharField()
    allowed = serializers.BooleanField()
    reason = serializers.CharField(help_text="Why it is not offered to you (empty if it is).")


class ReviewPacketOut(serializers.ModelSerializer):
    """Everything an agent or a custom front end needs to know about one review."""

    run_id = serializers.CharField(source="run.run_id")
    queue = serializers.CharField(source="queue.slug")
    assignee = serializers.SerializerMethodField()
    proposed_action = serializers.SerializerMethodField()
    evidence = EvidenceOut(many=True)
    policy = serializers.SerializerMethodField()
    decisions = DecisionOut(many=True)
    resume = serializers.SerializerMethodField()
    execution = serializers.SerializerMethodField()
    your_choices = serializers.SerializerMethodField()
    resource_history = serializers.SerializerMethodField(
        help_text="The other reviews of the same resources, newest first (at most 10); "
        "null except on GET /reviews/<id>/."
    )

    class Meta:
        model = ReviewRequest
        fields = [
            "review_id",
            "run_id",
            "kind",
            "state",
            "tenant",
            "queue",
            "assignee",
            "summary",
            "proposed_action",
            "consequence",
            "content",
            "evidence",
            "affected_resources",
            "confidence",
            "uncertainty",
            "question",
            "options_considered",
            "risk",
            "policy",
            "choices",
            "required_approvals",
            "due_at",
            "expires_at",
            "versions",
            "decisions",
            "final_arguments",
            "final_content",
            "created_at",
            "decided_at",
            "resume",
            "execution",
            "your_choices",
            "resource_history",
        ]

    def to_representation(self, review) -> dict:
        # DRF's generic walk deep-copies and binds every field for each packet, most of
        # the cost of answering a proposal; packet_data builds the same dict directly.
        return packet_data(self, review)

    def get_assignee(self, review) -> str | None:
        return review.assignee.get_username() if review.assignee_id else None

    def get_proposed_action(self, review) -> ProposedActionOut:
        return {
            "name": review.action_name,
            "target_system": review.target_system,
            "args": review.arguments,
        }

    def get_policy(self, review) -> PolicyOut:
        policy = review.policy or {}
        return {
            "outcome": policy.get("outcome", "human_review"),
            "version": policy.get("version") or policy.get("policy_version"),
            "rule": policy.get("rule"),
            "risk": policy.get("risk", review.risk),
            "review_kind": policy.get("review_kind"),
            "queue": policy.get("queue"),
            "required_approvals": policy.get("required_approvals", review.required_approvals),
            "checks": policy.get("checks", []),
            "explanation": policy.get("explanation", ""),
            "claimed_facts": (policy.get("input") or {}).get("facts") or {},
            "trusted_facts": policy.get("trusted_facts"),
            "agent_trace": policy.get("agent_trace"),
        }

    @extend_schema_field(ResourceHistoryOut(many=True, allow_null=True))
    def get_resource_history(self, review) -> list[dict] | None:
        # Only the one packet of GET /reviews/<id>/ (its view passes "person"): a run's
        # list of packets stays at a fixed number of queries.
        if "person" not in self.context:
            return None
        return resource_history(review=review)

    @extend_schema_field(YourChoiceOut(many=True, allow_null=True))
    def get_your_choices(self, review) -> list[dict] | None:
        # For a person reading one review: the same verdicts as the admin screen, so a
        # custom front end offers only what the decision endpoint will accept.
        person = self.context.get("person")
        if person is None:
            return None
        return [
            {"choice": v.choice, "allowed": v.allowed, "reason": v.reason}
            for v in choice_verdicts(review=review, user=person)
        ]

    def get_resume(self, review) -> dict:
        return resume_instruction(review)

    def get_execution(self, review) -> dict | None:
        execution = execution_of(review)
        return execution_summary(execution) if execution is not None else None


class CheckFailedOut(serializers.Serializer):
    check = serializers.CharField(
        help_text="expired, authority_revoked, arguments_invalid, policy_denies, "
        "evidence_stale, resource_changed or resource_unconfirmed"
    )
    detail = serializers.CharField()


class NextStepOut(serializers.Serializer):
    action = serializers.ChoiceField(choices=["propose_again", "replan"])
    detail = serializers.CharField()
    propose = serializers.CharField(required=False)


class ExecutionOut(serializers.Serializer):
    state = serializers.CharField()
    mode = serializers.CharField()
    idempotency_key = serializers.CharField()
    claimed_by = serializers.CharField()
    claimed_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    arguments = serializers.DictField()
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField()
    blocked_reasons = serializers.ListField(child=serializers.CharField())
    blocked_checks = CheckFailedOut(many=True)
    next_step = NextStepOut(allow_null=True)


class RunCallOut(serializers.Serializer):
    tool_call_id = serializers.CharField()
    action = serializers.CharField()
    args = serializers.DictField()
    review_id = serializers.CharField(allow_null=True)
    outcome = serializers.ChoiceField(choices=OUTCOMES, help_text="What the policy decided.")
    status = serializers.ChoiceField(
        choices=["pending", "decided", "expired", "cancelled", "auto_executed", "denied"]
    )
    decision = serializers.CharField(allow_null=True, help_text="The deciding choice.")
    final_arguments = serializers.DictField(allow_null=True, help_text="What to run with.")
    reason = serializers.CharField(help_text="The reviewer's reason, guidance or response.")
    response = serializers.CharField(
        allow_null=True, help_text="For respond: the text that is the tool's result."
    )
    executed_by = serializers.ChoiceField(
        choices=["agent", "platform"],
        allow_null=True,
        help_text="platform: a registered executor runs it; the agent's own tool must not.",
    )
    execution = ExecutionOut(allow_null=True)
    resume = serializers.DictField()


class RunOut(serializers.Serializer):
    run_id = serializers.CharField()
    thread_id = serializers.CharField()
    agent = serializers.CharField()
    status = serializers.CharField()
    checkpoint = serializers.DictField()
    checkpoint_version = serializers.IntegerField()
    pending_tool_call = serializers.DictField(allow_null=True)
    resumable = serializers.BooleanField(
        help_text="Every call is decided: nothing of the run waits for a person."
    )
    calls = RunCallOut(many=True)
    pending_reviews = serializers.ListField(child=serializers.CharField())
    reviews = ReviewPacketOut(many=True)


class ProposalOut(serializers.Serializer):
    outcome = serializers.CharField()
    review = ReviewPacketOut(allow_null=True)
    execution = serializers.DictField(allow_null=True)
    policy = serializers.DictField()
    run = RunOut()


class ErrorOut(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
