"""Real concurrency for PostgreSQL tests: threads, each on its own connection."""

import threading

from django.db import connection


def run_together(workers):
    """Start every worker at the same instant; return each one's result or exception."""
    barrier = threading.Barrier(len(workers))
    results = [None] * len(workers)

    def run(index, work):
        try:
            barrier.wait()
            results[index] = work()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
