"""Project-wide request guards, and the API's answer when something unexpected fails."""

import logging

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse

from .internals import mark_response_logged

request_logger = logging.getLogger("django.request")


def api_error(status: int, code: str, detail: str, **headers: str) -> JsonResponse:
    """The API's error shape, for answers given before or after DRF's own handler."""
    return JsonResponse(
        {"error": code, "detail": detail, "fields": {}}, status=status, headers=headers or None
    )


class ApiErrorMiddleware:
    """Under /api/ every failure answers in the API's JSON shape, never Django's HTML page:
    503 with Retry-After while the database is unreachable (a restart, a failover), 500
    for anything else unexpected. Other paths keep Django's own handling."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exception, Http404 | PermissionDenied | SuspiciousOperation | BadRequest):
            return None  # Django's own 404/403/400 handling: not a server error
        if isinstance(exception, OperationalError | InterfaceError):
            retry_after = settings.HITL_DB_RETRY_AFTER_SECONDS
            response = api_error(
                503,
                "database_unavailable",
                "The database is unavailable for a moment (for example while it restarts). "
                f"Retry in {retry_after} seconds; retry proposals with the same "
                "Idempotency-Key so none is created twice.",
                **{"Retry-After": str(retry_after)},
            )
            # An outage, not a bug: one line per request, no traceback.
            request_logger.error(
                "Service Unavailable (database): %s %s: %s",
                request.method,
                request.path,
                str(exception).strip().splitlines()[0] if str(exception).strip() else "",
                extra={"status_code": 503, "request": request},
            )
        else:
            response = api_error(
                500,
                "server_error",
                "The server failed unexpectedly; the error is logged. Retry later, with the "
                "same Idempotency-Key for proposals.",
            )
            request_logger.error(
                "Internal Server Error: %s",
                request.path,
                exc_info=exception,
                extra={"status_code": 500, "request": request},
            )
        # Logged here with what matters; Django would log the response a second time.
        mark_response_logged(response)
        return response


class ClientErrorsWithoutTraceback(logging.Filter):
    """A refused request (403 permission denied, 401, 404) is routine: django.request logs
    it as one line. Django attaches the exception's traceback to "Forbidden (Permission
    denied)", which buried real errors in the log; server errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500 and record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True


class BodySizeLimitMiddleware:
    """Refuse API bodies over HITL_MAX_BODY_BYTES with 413 before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            limit = settings.HITL_MAX_BODY_BYTES
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return api_error(400, "invalid", "Bad Content-Length.")
            if length > limit:
                return api_error(
                    413, "too_large", f"Request body is {length} bytes; the limit is {limit}."
                )
        return self.get_response(request)
