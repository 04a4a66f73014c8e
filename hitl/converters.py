"""URL parts that reach the database: a NUL byte (which PostgreSQL refuses in text) or an
over-long value never matches, so the answer is a 404 instead of a DataError."""

from django.urls import register_converter


class IdentifierConverter:
    """An id chosen by an agent or the platform: anything but '/' and NUL, at most 200."""

    regex = r"[^/\x00]{1,200}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(IdentifierConverter, "ident")
