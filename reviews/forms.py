"""Form pieces the reviews screens share: durations in words, and the queue's settings form
(its chat webhook a secret that is set or removed, never shown back)."""

import re
from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_duration

from .models import Queue

_SECONDS = {
    "w": 604800,
    "week": 604800,
    "d": 86400,
    "day": 86400,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "m": 60,
    "min": 60,
    "minute": 60,
    "s": 1,
    "sec": 1,
    "second": 1,
}
_NUMBER_UNIT = r"\d+(?:\.\d+)?\s*[a-z]+"
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
# Number-unit pairs, separated by spaces, commas or "and": "2 days, 3 hours and 5 minutes".
_WORDS = re.compile(rf"{_NUMBER_UNIT}(?:\s*(?:,|\band\b)?\s*{_NUMBER_UNIT})*")
# Beyond this a deadline means nothing (and timedelta overflows a little further on).
LONGEST = timedelta(days=3650)
EXAMPLES = "'4 hours', '2 days 3 hours', '90 minutes' or 01:30:00"


def _unit(word: str) -> int | None:
    if word in _SECONDS:
        return _SECONDS[word]
    if word.endswith("s") and word[:-1] in _SECONDS:
        return _SECONDS[word[:-1]]
    return {"mins": 60, "hrs": 3600, "secs": 1}.get(word)


def parse_duration_words(text: str) -> timedelta | None:
    """'4 hours', '2 days 3 hours', '90 minutes', '1h30m', '1.5 hours', or what Django's
    DurationField takes ('01:30:00', '3 00:00:00', ISO 8601); None when it is none of those.
    OverflowError for a duration no timedelta holds."""
    given = text.strip()
    text = given.lower()
    if not text:
        return None
    if _WORDS.fullmatch(text):
        seconds = 0.0
        for number, word in _PART.findall(text):
            unit = _unit(word)
            if unit is None:
                return None
            seconds += float(number) * unit
        return timedelta(seconds=round(seconds))
    try:
        return parse_duration(given)
    except ValueError:
        return None


def duration_in_words(value: timedelta | None, *, empty: str = "—") -> str:
    """'2 days 3 hours', '1 hour 30 minutes', '45 seconds': how people say a duration."""
    if value is None:
        return empty
    total = int(value.total_seconds())
    if total == 0:
        return "0 minutes"
    sign, total = ("-", -total) if total < 0 else ("", total)
    parts = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return sign + " ".join(parts)


class DurationInWordsField(forms.DurationField):
    """A duration typed and shown in words; HH:MM:SS still works."""

    widget = forms.TextInput
    default_error_messages = {
        "invalid": f"Enter a duration like {EXAMPLES}.",
        "too_long": "That is longer than ten years; enter a shorter duration.",
    }

    def prepare_value(self, value):
        if isinstance(value, timedelta):
            return duration_in_words(value)
        return value

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, timedelta):
            return value
        try:
            parsed = parse_duration_words(str(value))
        except OverflowError:
            raise ValidationError(self.error_messages["too_long"], code="too_long") from None
        if parsed is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        if abs(parsed) > LONGEST:
            raise ValidationError(self.error_messages["too_long"], code="too_long")
        return parsed

    def widget_attrs(self, widget):
        return {**super().widget_attrs(widget), "placeholder": "e.g. 4 hours", "size": 24}


class QueueForm(forms.ModelForm):
    """A queue's settings: durations in words; the chat webhook is write-only (the stored
    one is shown masked; empty keeps it, 'Remove' clears it)."""

    chat_webhook_url = forms.CharField(
        label="Chat webhook URL",
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60, "autocomplete": "off"}),
    )
    chat_webhook_remove = forms.BooleanField(label="Remove the chat webhook", required=False)

    class Meta:
        model = Queue
        fields = (
            "name",
            "slug",
            "tenant",
            "owner",
            "members",
            "escalation_owner",
            "sla",
            "remind_before",
            "remind_every",
            "expiry",
            "expiry_behaviour",
            "fallback",
            "notify_owner_on_breach",
            "chat_webhook_url",
        )
        labels = {"sla": "SLA"}
        field_classes = {
            "sla": DurationInWordsField,
            "expiry": DurationInWordsField,
            "remind_before": DurationInWordsField,
            "remind_every": DurationInWordsField,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields.get("chat_webhook_url")
        if field is None:
            return
        # Never sent back to the browser: the URL's path is the credential.
        self.initial["chat_webhook_url"] = ""
        stored = self.instance.chat_webhook_hint if self.instance.pk else ""
        field.help_text = (
            f"Set: {stored}. Leave empty to keep it; paste a new one to replace it."
            if stored
            else Queue._meta.get_field("chat_webhook_url").help_text
        )
        field.widget.attrs["placeholder"] = stored or "https://hooks.slack.com/services/…"

    def clean_chat_webhook_url(self):
        typed = self.cleaned_data.get("chat_webhook_url", "").strip()
        if self.data.get(self.add_prefix("chat_webhook_remove")):
            return ""
        return typed or self.instance.chat_webhook_url
