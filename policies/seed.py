"""The seed catalogue and policy, as data, and ``seed_policy()`` that installs them.

The seed policy, first match wins (lower priority number first)::

      2 refund_order_unknown         issue_refund with fact order_exists = false -> deny
      5 refund_window_closed         issue_refund with fact refund_window_valid = false
                                     -> deny (re-checked with fresh facts before a refund runs)
      7 refund_above_refundable      issue_refund with fact amount_within_refundable = false
                                     -> deny (the order's total minus what was refunded)
     10 low_confidence_large_refund  issue_refund, confidence < 0.70, amount > 500
                                     -> escalation review, queue operations, risk high
     12 permission_subject_unknown   change_permission with fact subject_exists = false
                                     -> deny
     15 unsure_permission_change     change_permission, confidence < 0.70
                                     -> escalation review, queue access, risk critical
     20 permission_changes           change_permission
                                     -> approval review, queue access, 2 approvers, risk high
     25 access_replies_need_edit_review  draft_reply with fact topic = access
                                     -> edit review, queue access
     30 writes_need_review           send_email / issue_refund / delete_record
                                     -> review (the action's default kind: approval),
                                        queue operations
     40 drafts_need_edit_review      draft_reply -> edit review, queue operations
     50 low_confidence_clarifies     confidence < 0.70 -> request_clarification
     60 costly_actions_need_review   estimated cost > 5 USD -> review, queue operations
     70 reads_auto_execute           tool type read -> auto_execute

Why this order: the prose lists "writes -> review" before "confidence < 0.70 ->
clarification", and a first-match list is read top-down, so a write always reaches a
person even when the agent is unsure (the reviewer can ask for more evidence; a
clarification loop would keep a low-confidence refund away from anyone who can stop it).
The escalation rule is a narrower case of the refund write, so it must come first to win.
The deny rules on facts come first of all: a fact provider (the payments ledger, the
identity directory) answers them when the proposal arrives, and no person is asked about
an action the trusted facts already rule out. An unknown order has no refund window and
nothing refundable (those facts are null and match no rule), so only the first rule
explains its denial. An agent's claimed fact decides only where no provider answers.
Permission changes and customer-facing drafts are also always reviewed, so they sit with
the writes, above the confidence rule. The last rule is scoped to reads: with the seed
catalogue that is exactly "otherwise auto_execute" (every other seed action is caught
above), and an action type added later (a deploy, a payment) falls to the engine's
default, a review, instead of running unattended before anyone wrote a rule for it.

The module is importable without Django (the benchmark uses the data); ``seed_policy``
imports the models when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policies.models import PolicyVersion

SEED_RULE_SET = "default"
# An action nobody catalogued still reaches a person, but only the queue's owner may let
# it through (deny would lose proposals a team has not catalogued yet).
SEED_UNKNOWN_ACTION = "escalate"
WRITE_ACTIONS = ["send_email", "issue_refund", "delete_record"]

_ID = {"type": "string", "minLength": 1, "maxLength": 200}

SEED_ACTION_TYPES: list[dict] = [
    {
        "name": "search_docs",
        "tool_type": "read",
        "target_system": "knowledge_base",
        "reversible": True,
        "default_review_kind": "approval",
        "args_schema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 500},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            },
            "required": ["query"],
        },
        "consequence_template": "Search the knowledge base for {query}",
        "description": "Read-only search of the internal documentation.",
    },
    {
        "name": "send_email",
        "tool_type": "message",
        "target_system": "mailer",
        "reversible": False,
        "default_review_kind": "approval",
        "args_schema": {
            "type": "object",
            "properties": {"template_id": _ID, "customer_id": _ID, "variables": {"type": "object"}},
            "required": ["template_id", "customer_id"],
        },
        "consequence_template": "Send email template {template_id} to customer {customer_id}",
        "description": "Send a templated email to a customer.",
    },
    {
        "name": "issue_refund",
        "tool_type": "payment",
        "target_system": "billing",
        "reversible": False,
        "default_review_kind": "approval",
        "amount_path": "amount",
        "args_schema": {
            "type": "object",
            "properties": {
                "amount": {
                    "type": ["number", "string"],
                    "exclusiveMinimum": 0,
                    "pattern": r"^[0-9]+(\.[0-9]{1,2})?$",
                },
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "order_id": _ID,
                "reason": {"type": "string", "maxLength": 500},
            },
            "required": ["amount", "currency", "order_id"],
        },
        "consequence_template": "Refund {amount} {currency} to order {order_id}",
        "description": "Refund money to a customer's order.",
    },
    {
        "name": "delete_record",
        "tool_type": "delete",
        "target_system": "crm",
        "reversible": False,
        "default_review_kind": "approval",
        "args_schema": {
            "type": "object",
            "properties": {"record_type": _ID, "record_id": _ID},
            "required": ["record_type", "record_id"],
        },
        "consequence_template": "Delete {record_type} record {record_id} from the CRM",
        "description": "Permanently delete a CRM record.",
    },
    {
        "name": "change_permission",
        "tool_type": "permission",
        "target_system": "iam",
        "reversible": True,
        "default_review_kind": "approval",
        "args_schema": {
            "type": "object",
            "properties": {
                "user_id": _ID,
                "permission": _ID,
                "change": {"enum": ["grant", "revoke"]},
            },
            "required": ["user_id", "permission", "change"],
        },
        "consequence_template": "Change permission {permission} for user {user_id}: {change}",
        "description": "Grant or revoke a permission in the identity system.",
    },
    {
        "name": "draft_reply",
        "tool_type": "message",
        "target_system": "helpdesk",
        "reversible": True,
        "default_review_kind": "edit",
        "args_schema": {
            "type": "object",
            # The reply itself travels as the proposal's content, the text a reviewer edits.
            "properties": {"ticket_id": _ID},
            "required": ["ticket_id"],
        },
        "consequence_template": "Post this reply to the customer on ticket {ticket_id}",
        "description": "A generated reply that will reach a customer.",
    },
]

SEED_RULES: list[dict] = [
    {
        "name": "refund_order_unknown",
        "priority": 2,
        "description": "No refund for an order the payments ledger does not know",
        "conditions": [
            {"field": "action", "op": "=", "value": "issue_refund"},
            {"field": "fact", "name": "order_exists", "op": "=", "value": False},
        ],
        "outcome": "deny",
        "risk": "high",
    },
    {
        "name": "refund_window_closed",
        "priority": 5,
        "description": "No refund once the order's refund window has closed",
        "conditions": [
            {"field": "action", "op": "=", "value": "issue_refund"},
            {"field": "fact", "name": "refund_window_valid", "op": "=", "value": False},
        ],
        "outcome": "deny",
        "risk": "high",
    },
    {
        "name": "refund_above_refundable",
        "priority": 7,
        "description": "No refund above what is left to refund on the order",
        "conditions": [
            {"field": "action", "op": "=", "value": "issue_refund"},
            {"field": "fact", "name": "amount_within_refundable", "op": "=", "value": False},
        ],
        "outcome": "deny",
        "risk": "high",
    },
    {
        "name": "low_confidence_large_refund",
        "priority": 10,
        "description": "An unsure agent refunding more than 500 needs a specialist",
        "conditions": [
            {"field": "action", "op": "=", "value": "issue_refund"},
            {"field": "confidence", "op": "<", "value": 0.7},
            {"field": "amount", "op": ">", "value": 500},
        ],
        "outcome": "human_review",
        "review_kind": "escalation",
        "queue": "operations",
        "risk": "high",
    },
    {
        "name": "permission_changes",
        "priority": 20,
        "description": "Access changes need two distinct approvers",
        "conditions": [{"field": "action", "op": "=", "value": "change_permission"}],
        "outcome": "human_review",
        "review_kind": "approval",
        "queue": "access",
        "risk": "high",
        "required_approvals": 2,
    },
    {
        "name": "permission_subject_unknown",
        "priority": 12,
        "description": "No access change for a user the directory does not know",
        "conditions": [
            {"field": "action", "op": "=", "value": "change_permission"},
            {"field": "fact", "name": "subject_exists", "op": "=", "value": False},
        ],
        "outcome": "deny",
        "risk": "high",
    },
    {
        "name": "unsure_permission_change",
        "priority": 15,
        "description": "An unsure agent changing access hands over to the access team",
        "conditions": [
            {"field": "action", "op": "=", "value": "change_permission"},
            {"field": "confidence", "op": "<", "value": 0.7},
        ],
        "outcome": "human_review",
        "review_kind": "escalation",
        "queue": "access",
        "risk": "critical",
    },
    {
        "name": "access_replies_need_edit_review",
        "priority": 25,
        "description": "Replies about access requests are edited by the access team",
        "conditions": [
            {"field": "action", "op": "=", "value": "draft_reply"},
            {"field": "fact", "name": "topic", "op": "=", "value": "access"},
        ],
        "outcome": "human_review",
        "review_kind": "edit",
        "queue": "access",
        "risk": "medium",
    },
    {
        "name": "writes_need_review",
        "priority": 30,
        "description": "Emails, refunds and deletions are reviewed by a person",
        "conditions": [{"field": "action", "op": "in", "value": WRITE_ACTIONS}],
        "outcome": "human_review",
        "queue": "operations",
        "risk": "medium",
    },
    {
        "name": "drafts_need_edit_review",
        "priority": 40,
        "description": "Text that will reach a customer is edited by a person first",
        "conditions": [{"field": "action", "op": "=", "value": "draft_reply"}],
        "outcome": "human_review",
        "review_kind": "edit",
        "queue": "operations",
        "risk": "medium",
    },
    {
        "name": "low_confidence_clarifies",
        "priority": 50,
        "description": "Below 0.70 confidence the agent asks before acting",
        "conditions": [{"field": "confidence", "op": "<", "value": 0.7}],
        "outcome": "request_clarification",
        "risk": "low",
    },
    {
        "name": "costly_actions_need_review",
        "priority": 60,
        "description": "Anything estimated above 5 USD is reviewed",
        "conditions": [{"field": "estimated_cost_usd", "op": ">", "value": 5}],
        "outcome": "human_review",
        "queue": "operations",
        "risk": "medium",
    },
    {
        "name": "reads_auto_execute",
        "priority": 70,
        "description": "Cheap, confident reads run at once",
        "conditions": [{"field": "tool_type", "op": "=", "value": "read"}],
        "outcome": "auto_execute",
        "risk": "low",
    },
]


def seed_policy(*, actor=None) -> PolicyVersion:
    """Install the seed catalogue and policy and activate it for the default tenant.

    Idempotent and never destructive: existing action types and an existing seed rule set
    are left as they are (an edited draft is not published behind its editor's back), and
    an activation a team made for the default tenant is not replaced.
    """
    from django.db import transaction

    from policies import services
    from policies.models import ActionType, PolicyActivation, RuleSet

    with transaction.atomic():
        existing = set(ActionType.objects.values_list("name", flat=True))
        for data in SEED_ACTION_TYPES:
            if data["name"] not in existing:
                services.action_type_create(actor=actor, fields=data)
        rule_set = RuleSet.objects.filter(name=SEED_RULE_SET).first()
        if rule_set is None:
            rule_set = services.rule_set_create(
                actor=actor,
                name=SEED_RULE_SET,
                tenant="",
                description="The seed policy: writes and risky actions reach a person.",
                unknown_action=SEED_UNKNOWN_ACTION,
            )
            for rule in SEED_RULES:
                services.rule_add(actor=actor, rule_set=rule_set, fields=rule)
        # v1 is what the seed published; later versions are the team's.
        version = rule_set.versions.order_by("number").first()
        if version is None:
            version = services.rule_set_publish(actor=actor, rule_set=rule_set, activate=False)
        if not PolicyActivation.objects.filter(tenant="").exists():
            services.version_activate(actor=actor, version=version, tenant="")
        return version
