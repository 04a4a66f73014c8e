"""What every admin screen shares: a changelist that checks its query string.

Django's changelist hands the query string to the database nearly as typed: any lookup on
a local field (``?summary__regex=\\``), any value for a filter (``?queue=²``), NUL bytes that
PostgreSQL refuses in text. Each of those came back as a 500. Here a changelist accepts
only the parameters its filters declare, with values those filters offer or can convert;
anything else gets the admin's own "invalid filter" answer (IncorrectLookupParameters: back
to the unfiltered list with ?e=1) and a message saying what was wrong.

Imports flow policies <- reviews <- evaluation, so the mechanism every app shares lives
here, in the project package, and imports none of them.
"""

from datetime import UTC, datetime
from functools import cache

from django.contrib import admin, messages
from django.contrib.admin import ChoicesFieldListFilter, FieldListFilter, SimpleListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404
from django.utils.text import Truncator

from .internals import raw_id_popup_params, registered_admins


def _invalid(request, message: str) -> IncorrectLookupParameters:
    # The admin answers with a redirect to ?e=1 and nothing else; the message says why.
    messages.error(request, message, fail_silently=True)
    return IncorrectLookupParameters(message)


def _shown(value: str) -> str:
    return Truncator(value).chars(40)


class ValidatedChangeList(ChangeList):
    """A changelist that refuses a query string its filters cannot use."""

    def __init__(self, request, *args, **kwargs):
        # Before anything reads the query string: no parameter of any screen carries a NUL.
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                raise _invalid(
                    request, "The address contains a NUL character, which no filter takes."
                )
        super().__init__(request, *args, **kwargs)

    def get_filters(self, request):
        asked = self.get_filters_params()
        try:
            specs, has_filters, remaining, duplicates, active = super().get_filters(request)
        except (ValueError, OverflowError) as exc:
            # The date hierarchy works out the end of its range outside Django's own check:
            # year 9999 has no next year. Any other such error is a bug, and stays one.
            hierarchy = self.date_hierarchy
            if not hierarchy or not any(key.startswith(f"{hierarchy}__") for key in asked):
                raise
            raise _invalid(request, "That date is out of range.") from exc
        # Every declared filter takes its parameters out of the query string; what is left
        # would go to the database as a lookup nobody offered (``summary__regex``).
        for key, values in asked.items():
            if key in remaining and not self._popup_lookup(key, values):
                raise _invalid(request, f"This list has no filter {_shown(key)!r}.")
        for spec in specs:
            self._check_values(request, spec)
        # The date hierarchy's range, in a time zone east of UTC, can start before year 1.
        for values in remaining.values():
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, datetime) and not _representable(value):
                    raise _invalid(request, "That date is out of range.")
        return specs, has_filters, remaining, duplicates, active

    def _popup_lookup(self, key, values) -> bool:
        # A raw-id popup passes its field's limit_choices_to as lookups (what the admin's
        # own lookup_allowed lets through); only those exact pairs are accepted.
        for allowed in raw_id_popup_params(self.model):
            if key in allowed and all(value == allowed[key] for value in values):
                return True
        return False

    def _check_values(self, request, spec) -> None:
        if isinstance(spec, SimpleListFilter):
            value = spec.value()
            offered = {str(lookup) for lookup, _ in spec.lookup_choices}
            if value is not None and value not in offered:
                raise _invalid(
                    request, f"{_shown(value)!r} is not a choice of the {spec.title} filter."
                )
        elif isinstance(spec, ChoicesFieldListFilter):
            offered = {str(choice) for choice, _ in spec.field.flatchoices}
            for value in spec.lookup_val or ():
                if value not in offered:
                    raise _invalid(
                        request, f"{_shown(value)!r} is not a choice of the {spec.title} filter."
                    )
        elif isinstance(spec, FieldListFilter) and isinstance(spec.field, models.DateTimeField):
            self._check_moments(request, spec)

    def _check_moments(self, request, spec) -> None:
        for key, values in spec.used_parameters.items():
            if key.endswith("__isnull"):
                continue
            for value in values:
                try:
                    moment = spec.field.to_python(value)
                except ValidationError:
                    continue  # the filter itself refuses what does not parse
                # A moment without a time zone means a different instant for each server;
                # the admin's own date links always carry one.
                if isinstance(moment, datetime) and (
                    moment.tzinfo is None or not _representable(moment)
                ):
                    raise _invalid(
                        request,
                        f"{_shown(value)!r} is not a date and time with a time zone in range.",
                    )


def _representable(moment: datetime) -> bool:
    # The database adapters convert to UTC, and 9999-12-31 23:00-05:00 is past year 9999 there.
    try:
        moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return False
    return True


@cache
def _validated(changelist_class: type[ChangeList]) -> type[ChangeList]:
    if issubclass(changelist_class, ValidatedChangeList):
        return changelist_class
    return type(
        f"Validated{changelist_class.__name__}", (ValidatedChangeList, changelist_class), {}
    )


class ValidatedChangelistMixin:
    """For a ModelAdmin: its changelist refuses a query string its filters cannot use."""

    def get_changelist(self, request, **kwargs):
        return _validated(super().get_changelist(request, **kwargs))


class ValidatedModelAdmin(ValidatedChangelistMixin, admin.ModelAdmin):
    """The base of the project's admin screens that need no history."""


def validate_every_changelist(site: admin.AdminSite) -> None:
    """Give the admins other apps registered (auth, django_q) the same checked changelist;
    the project's own admins inherit it from their base classes."""
    for model, model_admin in registered_admins(site):
        if isinstance(model_admin, ValidatedChangelistMixin):
            continue
        cls = type(model_admin)
        site.unregister(model)
        site.register(
            model,
            type(cls.__name__, (ValidatedChangelistMixin, cls), {"__module__": cls.__module__}),
        )


def history_version_or_404(version_id) -> None:
    """simple-history passes the URL's version id to the database as is: anything but
    ASCII digits ('abc', a NUL, '²') is a 404 here rather than a ValueError (500) there."""
    text = str(version_id)
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise Http404("No such version.")
