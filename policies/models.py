"""Policy data: the action catalogue, rule sets and their frozen versions, reviewer grants."""

from __future__ import annotations

import re
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.module_loading import import_string
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from hitl.kernel import HistoricalRecords
from policies import engine
from policies.consequences import template_errors
from policies.exceptions import ImmutableVersionError

slug_validator = RegexValidator(
    engine.SLUG_RE, "Use lowercase letters, digits, - and _, starting with a letter or digit."
)
action_name_validator = RegexValidator(
    engine.NAME_RE, "Use lowercase letters, digits and _, starting with a letter."
)
path_validator = RegexValidator(engine.PATH_RE, "Use a dotted argument path like refund.amount.")
executor_validator = RegexValidator(
    re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"),
    "Use a dotted Python path like billing.executors.issue_refund.",
)

TOOL_TYPE_CHOICES = [(t, t) for t in engine.TOOL_TYPES]
REVIEW_KIND_CHOICES = [(k, k) for k in engine.REVIEW_KINDS]
RISK_CHOICES = [(r, r) for r in engine.RISKS]
OUTCOME_CHOICES = [(o, o.replace("_", " ")) for o in engine.OUTCOMES]
UNKNOWN_ACTION_CHOICES = [
    (engine.UNKNOWN_ESCALATE, "escalate: a review only the queue owner may approve"),
    (engine.UNKNOWN_DENY, "deny: refuse the proposal, saying why"),
]


def default_args_schema() -> dict:
    return {"type": "object", "properties": {}, "required": []}


def _acting_user(**options) -> models.ForeignKey:
    """Who published, activated, granted or revoked: kept as history when the user goes."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        **options,
    )


class ActionType(models.Model):
    """One tool an agent may propose to call, and what the policy needs to know about it."""

    name = models.CharField(max_length=100, unique=True, validators=[action_name_validator])
    tool_type = models.CharField(max_length=20, choices=TOOL_TYPE_CHOICES)
    target_system = models.CharField(max_length=100, blank=True)
    reversible = models.BooleanField(default=False)
    default_review_kind = models.CharField(
        max_length=20, choices=REVIEW_KIND_CHOICES, default="approval"
    )
    args_schema = models.JSONField(
        default=default_args_schema,
        help_text="JSON Schema (draft 2020-12) for the arguments; its required properties "
        "and properties, in order, are the arguments a reviewer sees first.",
    )
    consequence_template = models.CharField(
        max_length=300,
        blank=True,
        help_text="One sentence with {argument} placeholders, e.g. "
        "'Refund {amount} {currency} to order {order_id}'.",
    )
    amount_path = models.CharField(
        max_length=200,
        blank=True,
        validators=[path_validator],
        help_text="Dotted path into the arguments where the money amount is, e.g. amount.",
    )
    executor = models.CharField(
        max_length=200,
        blank=True,
        validators=[executor_validator],
        help_text="Dotted Python path of the function that runs the approved action.",
    )
    fact_provider = models.CharField(
        max_length=200,
        blank=True,
        validators=[executor_validator],
        help_text="Dotted Python path of the function that returns fresh facts and resource "
        "versions just before an approved action runs.",
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def unknown_names(cls, names) -> list[str]:
        """The names among these that no action type has, sorted."""
        known = set(cls.objects.filter(name__in=names).values_list("name", flat=True))
        return sorted(set(names) - known)

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        schema = self.args_schema
        if not isinstance(schema, dict):
            errors["args_schema"] = ["The arguments schema must be a JSON object."]
        else:
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                errors["args_schema"] = [f"Not a valid JSON Schema: {exc.message}"]
            else:
                if schema.get("type", "object") != "object":
                    errors["args_schema"] = ['Arguments are an object: use "type": "object".']
        properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
        if self.amount_path and isinstance(properties, dict) and properties:
            head = self.amount_path.split(".")[0]
            if head not in properties:
                errors["amount_path"] = [
                    f"{head!r} is not a property of the arguments schema "
                    f"({', '.join(properties) or 'none declared'})."
                ]
        for field in ("executor", "fact_provider"):
            path = getattr(self, field)
            if path and executor_validator.regex.fullmatch(path):
                try:
                    import_string(path)
                except ImportError as exc:
                    errors[field] = [f"Cannot import {path}: {exc}"]
        if self.consequence_template:
            problems = template_errors(self.consequence_template)
            if problems:
                errors["consequence_template"] = problems
        if errors:
            raise ValidationError(errors)


class RuleSet(models.Model):
    """A draft policy for one tenant, edited freely; publishing freezes it into a version."""

    name = models.SlugField(max_length=80, unique=True)
    tenant = models.CharField(
        max_length=64,
        blank=True,
        validators=[slug_validator],
        help_text="The tenant this rule set is published for; empty = the default for all "
        "tenants without their own policy.",
    )
    description = models.TextField(blank=True)
    unknown_action = models.CharField(
        "unknown actions",
        max_length=20,
        choices=UNKNOWN_ACTION_CHOICES,
        default=engine.UNKNOWN_ESCALATE,
        help_text="What happens to a proposed action missing from the action catalogue. "
        "It never auto-executes and a plain reviewer never approves it; frozen into each "
        "published version.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        permissions = [("publish_ruleset", "Can publish a rule set and activate the version")]

    def __str__(self) -> str:
        return self.name


class Rule(models.Model):
    """One ordered rule of a draft rule set: conditions (JSON data) and an outcome."""

    rule_set = models.ForeignKey(RuleSet, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=80, validators=[slug_validator])
    priority = models.PositiveIntegerField(help_text="Lower runs first; the first match wins.")
    description = models.CharField(max_length=300, blank=True)
    enabled = models.BooleanField(default=True)
    conditions = models.JSONField(
        default=list,
        blank=True,
        help_text='A list like [{"field": "confidence", "op": "<", "value": 0.7}]; all must '
        f"hold. Fields: {', '.join(engine.FIELDS)}. Operators: {', '.join(engine.OPERATORS)}.",
    )
    outcome = models.CharField(max_length=30, choices=OUTCOME_CHOICES)
    review_kind = models.CharField(
        max_length=20,
        choices=REVIEW_KIND_CHOICES,
        blank=True,
        help_text="Empty: the action type's default kind.",
    )
    queue = models.CharField(
        max_length=64,
        blank=True,
        validators=[slug_validator],
        help_text="Queue slug; empty: the default queue.",
    )
    risk = models.CharField(max_length=20, choices=RISK_CHOICES, default="medium")
    required_approvals = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)]
    )
    sla_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the queue's SLA for reviews this rule makes."
    )
    audit_sample_rate = models.FloatField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["rule_set", "priority", "name"]
        constraints = [
            models.UniqueConstraint(fields=["rule_set", "name"], name="policies_rule_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.priority}: {self.name}"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            self.conditions = engine.validate_conditions(self.conditions)
        except engine.RuleError as exc:
            errors["conditions"] = exc.messages
        else:
            unknown = ActionType.unknown_names(engine.condition_action_names(self.conditions))
            if unknown:
                errors["conditions"] = [
                    f"unknown action type(s) {', '.join(unknown)}: add them to the catalogue first"
                ]
        if self.outcome and self.outcome != engine.HUMAN_REVIEW:
            for fname, is_set in (
                ("review_kind", bool(self.review_kind)),
                ("queue", bool(self.queue)),
                ("required_approvals", self.required_approvals not in (None, 1)),
                ("sla_minutes", self.sla_minutes is not None),
            ):
                if is_set:
                    errors.setdefault(fname, []).append(
                        f"Only applies to human review, not {self.outcome.replace('_', ' ')}."
                    )
        if self.audit_sample_rate and self.outcome != engine.AUTO_EXECUTE:
            errors.setdefault("audit_sample_rate", []).append("Only applies to auto execute.")
        if self.required_approvals and self.required_approvals > engine.MAX_REQUIRED_APPROVALS:
            errors.setdefault("required_approvals", []).append(
                f"At most {engine.MAX_REQUIRED_APPROVALS}."
            )
        if errors:
            raise ValidationError(errors)


class PolicyVersionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableVersionError("A published policy version cannot be changed.")

    def delete(self):
        raise ImmutableVersionError("A published policy version cannot be deleted.")


class PolicyVersion(models.Model):
    """An immutable, published policy: frozen rules and catalogue, named by content hash."""

    rule_set = models.ForeignKey(RuleSet, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, unique=True)
    snapshot = models.JSONField()
    note = models.CharField(max_length=300, blank=True)
    published_by = _acting_user()
    published_at = models.DateTimeField(default=timezone.now)

    objects = PolicyVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-published_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule_set", "number"], name="policies_version_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_set.name} v{self.number} ({self.short_hash})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableVersionError(
                f"Policy version {self.short_hash} is published and cannot be changed; "
                "edit the rule set and publish a new version."
            )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableVersionError(
            f"Policy version {self.short_hash} is published and cannot be deleted: past "
            "decisions name it."
        )

    @property
    def short_hash(self) -> str:
        return self.content_hash[:12]

    @property
    def unknown_action(self) -> str:
        """What this version does with an action missing from its catalogue."""
        return self.snapshot.get("unknown_action") or engine.UNKNOWN_ESCALATE


class Tenant(models.Model):
    """A customer of the platform: its queues, agents, policy, reviews and datasets are its
    own. The default tenant ("") always exists and has no row."""

    slug = models.CharField(max_length=64, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug

    DEFAULT_NAME = "Default tenant"

    @classmethod
    def exists(cls, slug: str) -> bool:
        """Whether reviews, queues and agents may belong to this tenant."""
        return slug == "" or cls.objects.filter(slug=slug).exists()

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """Every tenant as (slug, name), the default one first: what a picker offers."""
        return [("", cls.DEFAULT_NAME), *cls.objects.values_list("slug", "name")]

    @classmethod
    def names(cls, slugs) -> dict[str, str]:
        """The display name of each of these tenants, the default one included."""
        slugs = list(slugs)
        found = dict(cls.objects.filter(slug__in=slugs).values_list("slug", "name"))
        return {slug: found.get(slug) or slug or cls.DEFAULT_NAME for slug in slugs}


class PolicyActivation(models.Model):
    """Which policy version decides for a tenant ("" = every tenant without its own)."""

    tenant = models.CharField(max_length=64, unique=True, blank=True, validators=[slug_validator])
    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="+")
    activated_by = _acting_user()
    activated_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant"]

    def __str__(self) -> str:
        return f"{self.tenant or '(default)'} -> {self.version_id}"


def _grant_holder(to: str) -> models.ForeignKey:
    # Exactly one of the two is set (see the constraint); the grant goes with its holder.
    return models.ForeignKey(
        to, on_delete=models.CASCADE, null=True, blank=True, related_name="reviewer_grants"
    )


class ReviewerGrant(models.Model):
    """Authority for a user or a group to decide some actions, up to an amount, for tenants."""

    user = _grant_holder(settings.AUTH_USER_MODEL)
    group = _grant_holder("auth.Group")
    action_names = models.JSONField(
        default=list, blank=True, help_text="Action type names; empty = every action type."
    )
    tenants = models.JSONField(default=list, blank=True, help_text="Tenant slugs; empty = all.")
    max_amount = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Empty = no limit.",
    )
    note = models.CharField(max_length=300, blank=True)
    granted_by = _acting_user()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = _acting_user(editable=False)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True)
                    | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="policies_grant_one_principal",
            ),
        ]

    def __str__(self) -> str:
        return f"grant #{self.pk} for {self.principal_label}"

    @property
    def principal_label(self) -> str:
        if self.user_id:
            return f"user {self.user.get_username()}"
        if self.group_id:
            return f"group {self.group.name}"
        return "nobody"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def covers(self, *, action_name: str, tenant: str, amount: Decimal | None) -> bool:
        """Does this grant let its holder decide this action, for this tenant and amount?"""
        if self.revoked_at is not None:
            return False
        if self.action_names and action_name not in self.action_names:
            return False
        if self.tenants and tenant not in self.tenants:
            return False
        return self.max_amount is None or amount is None or amount <= self.max_amount

    def scope_text(self) -> str:
        actions = ", ".join(self.action_names) or "any action"
        tenants = ", ".join(t or "(default)" for t in self.tenants) or "any tenant"
        limit = f"up to {self.max_amount}" if self.max_amount is not None else "no amount limit"
        return f"{actions}; {tenants}; {limit}"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if bool(self.user_id) == bool(self.group_id):
            errors["__all__"] = ["A grant is for exactly one user or one group."]
        names = self.action_names
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            errors["action_names"] = ["A list of action type names."]
        else:
            unknown = ActionType.unknown_names(names)
            if unknown:
                errors["action_names"] = [f"Unknown action type(s): {', '.join(unknown)}."]
        tenants = self.tenants
        if not isinstance(tenants, list) or not all(
            isinstance(t, str) and (t == "" or engine.SLUG_RE.match(t)) for t in tenants
        ):
            errors["tenants"] = ["A list of tenant slugs (lowercase letters, digits, - and _)."]
        if errors:
            raise ValidationError(errors)


# The evaluation log has its own module; importing it here registers it with the app.
from policies.models_evaluation import (  # noqa: E402
    SOURCE_LOCAL,
    SOURCE_SERVER,
    PolicyEvaluation,
    PolicyEvaluationQuerySet,
)

__all__ = [
    "SOURCE_LOCAL",
    "SOURCE_SERVER",
    "ActionType",
    "PolicyActivation",
    "PolicyEvaluation",
    "PolicyEvaluationQuerySet",
    "PolicyVersion",
    "ReviewerGrant",
    "Rule",
    "RuleSet",
    "Tenant",
]
