"""Project-wide request guards."""

from django.conf import settings
from django.http import JsonResponse


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
                return JsonResponse(
                    {"error": "invalid", "detail": "Bad Content-Length.", "fields": {}},
                    status=400,
                )
            if length > limit:
                return JsonResponse(
                    {
                        "error": "too_large",
                        "detail": f"Request body is {length} bytes; the limit is {limit}.",
                        "fields": {},
                    },
                    status=413,
                )
        return self.get_response(request)
