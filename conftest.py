"""Suite-wide test rules: PostgreSQL-only tests and the CI rule that nothing skips silently."""

import os

import pytest
from django.conf import settings


def _on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_collection_modifyitems(config, items):
    if _on_postgres():
        return
    skip = pytest.mark.skip(reason="postgres: needs PostgreSQL, set DATABASE_URL=postgres://...")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def _allowed_skips() -> set[str] | None:
    # HITL_ALLOWED_SKIPS unset: skips are fine (a developer's machine). Set (even empty):
    # only tests carrying one of the listed markers may skip; any other skip fails the run.
    raw = os.environ.get("HITL_ALLOWED_SKIPS")
    if raw is None:
        return None
    return {m.strip() for m in raw.split(",") if m.strip()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    allowed = _allowed_skips()
    if allowed is None or not report.skipped or hasattr(report, "wasxfail"):
        return
    if any(marker in item.keywords for marker in allowed):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"Skipped where skips are not allowed (HITL_ALLOWED_SKIPS): {reason}"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness protects real passwords, not test users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_catalogue_cache():
    # Each test has its own database state; a catalogue entry cached by another must not leak.
    from policies.selectors import forget_catalogue

    forget_catalogue()
    yield
    forget_catalogue()
