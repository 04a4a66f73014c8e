"""B5: JSONL export of a frozen dataset version against PostgreSQL's own
`COPY (SELECT record ...) TO STDOUT`, and the export's peak memory at two sizes.

    python -m bench --only B5 [--quick]      (or python -m bench.export [--quick])

Each size is built inside a transaction that is rolled back, so the database is left as it
was. A constant-memory export has a peak ratio near 1 however large N grows.
"""

import argparse
import os
import time
import tracemalloc


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

        def export() -> int:
            count = 0
            with open(os.devnull, "w") as sink:
                for line in export_lines(version=version):
                    sink.write(line)
                    count += 1
            return count

        # Speed and memory in separate passes: tracing every allocation slows Python code
        # (ours) and not the server's COPY (raw), which would skew the ratio.
        started = time.perf_counter()
        count = export()
        seconds = time.perf_counter() - started
        tracemalloc.start()
        export()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        started = time.perf_counter()
        raw_count = 0
        with connection.cursor() as cursor:
            sql = (
                "COPY (SELECT record FROM evaluation_datasetitem WHERE version_id = "  # noqa: S608
                f"{int(version.pk)} ORDER BY position) TO STDOUT"
            )
            with cursor.cursor.copy(sql) as copy, open(os.devnull, "wb") as sink:
                for chunk in copy:
                    sink.write(chunk)
                    raw_count += bytes(chunk).count(b"\n")
        raw_seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return {
        "n": count,
        "ours": round(count / seconds),
        "raw": round(raw_count / raw_seconds),
        "peak_kib": round(peak / 1024),
    }


def run(*, n: int) -> None:
    """Speed at `n` against COPY; peak memory at n/10 and n."""
    from .common import emit

    small, large = measure(n // 10), measure(n)
    emit(
        {
            "bench": "B5",
            "ratio": round(large["ours"] / large["raw"], 3),
            "ours": large["ours"],
            "raw": large["raw"],
            "unit": "rows/s",
            "n": n,
            "peak_kib": large["peak_kib"],
            "peak_kib_at_n_over_10": small["peak_kib"],
            "memory_ratio": round(large["peak_kib"] / max(small["peak_kib"], 1), 2),
        }
    )


def main(argv=None) -> int:
    from .common import setup_django

    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k instead of 1M")
    options = parser.parse_args(argv)
    setup_django()
    run(n=100_000 if options.quick else 1_000_000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
