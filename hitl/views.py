"""Project-wide error pages: under /api/ the API's JSON shape, elsewhere Django's own."""

from django.views import defaults

from .middleware import api_error


def not_found(request, exception):
    """404: JSON under /api/ (clients parse it), the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return api_error(404, "not_found", f"No such API endpoint or object: {request.path}")
    return defaults.page_not_found(request, exception)
