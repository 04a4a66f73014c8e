"""Errors the policy app raises for bad input, readable on one line."""

from django.core.exceptions import ValidationError


class PolicyInputError(ValidationError):
    """A proposal (or version reference) the policy cannot evaluate: ``{field: [messages]}``."""

    def __init__(self, errors: dict[str, list[str]] | str):
        if isinstance(errors, str):
            errors = {"proposal": [errors]}
        super().__init__(errors)

    def one_line(self) -> str:
        return "; ".join(
            f"{field}: {message}"
            for field, messages in self.message_dict.items()
            for message in messages
        )

    def __str__(self) -> str:
        return self.one_line()


class ImmutableVersionError(ValidationError):
    """A write to something frozen: a published policy version or the evaluation log."""
