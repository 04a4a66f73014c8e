"""The smoke test's driver: an agent and two reviewers work the deployed product over HTTP.

scripts/smoke.sh prepares a fresh PostgreSQL database, seeds the demo, starts gunicorn and
the django-q2 worker, then runs this file. Everything the agent and the reviewers do goes
over HTTP, as a TLS-terminating proxy would forward it (`X-Forwarded-Proto: https`, the
server runs with DEBUG off). `manage.py shell` is used only to set up what has no HTTP
entry point (a queue's timings, the worker's schedule) and to read what the worker left in
the database (evaluation cases, reminders, django-q2 tasks). Standard library only: the
harness is smoke_http.py, the checks smoke_api.py (over the API), smoke_worker.py (what
the worker did) and smoke_frameworks.py (the LangChain and OpenAI Agents SDK examples).

Exits 1 with `FAIL: ...` on the first check that does not hold.
"""

import os
import sys
import time
import traceback

from smoke_api import (
    check_access,
    check_execution,
    check_resume,
    decide_all,
    propose_all,
    register_agent,
)
from smoke_frameworks import check_frameworks
from smoke_http import WAIT, CheckFailed, Webhooks, passed
from smoke_worker import (
    check_capture,
    check_executor,
    check_expiry,
    check_no_failures,
    check_reminders,
    check_sweeps,
    check_webhooks,
    wake_sweeps,
)


def run() -> None:
    """The scenario: over HTTP first, then what the worker does on its own."""
    hooks = Webhooks()
    agent, secret = register_agent(hooks.url)
    reviews = propose_all(agent)
    reviewer = check_access(agent, reviews["email"])
    decide_all(reviewer, reviews)
    check_resume(agent, reviews)
    check_execution(agent, reviews["email"])

    deadline = wake_sweeps(reviews["expiring"])
    check_executor(agent, reviews["refund"], deadline)
    check_capture(reviews["draft"], reviews["delete"], deadline)
    check_expiry(agent, reviews["expiring"], deadline)
    check_reminders(reviews["remind"], deadline)
    check_sweeps()
    check_webhooks(hooks, secret, reviews, deadline)
    check_frameworks(reviewer, time.monotonic() + WAIT)
    check_no_failures()


def main() -> int:
    started = time.monotonic()
    try:
        run()
    except Exception as exc:
        if isinstance(exc, CheckFailed):
            message = str(exc)
        else:
            # An answer of an unexpected shape is a failed check too, not a driver crash.
            traceback.print_exc()
            message = f"unexpected {type(exc).__name__} in the driver: {exc}"
        message += f"\n({len(passed)} checks passed before this one)"
        print(f"\nFAIL: {message}", flush=True)
        if os.environ.get("SMOKE_FAILURE_FILE"):
            with open(os.environ["SMOKE_FAILURE_FILE"], "w") as out:
                out.write(message)
        return 1
    print(f"\nSmoke passed: {len(passed)} checks in {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
