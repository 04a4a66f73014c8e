"""One error shape for the whole API: {"error": code, "detail": text, "fields": {...}}."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ..exceptions import ReviewError
from ..validation import json_problem


def api_exception_handler(exc, context):
    if isinstance(exc, ReviewError):
        body = {"error": exc.code, "detail": exc.message, "fields": exc.field_errors}
        # Extra keys (the review's state, its resume instruction) never replace the shape.
        body.update({k: v for k, v in exc.extra.items() if k not in body})
        return Response(body, status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        return Response(
            {"error": "invalid", "detail": "; ".join(exc.messages), "fields": fields},
            status=status.HTTP_400_BAD_REQUEST,
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()) or "Invalid input."
        response.data = {"error": "invalid", "detail": detail, "fields": fields}
    else:
        code = getattr(exc, "default_code", "error")
        if isinstance(exc, Http404):
            code = "not_found"
        detail = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else exc
        response.data = {"error": str(code), "detail": str(detail), "fields": {}}
    return response


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error dicts and lists become {"a.b[0].c": [messages]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):
                # DRF keys a list's item errors by index: named as the services name them.
                out.update(_flatten(value, f"{prefix}[{key}]"))
                continue
            name = str(key) if key != "non_field_errors" else (prefix or "body")
            path = f"{prefix}.{name}" if prefix and key != "non_field_errors" else name
            out.update(_flatten(value, path))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out.setdefault(prefix or "body", []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    out.update(_flatten(item, f"{prefix}[{index}]"))
    else:
        out.setdefault(prefix or "body", []).append(str(detail))
    return out


class SafeJSONParser(JSONParser):
    """JSON that is too deep for Python's parser is bad input, not a server error."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON nested too deeply.") from None


def reject_unstorable_json(value) -> None:
    """Raise a 400 (field `body`) for JSON the platform cannot store faithfully."""
    problem = json_problem(value)
    if problem:
        raise exceptions.ValidationError({"body": [problem + "."]})
