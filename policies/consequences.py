"""Safe one-sentence templates: ``{name}`` or ``{path.to.value}``, nothing else.

Never ``str.format``: a template typed into the admin must not reach attributes
(``{x.__class__}``), indexes or format specs. A placeholder names an argument by a dotted
path into the arguments dict; a missing argument renders visibly instead of raising.
"""

import json
import re
from collections.abc import Mapping
from typing import Any

from policies.engine import read_path

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PLACEHOLDER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
MAX_VALUE_CHARS = 120


def template_errors(template: str) -> list[str]:
    """What is wrong with a template, as messages; an empty list when it is fine."""
    errors = []
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if token in ("{", "}"):
            errors.append(
                f"Unbalanced {token!r} at character {match.start() + 1}; write "
                f"{token * 2} for a literal brace."
            )
        elif not _PLACEHOLDER.match(match.group(1).strip()):
            errors.append(
                f"Placeholder {token} is not allowed: use {{name}} or {{name.sub}} "
                "(no format specs, indexes or conversions)."
            )
    return errors


def _text(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Mapping | list):
        text = json.dumps(value, default=str, sort_keys=True)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def render(template: str, args: Mapping[str, Any]) -> str:
    """Fill ``{name}`` placeholders from args; missing ones show as ``[missing name]``."""

    def replace(match: re.Match) -> str:
        piece = match.group(0)
        if piece in ("{{", "}}"):
            return piece[0]
        name = (match.group(1) or "").strip()
        if not name or not _PLACEHOLDER.match(name):
            return piece
        value = read_path(args, name)
        return f"[missing {name}]" if value is None else _text(value)

    return _TOKEN.sub(replace, template)
