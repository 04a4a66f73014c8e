"""The argument-edit form built from the action's JSON Schema: one field per property,
typed, limited and explained as the schema says, so a reviewer corrects a refund's amount
in a number box and sees what is wrong beside the field, not in a JSON blob."""

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from jsonschema import Draft202012Validator

from hitl.internals import invalid_json_input
from policies.selectors import action_type_for

from ..validation import json_problem

PREFIX = "arg"
FORM_ID = "decision-form"  # the screen's one decision form (review_change_form.html)
# Where the services name an argument: "action.args.amount" (schema re-validation),
# "arguments.amount" (the screen's own refusals).
_ERROR_PREFIXES = ("action.args.", "arguments.", "args.")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,60}")
_LONG_TEXT = 200  # strings allowed longer than this get a text area
_FORMAT_INPUTS = {"date": "date", "date-time": "datetime-local", "email": "email", "uri": "url"}


def usable_schema(action_name: str) -> dict | None:
    """The action's arguments schema when it describes properties a form can show."""
    action_type = action_type_for(action_name)
    schema = action_type.args_schema if action_type is not None else None
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return None
    if not all(isinstance(spec, dict) for spec in properties.values()):
        return None
    return schema


def _types(spec: Mapping) -> list[str]:
    kind = spec.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    return []


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _numeric_text(value: Any) -> bool:
    try:
        return isinstance(value, str) and Decimal(value).is_finite()
    except ArithmeticError:
        return False


def _choose(spec: Mapping, current: Any) -> str:
    """Which widget family a property gets: enum, integer, number, string, boolean or json."""
    if isinstance(spec.get("enum"), list) and spec["enum"]:
        return "enum"
    if "const" in spec:
        return "enum"
    types = [t for t in _types(spec) if t != "null"]
    if not types or {"object", "array"} & set(types):
        return "json"
    numeric = [t for t in types if t in ("integer", "number")]
    if numeric and "string" in types:
        # A money amount may travel as 20.00 or "20.00": a number box for either, unless
        # the current value is text that is no number at all.
        if isinstance(current, str) and current and not _numeric_text(current):
            return "string"
        return "number" if "number" in numeric else "integer"
    if len(types) > 1:
        return "json"
    return types[0] if types[0] in ("integer", "number", "string", "boolean") else "json"


class _Bound:
    """A number limit from the schema, checked on the form as the schema checks it."""

    def __init__(self, keyword: str, limit: Any):
        self.keyword, self.limit = keyword, Decimal(str(limit))

    def __call__(self, value: Decimal) -> None:
        limit, keyword = self.limit, self.keyword
        if keyword == "multipleOf":
            try:
                failed = limit != 0 and value % limit != 0
            except ArithmeticError:  # a quotient beyond Decimal's precision
                failed = True
        else:
            failed = {
                "minimum": value < limit,
                "maximum": value > limit,
                "exclusiveMinimum": value <= limit,
                "exclusiveMaximum": value >= limit,
            }[keyword]
        if failed:
            raise ValidationError(_LIMIT_WORDS[keyword].format(limit=limit), code=keyword)


_LIMIT_WORDS = {
    "minimum": "Must be at least {limit}.",
    "maximum": "Must be at most {limit}.",
    "exclusiveMinimum": "Must be more than {limit}.",
    "exclusiveMaximum": "Must be less than {limit}.",
    "multipleOf": "Must be a multiple of {limit}.",
}


def _storable(value: Decimal | int) -> None:
    # Beyond a double's range a number is no JSON number other programs can read.
    if abs(Decimal(value)) >= _HUGE:
        raise ValidationError("This number is too large.", code="too_large")


_HUGE = Decimal("1e308")
_NUMBER_LIMITS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def _number_field(spec: Mapping, integer: bool, common: dict) -> forms.Field:
    limits = {k: spec[k] for k in _NUMBER_LIMITS if _is_number(spec.get(k))}
    attrs = {"step": str(limits.get("multipleOf", 1 if integer else "any"))}
    for keyword, attr in (("minimum", "min"), ("maximum", "max")):
        if keyword in limits:
            attrs[attr] = str(limits[keyword])
    validators = [_storable, *(_Bound(keyword, limit) for keyword, limit in limits.items())]
    field_class = forms.IntegerField if integer else forms.DecimalField
    return field_class(
        widget=forms.NumberInput(attrs=attrs), validators=validators, localize=False, **common
    )


def _string_field(spec: Mapping, common: dict) -> forms.Field:
    max_length = spec.get("maxLength") if isinstance(spec.get("maxLength"), int) else None
    min_length = spec.get("minLength") if isinstance(spec.get("minLength"), int) else None
    validators, attrs = [], {}
    pattern = spec.get("pattern")
    if isinstance(pattern, str):
        try:
            # JSON Schema patterns match anywhere, as RegexValidator's search does.
            validators.append(RegexValidator(re.compile(pattern), f"Must match {pattern}."))
        except re.error:
            pass  # a pattern Python cannot read is left to the service's validator
        else:
            if pattern.startswith("^") and pattern.endswith("$"):
                # A browser anchors its pattern attribute: only an anchored one means the same.
                attrs["pattern"] = pattern[1:-1]
                attrs["title"] = f"Must match {pattern}"
    if max_length is not None and max_length > _LONG_TEXT:
        widget = forms.Textarea(attrs={**attrs, "rows": 3})
    else:
        widget = forms.TextInput(attrs=attrs)
        widget.input_type = _FORMAT_INPUTS.get(spec.get("format"), "text")
    return forms.CharField(
        max_length=max_length,
        min_length=min_length,
        strip=False,  # an untouched value must come back byte for byte
        validators=validators,
        widget=widget,
        **common,
    )


def _enum_field(spec: Mapping, common: dict, current: Any) -> forms.Field:
    values = spec["enum"] if "enum" in spec else [spec["const"]]
    keyed = {_enum_key(value): value for value in values}
    choices = [(key, key) for key in keyed]
    if not common["required"] or _enum_key(current) not in keyed:
        # No silent pick: a value outside the list shows as "choose", not as the first one.
        choices.insert(0, ("", "(not set)" if not common["required"] else "(choose)"))
    return forms.TypedChoiceField(
        choices=choices, coerce=keyed.__getitem__, empty_value=None, **common
    )


def _enum_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def build_field(spec: Mapping, *, required: bool, current: Any, kind: str) -> forms.Field:
    """One form field for one schema property."""
    help_text = spec.get("description") if isinstance(spec.get("description"), str) else ""
    common = {"required": required, "help_text": help_text, "label": spec.get("title")}
    if kind == "enum":
        return _enum_field(spec, common, current)
    if kind in ("integer", "number"):
        return _number_field(spec, kind == "integer", common)
    if kind == "string":
        return _string_field(spec, common)
    if kind == "boolean":
        return forms.BooleanField(**{**common, "required": False})
    # Nested objects, arrays, or a type a field cannot show: this property as JSON only.
    return _JSONField(widget=forms.Textarea(attrs={"rows": 4, "class": "hitl-code"}), **common)


class _JSONField(forms.JSONField):
    """One property typed as JSON; nesting too deep to parse is a field error, not a crash."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError("Nested too deeply.", code="invalid") from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return invalid_json_input(data)


class ArgumentsForm(forms.Form):
    """The action's arguments as one field per schema property, pre-filled with `arguments`;
    `.arguments` is the edited JSON object once the form is valid."""

    prefix = PREFIX

    def __init__(self, data=None, *, schema: Mapping, arguments: Mapping[str, Any]):
        super().__init__(data)
        self.schema = schema
        self.original = dict(arguments)
        self.arguments: dict[str, Any] = {}
        required = set(schema.get("required") or [])
        self.properties: dict[str, str] = {}  # field name -> property
        self.kinds: dict[str, str] = {}
        for index, (prop, spec) in enumerate(schema["properties"].items()):
            name = prop if _NAME.fullmatch(prop) else f"property_{index}"
            current = self.original.get(prop)
            kind = _choose(spec, current)
            field = build_field(spec, required=prop in required, current=current, kind=kind)
            field.label = field.label or prop
            field.widget.attrs["form"] = FORM_ID
            self.fields[name] = field
            self.properties[name] = prop
            self.kinds[name] = kind
            if prop in self.original:
                self.initial[name] = _initial(current, kind)
        # Arguments the schema does not describe are kept as they are.
        self.kept = sorted((k, v) for k, v in self.original.items() if k not in self.fields_by_prop)

    @property
    def fields_by_prop(self) -> dict[str, str]:
        return {prop: name for name, prop in self.properties.items()}

    def clean(self):
        cleaned = super().clean()
        result = {k: v for k, v in self.original.items() if k not in self.fields_by_prop}
        for name, prop in self.properties.items():
            if name in self._errors or name not in cleaned:
                continue
            value = self._to_json(name, prop, cleaned[name])
            if value is _OMIT:
                continue
            problem = json_problem(value)
            if problem:
                self.add_error(name, problem[0].upper() + problem[1:] + ".")
                continue
            result[prop] = value
        self._schema_errors(result)
        self.arguments = result
        return cleaned

    def _to_json(self, name: str, prop: str, value: Any) -> Any:
        kind, original = self.kinds[name], self.original.get(prop, _OMIT)
        field = self.fields[name]
        if kind == "boolean":
            return _OMIT if original is _OMIT and not value else bool(value)
        blank = value in (None, "")
        if blank and not field.required:
            # An optional field left empty: the argument stays absent (or as empty as it was).
            return original if original in ("", None) else _OMIT
        if kind in ("integer", "number") and isinstance(value, Decimal | int):
            return _number(value, keep_text=isinstance(original, str))
        if kind == "string" and isinstance(original, str) and "\r\n" not in original:
            return value.replace("\r\n", "\n")  # browsers send a text area's lines as CRLF
        return value

    def _schema_errors(self, arguments: dict) -> None:
        # The schema has the last word (the same check the service re-runs on an edit).
        for error in Draft202012Validator(self.schema).iter_errors(arguments):
            path = list(error.absolute_path)
            if error.validator == "required" and not path:
                missing = [p for p in error.validator_value if p not in arguments]
                for prop in missing:
                    self._place(prop, "This field is required.")
                continue
            self._place(str(path[0]) if path else None, error.message)

    def _place(self, prop: str | None, message: str) -> None:
        name = self.fields_by_prop.get(prop) if prop is not None else None
        if name is not None and name in self._errors:
            return  # the field already says what is wrong with it
        self.add_error(name, message if name else f"{prop}: {message}" if prop else message)

    def add_service_errors(self, field_errors: Mapping[str, Any]) -> None:
        """Place a service's field errors ("action.args.amount", "arguments.amount") on
        the field they name; the others go above the form."""
        for key, messages in field_errors.items():
            messages = [messages] if isinstance(messages, str) else list(messages)
            prop = _property_named(str(key))
            name = self.fields_by_prop.get(prop) if prop is not None else None
            for message in messages:
                if name is not None:
                    self.add_error(name, str(message))
                else:
                    self.add_error(None, f"{key}: {message}" if prop else str(message))

    def error_fields(self) -> dict[str, list[str]]:
        """The form's errors keyed as the services key them ("arguments.<property>")."""
        return {
            (f"arguments.{self.properties[name]}" if name in self.properties else "arguments"): [
                str(m) for m in messages
            ]
            for name, messages in self.errors.items()
        }


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


_OMIT = _Omit()


def _property_named(key: str) -> str | None:
    for prefix in _ERROR_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :].split(".", 1)[0] or None
    return None


def _number(value: Decimal | int, *, keep_text: bool) -> int | float | str:
    # JSON has one number type: whole values become ints, others floats; an amount the
    # agent sent as text ("20.00") stays text, as typed.
    if keep_text:
        return str(value)
    if isinstance(value, int) or value == value.to_integral_value():
        return int(value)
    return float(value)


def _initial(value: Any, kind: str) -> Any:
    if kind == "enum":
        return _enum_key(value)
    if kind in ("integer", "number") and (_is_number(value) or _numeric_text(value)):
        return Decimal(str(value))
    return value


def arguments_form(review, data=None) -> ArgumentsForm | None:
    """The schema-built edit form for `review`'s arguments, or None without a usable schema."""
    schema = usable_schema(review.action_name)
    if schema is None:
        return None
    return ArgumentsForm(data, schema=schema, arguments=review.final_arguments or review.arguments)
