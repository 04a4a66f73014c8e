"""The policy engine: compiled rules + a proposal -> a decision. Pure Python, no I/O.

It ships in the agent's package (standard library only) so an agent decides its tool calls
in process with the very code the platform decides with (``policies.engine`` re-exports it).

Nothing here touches the database, the clock, randomness or Django: the same compiled
policy and the same proposal always give the same decision, so any past decision can be
replayed from the policy version it names.

Modules, each importing only those before it (``decide`` names ``CompiledPolicy`` as a
type only): ``proposal``, the proposal's one shape (``POLICY_KEYS``, ``proposal_input``,
``parse_proposal``); ``rules``, rules and conditions as data and their validation;
``snapshot``, what a published version freezes and its ``content_hash``; ``decide``,
``evaluate`` and the ``PolicyDecision`` it returns, with the safety rules no policy can
switch off; ``plan``, a snapshot compiled into per-situation plans (``compile_policy``,
``compiled_for``).
"""

from .decide import Check, PolicyDecision, evaluate, owner_only_text
from .plan import CompiledPolicy, compile_policy, compiled_for
from .proposal import (
    AUDIENCES,
    DEFAULT_AUDIENCE,
    POLICY_KEYS,
    SLUG_RE,
    Proposal,
    ProposalError,
    parse_proposal,
    proposal_input,
    read_path,
    to_decimal,
)
from .rules import (
    AUTO_EXECUTE,
    DENY,
    FACT_NAME_RE,
    FIELDS,
    HUMAN_REVIEW,
    MAX_REQUIRED_APPROVALS,
    NAME_RE,
    OPERATORS,
    OUTCOMES,
    PATH_RE,
    QUEUE_OWNER,
    READ,
    REQUEST_CLARIFICATION,
    REVIEW_KINDS,
    RISKS,
    TOOL_TYPES,
    UNKNOWN_ACTIONS,
    UNKNOWN_DENY,
    UNKNOWN_ESCALATE,
    RuleError,
    canonical_json,
    condition_action_names,
    validate_conditions,
    validate_rule,
)
from .snapshot import CATALOGUE_KEYS, SNAPSHOT_FORMAT, ActionInfo, build_snapshot, content_hash

__all__ = [
    "AUDIENCES",
    "AUTO_EXECUTE",
    "CATALOGUE_KEYS",
    "DEFAULT_AUDIENCE",
    "DENY",
    "FACT_NAME_RE",
    "FIELDS",
    "HUMAN_REVIEW",
    "MAX_REQUIRED_APPROVALS",
    "NAME_RE",
    "OPERATORS",
    "OUTCOMES",
    "PATH_RE",
    "POLICY_KEYS",
    "QUEUE_OWNER",
    "READ",
    "REQUEST_CLARIFICATION",
    "REVIEW_KINDS",
    "RISKS",
    "SLUG_RE",
    "SNAPSHOT_FORMAT",
    "TOOL_TYPES",
    "UNKNOWN_ACTIONS",
    "UNKNOWN_DENY",
    "UNKNOWN_ESCALATE",
    "ActionInfo",
    "Check",
    "CompiledPolicy",
    "PolicyDecision",
    "Proposal",
    "ProposalError",
    "RuleError",
    "build_snapshot",
    "canonical_json",
    "compile_policy",
    "compiled_for",
    "condition_action_names",
    "content_hash",
    "evaluate",
    "owner_only_text",
    "parse_proposal",
    "proposal_input",
    "read_path",
    "to_decimal",
    "validate_conditions",
    "validate_rule",
]
