"""The reviews app: its configuration, and the gate and suggestions it lends the policy app."""

from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self):
        # The policy app cannot import reviews: the gate that replays reviewers' verdicts
        # under a draft, and the suggestions drawn from them, are handed to it here.
        from policies import gates, insights

        from .selectors.policy_gate import rule_set_gate
        from .selectors.suggestions import rule_set_insights

        gates.register(rule_set_gate)
        insights.register(rule_set_insights)
