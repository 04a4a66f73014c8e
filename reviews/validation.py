"""Checks for input the database could not store faithfully, shared by every entry point."""

import math


def json_problem(value, limit: int = 64) -> str | None:
    """Why a parsed JSON value cannot be stored faithfully (None when it can): nesting
    deeper than `limit`, numbers that are not finite (1e999, NaN), or text with NUL
    characters or lone surrogates (which PostgreSQL's jsonb refuses)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return f"nested deeper than {limit} levels"
        if isinstance(item, float) and not math.isfinite(item):
            return "numbers must be finite"
        if isinstance(item, str) and _bad_text(item):
            return "text must be valid Unicode without NUL characters"
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and _bad_text(key):
                    return "text must be valid Unicode without NUL characters"
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
    return None


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
