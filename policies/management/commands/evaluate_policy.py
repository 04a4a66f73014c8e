"""Evaluate one proposal against the policy and print the decision as JSON."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from policies import selectors
from policies.exceptions import PolicyInputError


class Command(BaseCommand):
    help = (
        "Evaluate a proposal (JSON, or - for stdin) with the tenant's active policy version, "
        "or --version ID|HASH. The last line of output is the decision as one JSON object."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Our --version names a policy version; it replaces Django's "print my version".
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument(
            "proposal",
            help='{"action": {"name", "target_system", "args"}, "confidence", '
            '"estimated_cost_usd", "audience", "tenant", "facts"}',
        )
        parser.add_argument(
            "--version",
            dest="policy_version",
            default=None,
            help="A policy version id or content hash (8+ characters); default: active.",
        )

    def handle(self, *args, **options):
        text = options["proposal"]
        if text == "-":
            text = sys.stdin.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(
                f"The proposal is not valid JSON: {exc.msg} (line {exc.lineno}, column "
                f"{exc.colno})."
            ) from None
        try:
            # Parse before touching the database, so a malformed proposal fails fast.
            selectors.parse_proposal(data)
            decision = selectors.evaluate_proposal(proposal=data, version=options["policy_version"])
        except PolicyInputError as exc:
            raise CommandError(f"Invalid proposal: {exc.one_line()}") from None
        self.stdout.write(
            f"{decision.outcome} (rule {decision.rule or 'none: default'}, policy "
            f"{(decision.policy_version or 'none')[:12]})"
        )
        self.stdout.write(json.dumps(decision.to_dict(), sort_keys=True))
