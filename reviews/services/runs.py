"""A run's own writes: paused or resumed by its proposals, its calls, its checkpoint, its end."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from hitl.db import for_update
from hitl.kernel import Actor
from hitl.kernel.history import insert_with_history

from ..exceptions import CheckpointConflict, InvalidReviewInput, NotAuthorized, RunHasOpenReviews
from ..models import OPEN_STATES, Agent, AgentRun, ReviewRequest, RunCall, RunStatus
from ._common import full_clean_or_refuse, stamp, summarise
from .lifecycle import cancel_locked

FINISHED = (RunStatus.COMPLETED, RunStatus.STOPPED)


def run_lock(**options: Any) -> AgentRun:
    """The run, locked, for a proposal (see `run_lock_or_create`)."""
    return run_lock_or_create(**options)[0]


def run_lock_or_create(
    *,
    run_id: str,
    agent: Agent,
    tenant: str,
    thread_id: str,
    versions: Mapping[str, str],
    actor: Actor,
    reason: str,
    pending_tool_call: Mapping[str, Any] | None = None,
    checkpoint: Mapping[str, Any] | None = None,
) -> tuple[AgentRun, bool]:
    """The run, locked, for a proposal: paused for a review when `pending_tool_call` is
    given, running again otherwise, and with a new checkpoint (its version raised) when
    one is given. A run's first proposal creates it so, in one write; True when this
    call created it (nothing else is in it yet)."""
    run = AgentRun(
        run_id=run_id,
        agent=agent,
        tenant=tenant,
        thread_id=thread_id,
        agent_version=versions.get("agent", ""),
        model_version=versions.get("model", ""),
        prompt_version=versions.get("prompt", ""),
    )
    _apply(run, pending_tool_call, checkpoint)
    try:
        # The agent is the authenticated one: no need to look it up again.
        full_clean_or_refuse(run, validate_unique=False, exclude=["agent"])
    except InvalidReviewInput:
        # Only a new run is refused for them: an existing one keeps what it has.
        existing = for_update(AgentRun.objects.all()).filter(run_id=run_id).first()
        if existing is None:
            raise
        run = existing
    else:
        # One statement (on PostgreSQL, with its history row); a run_id that is taken is
        # no error, so no savepoint and no read first; the same run's first proposal
        # arriving twice at once waits for the other's transaction, then finds its run.
        started = f"run started, {reason}"
        if insert_with_history([run], actor=actor, reason=started, unless_taken="run_id"):
            return run, True
        # The run exists (or its first proposal, arriving twice at once, just created it).
        run = for_update(AgentRun.objects.all()).get(run_id=run_id)
    if run.agent_id != agent.pk or run.tenant != tenant:
        # A run id is the agent's own; another agent or tenant never writes into it.
        raise InvalidReviewInput(
            f"run {run_id} belongs to another agent or tenant.",
            field_errors={"run_id": ["This run belongs to another agent or tenant."]},
        )
    if run.status in (*FINISHED, RunStatus.HANDED_OVER):
        raise InvalidReviewInput(
            f"run {run_id} is {run.status}; start a new run.",
            field_errors={"run_id": [f"This run is {run.status}."]},
        )
    if _apply(run, pending_tool_call, checkpoint):
        stamp(run, actor, reason)
        run.save()
    return run, False


def _apply(
    run: AgentRun, pending_tool_call: Mapping[str, Any] | None, checkpoint: Mapping[str, Any] | None
) -> bool:
    """Set what a proposal changes on the run; whether anything changed."""
    before = (run.status, run.pending_tool_call, run.checkpoint_version)
    if pending_tool_call is not None:
        run.status = RunStatus.WAITING
        run.pending_tool_call = dict(pending_tool_call)
    elif run.status == RunStatus.RESUMABLE:
        # The agent resumed and proposes again: nothing of the run waits any more.
        run.status = RunStatus.RUNNING
    if checkpoint is not None:
        run.checkpoint = dict(checkpoint)
        run.checkpoint_version += 1
    return (run.status, run.pending_tool_call, run.checkpoint_version) != before


def calls_record(
    *, run: AgentRun, calls: list[RunCall], actor: Actor, paths: list[str] | None = None
) -> list[RunCall]:
    """Record the calls of one proposal in the run the caller locked (with their history),
    refusing a tool_call_id used twice in the run; `paths` name each call in the request
    (for the field errors)."""
    paths = paths or [f"calls[{index}]" for index in range(len(calls))]
    ids = [call.tool_call_id for call in calls if call.tool_call_id]
    used = (
        set(
            RunCall.objects.filter(run=run, tool_call_id__in=ids).values_list(
                "tool_call_id", flat=True
            )
        )
        if ids
        else set()
    )
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    for path, call in zip(paths, calls, strict=True):
        if call.tool_call_id in used or call.tool_call_id in seen:
            errors[f"{path}.tool_call_id"] = [
                f"The run already has a call {call.tool_call_id!r}; ids are unique in a run."
            ]
        if call.tool_call_id:
            seen.add(call.tool_call_id)
    if errors:
        raise InvalidReviewInput(summarise(errors), field_errors=errors)
    for call in calls:
        call.run = run
    return insert_with_history(calls, actor=actor, reason="proposed")


def checkpoint_save(
    *, run_id: str, agent: Agent, checkpoint: Mapping[str, Any], version: int
) -> AgentRun:
    """Replace the run's checkpoint if it is still at `version` (the one the agent read),
    raising its version; a stale version is refused with the current one."""
    if not isinstance(checkpoint, Mapping):
        raise InvalidReviewInput(
            "checkpoint must be a JSON object.",
            field_errors={"checkpoint": ["Must be a JSON object."]},
        )
    actor = Actor.of_agent(agent)
    with transaction.atomic(durable=True):
        run = _lock_own(run_id, agent)
        if version != run.checkpoint_version:
            raise CheckpointConflict(
                f"The checkpoint is at version {run.checkpoint_version}, not {version}: "
                "another process saved it. Read the run again before saving.",
                field_errors={"version": [f"The current version is {run.checkpoint_version}."]},
                extra={"checkpoint_version": run.checkpoint_version},
            )
        run.checkpoint = dict(checkpoint)
        run.checkpoint_version += 1
        stamp(run, actor, f"checkpoint saved (version {run.checkpoint_version})")
        run.save()
    return run


def run_finish(
    *, run_id: str, agent: Agent, outcome: str = RunStatus.COMPLETED, cancel_open: bool = False
) -> AgentRun:
    """End the run (completed or stopped): later proposals on it are refused. Its open
    reviews are cancelled with it if `cancel_open`, else they keep it from ending. A run
    that has ended already is left as it is."""
    if outcome not in FINISHED:
        raise InvalidReviewInput(
            f"outcome must be one of {', '.join(FINISHED)}.",
            field_errors={"outcome": [f"One of: {', '.join(FINISHED)}."]},
        )
    actor = Actor.of_agent(agent)
    with transaction.atomic(durable=True):
        # Reviews first, then the run: the order a decision locks them in.
        reviews = _lock_open_reviews(run_id, agent) if cancel_open else []
        run = _lock_own(run_id, agent)
        if run.status in FINISHED:
            return run
        still_open = ReviewRequest.objects.filter(
            run=run, state__in=OPEN_STATES, audit=False
        ).exclude(pk__in=[review.pk for review in reviews])
        open_ids = list(still_open.values_list("review_id", flat=True))
        if open_ids:
            raise RunHasOpenReviews(
                f"The run has {len(open_ids)} open review(s); cancel them with it "
                "(cancel_open) or wait for their decisions.",
                extra={"open_reviews": open_ids},
            )
        for review in reviews:
            cancel_locked(review, actor=actor, reason=f"the run {outcome}")
        run.status = outcome
        stamp(run, actor, f"run {outcome} by its agent")
        run.save()
    return run


def _lock_own(run_id: str, agent: Agent) -> AgentRun:
    run = for_update(AgentRun.objects.all()).filter(run_id=run_id).first()
    if run is None or run.agent_id != agent.pk:
        raise NotAuthorized(f"No run {run_id} of agent {agent.name}.")
    return run


def _lock_open_reviews(run_id: str, agent: Agent) -> Iterable[ReviewRequest]:
    return list(
        for_update(ReviewRequest.objects.all(), of=("self",))
        .select_related("run")
        .filter(run__run_id=run_id, run__agent=agent, state__in=OPEN_STATES, audit=False)
        .order_by("id")
    )
