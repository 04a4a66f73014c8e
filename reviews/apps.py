"""The reviews app: its configuration, and the policy gate it lends the policy app."""

from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self):
        # The policy app cannot import reviews: the gate that replays reviewers' verdicts
        # under a draft is handed to it here, and every gated publish runs it.
        from policies import gates

        from .selectors.policy_gate import rule_set_gate

        gates.register(rule_set_gate)
