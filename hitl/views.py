"""Project-wide error pages: under /api/ the API's JSON shape, elsewhere Django's own."""

from django.http import JsonResponse
from django.views import defaults


def not_found(request, exception):
    """404: JSON under /api/ (clients parse it), the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "error": "not_found",
                "detail": f"No such API endpoint or object: {request.path}",
                "fields": {},
            },
            status=404,
        )
    return defaults.page_not_found(request, exception)
