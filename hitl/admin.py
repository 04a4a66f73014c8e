"""What every admin screen shares: a changelist that checks its query string.

Django's changelist hands the query string to the database nearly as typed: any lookup on
a local field (``?summary__regex=\\``), any value for a filter (``?queue=²``), NUL bytes that
PostgreSQL refuses in text. Each of those came back as a 500. Here a changelist accepts
only the parameters its filters declare, with values those filters offer or can convert;
anything else gets the admin's own "invalid filter" answer (IncorrectLookupParameters: back
to the unfiltered list with ?e=1) and a message saying what was wrong.

The bases every screen is built on live here too: history that is read, never reverted;
screens that only show; and admins whose writes go through services, where what a service
refuses comes back on the form or as a message, never as a 500.

Imports flow policies <- reviews <- evaluation, so the mechanism every app shares lives
here, in the project package, and imports none of them.
"""

from datetime import UTC, datetime
from functools import cache

from django.contrib import admin, messages
from django.contrib.admin import ChoicesFieldListFilter, FieldListFilter, SimpleListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import models
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.text import Truncator
from simple_history.admin import SimpleHistoryAdmin
from simple_history.models import DeletedObject
from simple_history.template_utils import HistoricalRecordContextHelper

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

    class Media:
        # The screens' stylesheet: on a laptop a changelist's filters sit above the table
        # (a 1280 px screen shows every column). A path, not an import of the app.
        css = {"all": ["reviews/review.css"]}

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


class _HistoryValues(HistoricalRecordContextHelper):
    """simple-history shows a foreign key that was empty as "Deleted user (pk=None)": an
    empty value reads "-"; a related row deleted since keeps simple-history's wording."""

    def prepare_delta_change_value(self, change, value):
        if isinstance(value, DeletedObject) and value.pk is None:
            return "-"
        return super().prepare_delta_change_value(change, value)


class NoRevertHistoryAdmin(ValidatedChangelistMixin, SimpleHistoryAdmin):
    """History is for reading: the list and each version are shown, a revert is refused (it
    would write behind the services' checks and the state machine's back)."""

    # Names the agent or system that wrote a row no person wrote, instead of "None".
    object_history_list_template = "admin/hitl/object_history_list.html"

    def get_historical_record_context_helper(self, request, historical_record):
        return _HistoryValues(self.model, historical_record)

    # Only a screen that shows every row may show a deleted object's history; elsewhere it
    # would show what the screen never did (another tenant's queue).
    history_of_deleted = False

    def history_view(self, request, object_id, extra_context=None):
        # simple-history looks the object up unscoped; history shows what the screen shows.
        self._visible_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("Reverting from history is disabled; the audit is immutable.")
        history_version_or_404(version_id)
        self._visible_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def _visible_or_404(self, request, object_id) -> None:
        object_id = unquote(object_id)
        if self.get_object(request, object_id) is None and not (
            self.history_of_deleted and self._deleted(object_id)
        ):
            raise Http404("Not found.")

    def _deleted(self, object_id) -> bool:
        try:
            pk = self.model._meta.pk.to_python(object_id)
        except ValidationError:
            return False
        return not self.model._default_manager.filter(pk=pk).exists()


class ReadOnlyMixin:
    """View only: these rows are written by services and the workflow, never on this screen."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(ReadOnlyMixin, ValidatedModelAdmin):
    """A screen that shows rows and never writes them."""


class ReadOnlyHistoryAdmin(ReadOnlyMixin, NoRevertHistoryAdmin):
    """A screen that shows rows and their history and never writes them."""


def refusal(exc: Exception) -> ValidationError:
    """What a service refused, as a ValidationError a form can show."""
    if isinstance(exc, ValidationError):
        return exc
    # The review services' errors name the fields they refuse; the others carry a message.
    return ValidationError(getattr(exc, "field_errors", None) or str(exc))


def refusal_text(exc: Exception) -> str:
    """What a service refused, as one line for a message."""
    error = refusal(exc)
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{'' if field == NON_FIELD_ERRORS else field + ': '}{message}"
            for field, field_messages in error.message_dict.items()
            for message in field_messages
        )
    return " ".join(error.messages)


class _RefusedForm:
    """Mixed into an admin's form: it fails validation with what the service said."""

    refused: ValidationError

    def clean(self):
        data = super().clean()
        error = self.refused
        by_field = error.error_dict if hasattr(error, "error_dict") else {None: error.error_list}
        for field, errors in by_field.items():
            if field in self.fields:
                self.add_error(field, errors)
                continue
            # A field this form does not show (read-only here) is named in the message.
            named = "" if field in (None, NON_FIELD_ERRORS) else f"{field}: "
            self.add_error(None, [f"{named}{m}" for e in errors for m in e.messages])
        return data


class ServiceSaveMixin:
    """For an admin whose save_model calls a service: what the service refuses comes back
    as form errors, with the input kept, never as a 500."""

    # The errors the services behind this screen raise for input they refuse.
    refusals: tuple[type[Exception], ...] = (ValidationError,)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except self.refusals as exc:
            # The view's transaction rolled the save back. The same POST is shown again,
            # its form failing with the service's reasons, so this time nothing is saved.
            request._service_refusal = refusal(exc)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        refused = getattr(request, "_service_refusal", None)
        if refused is None:
            return form
        return type(form.__name__, (_RefusedForm, form), {"refused": refused})


class ServiceDeleteMixin:
    """For an admin whose delete_model calls a service: a refusal is a message on the
    object's page, and there is no bulk delete (it would bypass the service)."""

    refusals: tuple[type[Exception], ...] = (ValidationError,)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except self.refusals as exc:
            self.message_user(request, refusal_text(exc), messages.ERROR)
            opts = self.opts
            return HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id])
            )


def own_views(model_admin, **views) -> list:
    """URLs for a screen's own views, each behind the admin's login and named
    `<app>_<model>_<name>` like the admin's: `own_views(self, decide=(route, view))`."""
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}"
    return [
        path(route, model_admin.admin_site.admin_view(view), name=f"{prefix}_{name}")
        for name, (route, view) in views.items()
    ]


def each_row(ids, call, *, refused_by: type[Exception]) -> tuple[int, list[str]]:
    """A bulk action's rows through one service call each: how many went through, and
    why each refused one was (a refusal never stops the others)."""
    done, refused = 0, []
    for ident in ids:
        try:
            call(ident)
            done += 1
        except refused_by as exc:
            refused.append(f"{ident}: {getattr(exc, 'message', exc)}")
    return done, refused
