"""Replay recent reviewers' verdicts under draft rules: exit 1 on danger, 2 on bad input."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from policies import engine
from reviews.selectors import policy_gate

RULES_FORMAT = (
    "FILE.json holds the rules in the seed's format (policies/seed.py SEED_RULES): a JSON list "
    'of rules, each {"name": slug, "priority": int (unique; lower first, first match wins), '
    f'"conditions": [{{"field": {"|".join(engine.FIELDS)}, "op": {"|".join(engine.OPERATORS)}, '
    '"value": ..., plus "name" for a fact}] (all must hold; [] matches everything), '
    f'"outcome": {"|".join(engine.OUTCOMES)}, and optionally "review_kind", "queue", "risk", '
    '"required_approvals", "sla_minutes", "description"}; or an object {"rules": [...], '
    f'"unknown_action": {"|".join(engine.UNKNOWN_ACTIONS)}}}. The catalogue is today\'s.'
)


class Command(BaseCommand):
    help = (
        "Replay the proposals of the last N days' decided reviews and of the logged "
        "auto-executed ones under draft rules. Danger: the draft would auto-execute something "
        "a reviewer rejected, corrected or escalated (exit status 1). Friction: the draft "
        "sends to review what reviewers approved unchanged nearly always. Bad input: exit 2. "
        + RULES_FORMAT
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rules", required=True, metavar="FILE.json", help="The draft rules (see above)."
        )
        parser.add_argument(
            "--days",
            type=int,
            default=policy_gate.DEFAULT_DAYS,
            help="Replay reviews decided (and proposals logged) in the last N days.",
        )
        parser.add_argument(
            "--tenant",
            default=None,
            help="Only this tenant's reviews (\"\" = the default tenant's reach); default: all.",
        )
        parser.add_argument(
            "--friction-rate",
            type=float,
            default=policy_gate.FRICTION_RATE,
            help="Friction: the share approved unchanged, per action and draft rule.",
        )
        parser.add_argument(
            "--friction-min-reviews",
            type=int,
            default=policy_gate.FRICTION_MIN_REVIEWS,
            help="Friction: the fewest reviews (or unattended proposals) a group needs.",
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **options):
        if options["days"] < 1 or options["friction_min_reviews"] < 1:
            raise CommandError("--days and --friction-min-reviews must be 1 or more.", returncode=2)
        if not 0 < options["friction_rate"] <= 1:
            raise CommandError("--friction-rate must be above 0 and at most 1.", returncode=2)
        snapshot = _read_rules(options["rules"])
        report = policy_gate.gate_report(
            snapshot=snapshot,
            days=options["days"],
            tenant=options["tenant"],
            friction_rate=options["friction_rate"],
            friction_min_reviews=options["friction_min_reviews"],
        )
        if options["json"]:
            self.stdout.write(json.dumps(report, sort_keys=True, default=str))
        else:
            self._table(report)
        if report["danger"]:
            raise CommandError(
                f"The draft would auto-execute {len(report['danger'])} proposal(s) reviewers "
                "stopped.",
                returncode=1,
            )

    def _table(self, report: dict) -> None:
        self.stdout.write(f"Replayed {report['replayed']} proposal(s).")
        self.stdout.write(f"Danger: {len(report['danger'])}")
        for row in report["danger"]:
            self.stdout.write(
                f"  {row['review_id']}  {row['action']} {json.dumps(row['arguments'])}  "
                f"reviewer: {row['verdict']} ({row['reason'] or 'no reason'})  "
                f"draft: {row['draft_outcome']} by {row['draft_rule'] or 'no rule'}"
            )
        self.stdout.write(f"Friction: {len(report['friction'])}")
        for row in report["friction"]:
            if row["kind"] == "approved_unchanged":
                what = (
                    f"{row['approved_unchanged']}/{row['reviews']} approved unchanged "
                    f"({row['rate']:.0%})"
                )
            else:
                what = f"{row['proposals']} ran unattended until now"
            self.stdout.write(f"  {row['action']} sent to review by {row['rule']}: {what}")


def _read_rules(path: str) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}.", returncode=2) from None
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text.", returncode=2) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
            returncode=2,
        ) from None
    try:
        return policy_gate.snapshot_from_rules(data)
    except engine.RuleError as exc:
        raise CommandError("Invalid rules: " + "; ".join(exc.messages), returncode=2) from None
