"""What every benchmark shares: a PostgreSQL database of its own, Django, one JSON line."""

import json
import os
import statistics
import time

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hitl_bench"


def database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)


def setup_django() -> None:
    """Point Django at the benchmark database (created if missing) and migrate it."""
    url = database_url()
    if not url.startswith("postgres"):
        raise SystemExit("The benchmarks run on PostgreSQL: set BENCH_DATABASE_URL=postgres://...")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DEBUG", "0")
    _create_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _create_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def best_of(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
