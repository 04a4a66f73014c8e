"""Suite-wide test rules: PostgreSQL-only tests, the CI rule that nothing skips silently, the
test clock and the committed query-count baselines."""

import fcntl
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command

# Every test runs on a clock that starts at this instant and ticks from there, never on
# today's date. CI runs the suite a second time with HITL_TEST_NOW a year ahead of the real
# date, so a test that builds a fixed date and then acts on the real clock fails at once.
DEFAULT_TEST_NOW = "2031-03-14 09:00:00+00:00"


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
def _fresh_rate_limits(settings):
    # Every test starts at the same instant: one test's requests must not use another's
    # rate. In the process, even where REDIS_URL is set; tests of Redis ask for it.
    from hitl import ratelimit

    settings.HITL_RATE_LIMIT_REDIS_URL = ""
    ratelimit.reset()
    yield
    ratelimit.reset()


REDIS_TESTS = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def redis_url():
    """The machine's Redis (its database 15, so nothing else's keys are touched) if it
    answers, else one started for the tests (port 8167)."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_TESTS, socket_timeout=1).ping()
    except redis.RedisError:
        pass
    else:
        yield REDIS_TESTS
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis at 127.0.0.1:6379 and no redis-server to start")
    options = ["--port", "8167", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([binary, *options], stdout=subprocess.DEVNULL)  # noqa: S603
    url = "redis://127.0.0.1:8167/0"
    try:
        for _ in range(50):
            try:
                redis.Redis.from_url(url, socket_timeout=1).ping()
                break
            except redis.RedisError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(autouse=True)
def _fresh_catalogue_cache():
    # Each test has its own database state; a catalogue entry cached by another must not leak.
    from policies.selectors import forget_catalogue

    forget_catalogue()
    yield
    forget_catalogue()


@pytest.fixture(autouse=True)
def _own_fake_systems(tmp_path, monkeypatch):
    # The example's fake payment ledger and directory are files; each test starts from the
    # seeded ones, never from what an earlier test (or the demo) refunded.
    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(tmp_path / "fake-payments.json"))
    monkeypatch.setenv("HITL_FAKE_DIRECTORY_FILE", str(tmp_path / "fake-directory.json"))


@pytest.fixture
def browser_page(request, live_server, transactional_db, monkeypatch):
    """A Chromium page on the live server with the demo seeded: (page, base_url)."""
    from hitl.tests.browser import ARTIFACTS, CHROMIUM, HEIGHT, LAUNCH_ARGS, WIDTH

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between page actions are plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    history = [] if request.node.get_closest_marker("full_demo") else ["--history", "0"]
    call_command("seed_demo", "--force", *history, stdout=io.StringIO())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        context = browser.new_context(
            viewport={"width": WIDTH, "height": HEIGHT}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page, live_server.url
        browser.close()


def clock_start() -> datetime:
    """The instant every test's clock starts at (HITL_TEST_NOW, ISO 8601 with an offset)."""
    raw = os.environ.get("HITL_TEST_NOW") or DEFAULT_TEST_NOW
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        raise pytest.UsageError(f"HITL_TEST_NOW needs a UTC offset: {raw!r}")
    return moment


@pytest.fixture(autouse=True)
def clock(request):
    """The test's clock (a time_machine traveller: `clock.shift(timedelta(...))`)."""
    # Tests that share the clock with another process (a browser, a worker, an agent run as
    # a subprocess) cannot move it: they carry `real_clock` and use only relative times.
    if "real_clock" in request.keywords:
        yield None
        return
    with time_machine.travel(clock_start(), tick=True) as traveller:
        yield traveller


# --- query-count baselines ---------------------------------------------------------------

QUERY_COUNTS = Path(__file__).parent / "hitl" / "tests" / "query_counts.json"
UPDATE_QUERY_COUNTS = "HITL_UPDATE_QUERY_COUNTS"


def _record_query_count(vendor: str, name: str, count: int) -> None:
    # Read, merge and write under a lock: a SQLite and a PostgreSQL run may rewrite at once.
    with open(Path(tempfile.gettempdir()) / "hitl-query-counts.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counts = json.loads(QUERY_COUNTS.read_text()) if QUERY_COUNTS.exists() else {}
        counts.setdefault(vendor, {})[name] = count
        text = json.dumps(counts, indent=2, sort_keys=True) + "\n"
        scratch = QUERY_COUNTS.with_suffix(".tmp")
        scratch.write_text(text)
        scratch.replace(QUERY_COUNTS)


@pytest.fixture
def query_baseline(request):
    """`with query_baseline("admin:app_model_changelist"):` counts the queries of the block
    and fails unless they are as many as hitl/tests/query_counts.json says for this
    database; with HITL_UPDATE_QUERY_COUNTS=1 it records the count there instead."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    @contextmanager
    def baseline(name: str):
        vendor = connection.vendor
        with CaptureQueriesContext(connection) as captured:
            yield captured
        count = len(captured.captured_queries)
        if os.environ.get(UPDATE_QUERY_COUNTS) == "1":
            _record_query_count(vendor, name, count)
            return
        committed = json.loads(QUERY_COUNTS.read_text()) if QUERY_COUNTS.exists() else {}
        expected = committed.get(vendor, {}).get(name)
        if expected == count:
            return
        database = "" if vendor == "sqlite" else " with DATABASE_URL=postgres://... --create-db"
        rewrite = f"{UPDATE_QUERY_COUNTS}=1 pytest '{request.node.nodeid}'{database}"
        queries = "\n".join(
            f"{n}. {q['sql']}" for n, q in enumerate(captured.captured_queries, start=1)
        )
        if expected is None:
            pytest.fail(
                f"{name}: {count} queries on {vendor}, and {QUERY_COUNTS.name} has no "
                f"baseline for it; record one with {rewrite}.\n{queries}"
            )
        pytest.fail(
            f"{name}: {count} queries on {vendor}, the baseline in {QUERY_COUNTS.name} says "
            f"{expected}. If the change is intended, rewrite the baseline with {rewrite} "
            f"and commit the file.\n{queries}"
        )

    return baseline
