"""B1's peer: LangGraph's own durable pause, the framework a user would pick instead of the
platform. A graph whose node calls `interrupt()` with a proposal-like payload, compiled with
LangGraph's PostgreSQL checkpointer on a database of its own, invoked from 8 threads in one
process, each invocation a new thread: pauses/s, each counted once its invoke returned the
interrupt (checkpointed, committed)."""

import json
import threading
import time
import uuid
from contextlib import contextmanager
from typing import TypedDict

from .common import _create_database, database_url

THREADS = 8


class State(TypedDict, total=False):
    proposal: dict
    decision: dict


def _propose(state: State) -> State:
    from langgraph.types import interrupt

    # What the platform's review packet carries: the call, its summary, evidence, versions.
    decision = interrupt({"kind": "approval", "review": state["proposal"]})
    return {"decision": decision}


def peer_url() -> str:
    """The bench database's server, a database of the peer's own (`<bench db>_peer`)."""
    return database_url() + "_peer"


def graph(saver):
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(State)
    builder.add_node("propose", _propose)
    builder.add_edge(START, "propose")
    builder.add_edge("propose", END)
    return builder.compile(checkpointer=saver)


@contextmanager
def pausing(proposal):
    """A `pauses(count) -> seconds` function: `count` invocations from 8 threads, each a
    new thread_id; `proposal(i)` gives the JSON body bytes B1 posts, so both sides carry
    the same payload. The pool, the tables and one warm-up invocation are ready first."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    url = peer_url()
    _create_database(url)
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    with ConnectionPool(url, min_size=THREADS, max_size=THREADS, kwargs=kwargs) as pool:
        saver = PostgresSaver(pool)
        saver.setup()
        app = graph(saver)
        app.invoke({"proposal": json.loads(proposal(0))}, {"configurable": {"thread_id": "w"}})

        def pauses(count: int) -> float:
            failures: list[str] = []

            def worker(index: int, per: int) -> None:
                for i in range(per):
                    config = {"configurable": {"thread_id": f"peer-{uuid.uuid4()}"}}
                    body = json.loads(proposal(index * 1_000_000 + i))
                    out = app.invoke({"proposal": body}, config)
                    if "__interrupt__" not in out:
                        failures.append(repr(out)[:300])
                        return

            per = count // THREADS
            started = time.perf_counter()
            threads = [threading.Thread(target=worker, args=(c, per)) for c in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if failures:
                raise SystemExit(f"B1 peer: an invoke did not pause: {failures[0]}")
            return time.perf_counter() - started

        yield pauses
