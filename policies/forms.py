"""Admin forms for policy data: JSON edited readably, lists edited as text."""

from __future__ import annotations

import json

from django import forms

from hitl.internals import is_invalid_json_input
from policies.models import ActionType, ReviewerGrant, Rule
from policies.selectors import DEFAULT_SIMULATION_LIMIT, MAX_SIMULATION_PROPOSALS
from policies.services import ACTION_TYPE_FIELDS, RULE_FIELDS


class PrettyJSONField(forms.JSONField):
    """A JSON field shown indented, so a schema can be read and edited in a textarea."""

    def prepare_value(self, value):
        if is_invalid_json_input(value):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class ConditionsField(forms.JSONField):
    """Rule conditions shown one per line, the way they are read."""

    def prepare_value(self, value):
        if is_invalid_json_input(value):
            return value
        if isinstance(value, list) and value:
            lines = ",\n".join(f"  {json.dumps(c, ensure_ascii=False)}" for c in value)
            return f"[\n{lines}\n]"
        return json.dumps(value if value is not None else [], ensure_ascii=False)


class ActionTypeForm(forms.ModelForm):
    args_schema = PrettyJSONField(widget=forms.Textarea(attrs={"rows": 14, "cols": 80}))

    class Meta:
        model = ActionType
        fields = list(ACTION_TYPE_FIELDS)


class RuleForm(forms.ModelForm):
    conditions = ConditionsField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        help_text=Rule._meta.get_field("conditions").help_text,
    )

    audit_sample_rate = forms.FloatField(
        required=False,
        initial=0,
        help_text="Auto-execute only: the share of its actions (0 to 1) a person audits "
        "afterwards; the action runs at once either way.",
    )

    class Meta:
        model = Rule
        fields = list(RULE_FIELDS)

    def clean_conditions(self):
        # An emptied textarea means "no conditions", not JSON null.
        value = self.cleaned_data.get("conditions")
        return [] if value in (None, "") else value

    def clean_audit_sample_rate(self):
        # Left empty: no audit, as on a rule that never had the setting.
        value = self.cleaned_data.get("audit_sample_rate")
        return 0 if value is None else value


class TenantListField(forms.CharField):
    """Tenant slugs typed as "acme, globex"; "(default)" stands for the default tenant."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(t or "(default)" for t in value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [
            "" if part.strip() == "(default)" else part.strip()
            for part in text.replace("\n", ",").split(",")
            if part.strip()
        ]


class ReviewerGrantForm(forms.ModelForm):
    action_names = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every action type.",
    )
    tenants = TenantListField(
        required=False,
        help_text="Comma-separated tenant slugs; empty: every tenant. Write "
        '"(default)" for the default tenant.',
    )

    class Meta:
        model = ReviewerGrant
        fields = ["user", "group", "action_names", "tenants", "max_amount", "note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = list(ActionType.objects.values_list("name", flat=True))
        current = self.instance.action_names if self.instance and self.instance.pk else []
        # A grant naming an action type since removed still shows it, so saving keeps it.
        self.fields["action_names"].choices = [(n, n) for n in sorted({*names, *current})]


class SimulationForm(forms.Form):
    SOURCES = [
        ("recent", "The last N evaluated proposals"),
        ("jsonl", "Proposals pasted below, one JSON object per line"),
    ]
    source = forms.ChoiceField(choices=SOURCES, initial="recent", widget=forms.RadioSelect)
    limit = forms.IntegerField(
        min_value=1,
        max_value=MAX_SIMULATION_PROPOSALS,
        initial=DEFAULT_SIMULATION_LIMIT,
        label="N",
    )
    jsonl = forms.CharField(
        required=False,
        label="JSONL",
        widget=forms.Textarea(attrs={"rows": 10, "cols": 100}),
        help_text='{"action": {"name": "issue_refund", "target_system": "billing", "args": '
        '{...}}, "confidence": 0.9, "estimated_cost_usd": 0.02, "tenant": ""}',
    )

    def clean(self):
        data = super().clean()
        if data.get("source") == "jsonl" and not (data.get("jsonl") or "").strip():
            self.add_error("jsonl", "Paste at least one proposal, one JSON object per line.")
        return data
