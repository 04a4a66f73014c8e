"""Export memory: peak Python memory while streaming a dataset version, at two sizes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench python -m bench.export [--quick]

Creates a frozen version of N synthetic cases inside a transaction that is rolled back, so
the database is left as it was. Prints one JSON line per size and the ratio of the peaks:
a constant-memory export has a ratio near 1 however large N grows.
"""

import argparse
import json
import os
import time
import tracemalloc


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def measure(n: int) -> dict:
    from django.db import connection, transaction

    from evaluation.models import Dataset, DatasetItem, DatasetVersion, EvalCase
    from evaluation.selectors import export_lines

    with transaction.atomic():
        case = EvalCase.objects.create(
            review_id="bench", run_id="bench", action_name="issue_refund", label="reject"
        )
        dataset = Dataset.objects.create(slug=f"bench-{n}", name="bench")
        version = DatasetVersion.objects.create(dataset=dataset, number=1, case_count=n)
        record = {
            "id": "case",
            "input": {"summary": "Refund a broken mug " * 5, "arguments": {"amount": "20.00"}},
            "proposal": {"action": "issue_refund", "arguments": {"amount": "20.00"}},
            "label": "reject",
            "reason": "Outside the refund window",
            "expected": {"decision": "reject"},
            "provenance": {"review_id": "x" * 26, "run_id": "run", "reviewer": "rita"},
        }
        batch = []
        for position in range(n):
            batch.append(DatasetItem(version=version, case=case, position=position, record=record))
            if len(batch) == 5000:
                DatasetItem.objects.bulk_create(batch)
                batch = []
        DatasetItem.objects.bulk_create(batch)
        tracemalloc.start()
        started = time.perf_counter()
        count = 0
        with open(os.devnull, "w") as sink:
            for line in export_lines(version=version):
                sink.write(line)
                count += 1
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        transaction.set_rollback(True)
    return {
        "bench": "export-memory",
        "n": count,
        "peak_kib": round(peak / 1024),
        "rows_per_s": round(count / seconds),
        "db": connection.vendor,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10k and 50k instead of 100k/1M")
    options = parser.parse_args(argv)
    setup_django()
    small, large = (10_000, 50_000) if options.quick else (100_000, 1_000_000)
    first, second = measure(small), measure(large)
    for row in (first, second):
        print(json.dumps(row))
    ratio = second["peak_kib"] / max(first["peak_kib"], 1)
    print(json.dumps({"bench": "export-memory-ratio", "ratio": round(ratio, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
