"""The product's own source lines, for tests that keep one way of doing a thing."""

import re
from pathlib import Path

from django.conf import settings

APPS = ("hitl", "policies", "reviews", "evaluation")


def lines_matching(pattern: str, *, allowed: Path | None = None) -> list[str]:
    """`path:line` of every product line (tests left out) matching `pattern`, except in
    `allowed`, the one module where it belongs."""
    root = Path(settings.BASE_DIR)
    return [
        f"{path.relative_to(root)}:{number}"
        for app in APPS
        for path in (root / app).rglob("*.py")
        if "tests" not in path.parts and path != allowed
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
