"""Request validation compiled from the DRF serializers, with DRF itself as the judge.

A DRF serializer deep-copies and binds every declared field each time it is instantiated,
and its machinery around each field (empty values, defaults, validator objects, per-field
error collection) costs more than the checks themselves: for a proposal (ProposalIn with
its nested action, evidence, resources, versions) validation was an eighth of a request's
CPU. So each input serializer is built once per process and compiled into plain functions:
for the field kinds that carry the hot path (text, booleans, objects, nested serializers
and lists of them) the compiled checks are DRF's own rules written out; every other field
runs its own DRF `run_validation`, and the serializers' `validate` methods run as they are.

The compiled path only ever accepts: at the first value it would not take exactly as DRF
takes it (an error, or input DRF coerces, like a number for a text field) it gives up, and
a fresh serializer validates the body instead. So a 400 is exactly the one
`is_valid(raise_exception=True)` gives, and accepted input is what DRF would return
(reviews/tests/test_api_validation.py compares the two on many bodies).
"""

from collections.abc import Callable
from threading import Lock
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import MaxLengthValidator, MinLengthValidator
from rest_framework import fields, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty

from hitl.internals import takes_any_value, writable_fields

Check = Callable[[Any], Any]

_COMPILED: dict[type[serializers.Serializer], Check] = {}
_LOCK = Lock()
# With its length limits, the validators every CharField gets; any other sends it to DRF.
_TEXT_CHECKS = (fields.ProhibitNullCharactersValidator, fields.ProhibitSurrogateCharactersValidator)


class _Declined(Exception):
    """The compiled checks do not take this value as they are: DRF decides."""


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """`serializer_class(data=data).is_valid(raise_exception=True)`'s validated data, or
    its ValidationError."""
    try:
        return _compiled(serializer_class)(data)
    except _Declined:
        # The answer to input the compiled checks decline is DRF's own, errors and all.
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def _compiled(serializer_class: type[serializers.Serializer]) -> Check:
    check = _COMPILED.get(serializer_class)
    if check is None:
        with _LOCK:
            check = _COMPILED.get(serializer_class)
            if check is None:
                check = _COMPILED[serializer_class] = _compile(serializer_class())
    return check


def _compile(field) -> Check:
    """The checks of a present, non-null value of `field`."""
    if isinstance(field, serializers.ListSerializer):
        return _list_check(field)
    if isinstance(field, serializers.Serializer):
        return _serializer_check(field)
    if type(field) is fields.CharField and _own_validators_only(field):
        return _char_check(field)
    if type(field) is fields.BooleanField and not field.validators:
        return _exact_type(bool, field)
    if (
        type(field) is fields.DictField
        and takes_any_value(field.child)
        and field.allow_empty
        and not field.validators
    ):
        return _exact_type(dict, field)
    return _drf_check(field)


def _own_validators_only(field: fields.CharField) -> bool:
    """Whether a text field's validators are only those its options made."""
    limits = {MaxLengthValidator: field.max_length, MinLengthValidator: field.min_length}
    for validator in field.validators:
        kind = type(validator)
        if kind in limits:
            if validator.limit_value != limits[kind]:
                return False
        elif kind not in _TEXT_CHECKS:
            return False
    return True


def _as_drf(field, base: type, *methods: str) -> bool:
    """Whether `field` validates as DRF's `base` does (no validators of its own, none of
    the methods overridden): only then are its checks compiled."""
    return not field.validators and all(
        getattr(type(field), name) is getattr(base, name) for name in methods
    )


# Where DRF reads a field's value from a JSON object as `data.get(name, empty)` (the
# others differ only for HTML form input), and handles a missing or null value as Field does.
_READ_PLAINLY = (
    fields.Field,
    fields.ListField,
    fields.DictField,
    serializers.Serializer,
    serializers.ListSerializer,
)
_EMPTY_AS_FIELD = (fields.Field, fields.DecimalField)  # DecimalField differs only for ""


def _reads_plainly(field) -> bool:
    """Whether a field takes its input as `_entry` reads it (not a HiddenField, nor a field
    with another source)."""

    def owner(name: str) -> type:
        return next(k for k in type(field).__mro__ if name in vars(k))

    return (
        field.source == field.field_name
        and owner("get_value") in _READ_PLAINLY
        and owner("validate_empty_values") in _EMPTY_AS_FIELD
    )


def _serializer_check(serializer: serializers.Serializer) -> Check:
    methods = ("run_validation", "to_internal_value", "run_validators", "validate_empty_values")
    writable = writable_fields(serializer)
    if not _as_drf(serializer, serializers.Serializer, *methods) or not all(
        _reads_plainly(field) for field in writable
    ):
        return _drf_check(serializer)
    entries = [
        _entry(field, getattr(serializer, f"validate_{field.field_name}", None))
        for field in writable
    ]
    # The serializer's own validate(), if it has one (Serializer's returns its input).
    own = type(serializer).validate is not serializers.Serializer.validate

    def check(data):
        if type(data) is not dict:
            # A QueryDict (a query string) reads as DRF's html input does: DRF's own
            # validation, on this serializer built once.
            return _guarded(serializer.run_validation, data)
        out: dict[str, Any] = {}
        for entry in entries:
            entry(data, out)
        return _guarded(serializer.validate, out) if own else out

    return check


def _entry(field, validate_method) -> Callable[[dict, dict], None]:
    """One field of a serializer: missing (its default, or nothing), null, or checked."""
    name, check = field.field_name, _compile(field)

    def entry(data: dict, out: dict) -> None:
        value = data.get(name, empty)
        if value is empty:
            if field.required:
                raise _Declined
            if field.default is empty:
                return  # left out, as DRF's SkipField leaves it
            value = field.get_default()
        elif value is None:
            if not field.allow_null:
                raise _Declined
        else:
            value = check(value)
        out[name] = value if validate_method is None else _guarded(validate_method, value)

    return entry


def _list_check(field: serializers.ListSerializer) -> Check:
    methods = (
        "run_validation",
        "to_internal_value",
        "run_child_validation",
        "validate",
        "run_validators",
        "validate_empty_values",
    )
    if not _as_drf(field, serializers.ListSerializer, *methods):
        return _drf_check(field)
    child = _compile(field.child)
    allow_empty, longest, shortest = field.allow_empty, field.max_length, field.min_length

    def check(value):
        if not isinstance(value, list) or (not value and not allow_empty):
            raise _Declined
        if (longest is not None and len(value) > longest) or (
            shortest is not None and len(value) < shortest
        ):
            raise _Declined
        # A null item is DRF's to judge (its child may or may not allow it).
        return [child(item) if item is not None else _decline() for item in value]

    return check


def _char_check(field: fields.CharField) -> Check:
    trim, allow_blank = field.trim_whitespace, field.allow_blank
    longest, shortest = field.max_length, field.min_length

    def check(value):
        # A number DRF would turn into text is DRF's to turn.
        if type(value) is not str:
            raise _Declined
        text = value.strip() if trim else value
        if not text:  # "", or only whitespace where it is trimmed
            if not allow_blank:
                raise _Declined
            return ""
        if (longest is not None and len(text) > longest) or (
            shortest is not None and len(text) < shortest
        ):
            raise _Declined
        if "\x00" in text:
            raise _Declined
        try:
            text.encode("utf-8")  # fails on lone surrogates, which DRF refuses
        except UnicodeEncodeError:
            raise _Declined from None
        return text

    return check


def _exact_type(kind: type, field) -> Check:
    """A value of exactly `kind` as it is (a dict copied, as DRF copies it); any other is
    the field's own DRF validation's to take or refuse."""
    other = _drf_check(field)

    def check(value):
        if type(value) is not kind:
            return other(value)
        return dict(value) if kind is dict else value

    return check


def _drf_check(field) -> Check:
    """The field's own DRF validation (exact by construction)."""

    def check(value):
        return _guarded(field.run_validation, value)

    return check


def _guarded(function: Callable[[Any], Any], value):
    try:
        return function(value)
    except (ValidationError, DjangoValidationError, fields.SkipField):
        raise _Declined from None


def _decline():
    raise _Declined
