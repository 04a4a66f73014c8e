"""Checks a draft must pass before it is published, registered by the apps that know more.

The policy app knows nothing of reviews, yet the review app knows what reviewers decided:
it registers a check here (in its ``AppConfig.ready``) and ``rule_set_publish`` runs every
registered check. A check takes the rule set and the snapshot publishing it would freeze
and returns a report ``{"title", "danger": [...], "friction": [...], "replayed": N}``;
any danger needs a person's explicit reason to publish anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

if TYPE_CHECKING:
    from policies.models import RuleSet

GateReport = dict[str, Any]
GateCheck = Callable[["RuleSet", dict], GateReport]

_checks: list[GateCheck] = []


def register(check: GateCheck) -> GateCheck:
    """Add a check every gated publish runs (registering one twice keeps one)."""
    if check not in _checks:
        _checks.append(check)
    return check


def unregister(check: GateCheck) -> None:
    """Remove a check (tests that need a publish without it)."""
    if check in _checks:
        _checks.remove(check)


def run_checks(rule_set: RuleSet, snapshot: dict) -> list[GateReport]:
    """Every registered check's report on publishing ``snapshot`` for ``rule_set``."""
    return [check(rule_set, snapshot) for check in _checks]


def danger_count(reports: list[GateReport]) -> int:
    """How many dangerous cases the reports list together."""
    return sum(len(report.get("danger") or []) for report in reports)


class GateRefused(ValidationError):
    """Publishing was refused: a check found danger and nobody gave a reason to go on."""

    def __init__(self, reports: list[GateReport]):
        self.reports = reports
        super().__init__(
            f"the gate found {danger_count(reports)} dangerous case(s): publishing needs an "
            "explicit confirmation with a reason (open the rule set and publish it there)."
        )
