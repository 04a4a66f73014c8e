"""python -m bench [--quick] [--only B3]: every benchmark as a ratio to its raw baseline.

The benchmarks run on PostgreSQL, in their own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/hitl_bench, created when missing). Each prints one JSON
line per measurement.
"""

import argparse
import os

SIZES = {
    # bench: (quick, full)
    "B1": (2_000, 10_000),
    "B3": (100_000, 1_000_000),
    "B4": (10_000, 100_000),
    "B5": (100_000, 1_000_000),
    "B6": (100_000, 1_000_000),
    "B7": (20_000, 100_000),
    "B8": (100_000, 1_000_000),
}


ALL = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--only", choices=list(ALL))
    options = parser.parse_args(argv)
    chosen = [options.only] if options.only else list(ALL)
    index = 0 if options.quick else 1
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    if "B2" in chosen:
        from . import policy

        policy.main(["--quick"] if options.quick else [])
    if any(b in chosen for b in ("B1", "B3", "B4", "B5", "B6", "B7", "B8")):
        from .common import setup_django

        setup_django()
    repeats = 3 if options.quick else 7
    if "B1" in chosen:
        from . import ingest

        ingest.run(n=SIZES["B1"][index])
    if "B3" in chosen:
        from . import inbox

        inbox.run(n=SIZES["B3"][index], repeats=repeats)
    if "B4" in chosen:
        from . import expiry

        expiry.run(n=SIZES["B4"][index])
    if "B5" in chosen:
        from . import export

        export.run(n=SIZES["B5"][index])
    if "B6" in chosen:
        from . import metrics

        metrics.run(n=SIZES["B6"][index])
    if "B7" in chosen:
        from . import local_decisions

        local_decisions.run(n=SIZES["B7"][index])
    if "B8" in chosen:
        from . import retention

        retention.run(n=SIZES["B8"][index])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
