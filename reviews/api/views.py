"""The agent and reviewer API. Views parse and answer; services do the work."""

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from hitl.kernel import Actor

from .. import selectors
from ..models import Agent, AgentRun, ExecutionState
from ..selectors import execution_summary, resume_instruction, reviews_visible_to, sees_whole_run
from ..services import review_cancel, review_decide, review_supply_evidence
from ..services.execution import execution_claim, execution_report
from ..services.proposals import ProposalResult, action_propose, fingerprint, idempotent_call
from ..services.runs import checkpoint_save, run_finish
from . import serializers as s
from .errors import reject_unstorable_json
from .fastpath import validated
from .permissions import IsAgent, IsAgentOrReviewer, IsReviewer

ERRORS = {
    400: OpenApiResponse(s.ErrorOut, description="Invalid input, with field errors"),
    401: OpenApiResponse(s.ErrorOut, description="Not authenticated"),
    403: OpenApiResponse(s.ErrorOut, description="Not allowed"),
    404: OpenApiResponse(s.ErrorOut, description="Unknown, or not yours"),
    409: OpenApiResponse(s.ErrorOut, description="Conflicts with the review's state"),
    413: OpenApiResponse(s.ErrorOut, description="Body over HITL_MAX_BODY_BYTES"),
    415: OpenApiResponse(s.ErrorOut, description="Not application/json"),
    429: OpenApiResponse(s.ErrorOut, description="Too many requests from this agent"),
}


def visible_reviews(request):
    if isinstance(request.user, Agent):
        return selectors.packet_queryset().filter(run__agent=request.user)
    return reviews_visible_to(user=request.user, queryset=selectors.packet_queryset())


def packet(review_id: str, request, *, for_person: bool = False) -> dict:
    review = get_object_or_404(visible_reviews(request), review_id=review_id)
    person = request.user if for_person and not isinstance(request.user, Agent) else None
    return s.ReviewPacketOut(review, context={"person": person}).data


def parse(serializer_class, request):
    reject_unstorable_json(request.data)
    return validated(serializer_class, request.data)


def parse_query(serializer_class, request):
    return validated(serializer_class, request.query_params)


PROPOSAL_ANSWER = PolymorphicProxySerializer(
    component_name="ProposalAnswer",
    serializers=[s.ProposalOut, s.RunOut],
    resource_type_field_name=None,
)


class ActionsView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="propose_action",
        request=s.ProposalIn,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^\S(.*\S)?$"},
                OpenApiParameter.HEADER,
                description="A retried POST with the same key returns the first answer.",
            )
        ],
        responses={200: PROPOSAL_ANSWER, 201: PROPOSAL_ANSWER, 422: s.ErrorOut, **ERRORS},
    )
    def post(self, request):
        """Propose a tool call (`action`) or a batch of them (`actions`): the policy decides
        each; a review opens for each a person must judge. One action is answered with its
        outcome, review and run; a batch with the run, as GET /runs/<id>/ answers it."""
        agent = request.user

        def produce():
            data = parse(s.ProposalIn, request)
            result = action_propose(agent=agent, proposal=data)
            run = proposal_run_answer(result, request)
            opened = any(call.review is not None for call in result.calls)
            if "actions" in data:
                return (201 if opened else 200), run
            packets = {packet["review_id"]: packet for packet in run["reviews"]}
            body = {
                "outcome": result.outcome,
                # The run lists the same packet: built once, shown twice.
                "review": packets[result.review.review_id] if result.review else None,
                "execution": None,
                "policy": result.decision.to_dict(),
                "run": run,
            }
            return (201 if opened else 200), body

        key = request.headers.get("Idempotency-Key")
        if key is None:
            code, body = produce()
            return Response(body, status=code)

        def stored():
            code, body = produce()
            return code, _jsonable(body)

        code, body, replayed = idempotent_call(
            actor=Actor.of_agent(agent),
            key=key,
            body_fingerprint=fingerprint(request.data),
            produce=stored,
        )
        return Response(body, status=code, headers={"Idempotent-Replayed": str(replayed).lower()})


class ReviewDetailView(APIView):
    permission_classes = [IsAgentOrReviewer]

    @extend_schema(operation_id="get_review", responses={200: s.ReviewPacketOut, **ERRORS})
    def get(self, request, review_id):
        """One review packet, with its decisions and what the agent should do next; for a
        person, also which choices they may take now and why not the others."""
        return Response(packet(review_id, request, for_person=True))


class ReviewEvidenceView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="supply_evidence",
        request=s.EvidenceSupplyIn,
        responses={200: s.ReviewPacketOut, **ERRORS},
    )
    def post(self, request, review_id):
        """Answer a reviewer's request for more evidence; the review goes back to pending."""
        get_object_or_404(visible_reviews(request), review_id=review_id)
        data = parse(s.EvidenceSupplyIn, request)
        review_supply_evidence(
            review_id=review_id,
            actor=Actor.of_agent(request.user),
            evidence=data["evidence"],
            note=data["note"],
        )
        return Response(packet(review_id, request))


class ReviewCancelView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="cancel_review",
        request=s.ReasonIn,
        responses={200: s.ReviewPacketOut, **ERRORS},
    )
    def post(self, request, review_id):
        """Withdraw the proposal: the review closes without a decision."""
        get_object_or_404(visible_reviews(request), review_id=review_id)
        data = parse(s.ReasonIn, request)
        review_cancel(
            review_id=review_id, actor=Actor.of_agent(request.user), reason=data["reason"]
        )
        return Response(packet(review_id, request))


class ReviewDecisionsView(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(
        operation_id="decide_review",
        request=s.DecisionIn,
        responses={201: s.ReviewPacketOut, **ERRORS},
    )
    def post(self, request, review_id):
        """Decide a review as a signed-in reviewer (session and CSRF), like the admin does."""
        get_object_or_404(visible_reviews(request), review_id=review_id)
        data = parse(s.DecisionIn, request)
        review_decide(
            review_id=review_id,
            reviewer=request.user,
            choice=data["choice"],
            reason=data["reason"],
            arguments=data.get("arguments"),
            content=data.get("content"),
            opened_at=data.get("opened_at"),
        )
        return Response(packet(review_id, request), status=status.HTTP_201_CREATED)


class ExecutionClaimView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="claim_execution",
        request=s.ClaimIn,
        responses={200: s.ExecutionOut, **ERRORS},
    )
    def post(self, request, review_id):
        """Claim the approved action to run it yourself; re-validated first, granted once.
        Send the current version of every affected resource the review lists (resume's
        `claim_requires`): without them the answer is 400 and nothing is claimed. A stale
        review answers 409 `blocked_stale` with the failed checks and the next step, and
        must not be executed. A review that is not approved answers 409 with its state
        (review_pending, review_rejected, review_expired, ...)."""
        review = get_object_or_404(visible_reviews(request), review_id=review_id)
        data = parse(s.ClaimIn, request)
        execution = execution_claim(
            review_id=review_id,
            actor=Actor.of_agent(request.user),
            facts=data.get("facts"),
            resources=data.get("affected_resources"),
        )
        summary = execution_summary(execution)
        if execution.state == ExecutionState.BLOCKED_STALE:
            review.refresh_from_db()
            next_step = summary["next_step"] or {}
            detail = (
                "Not executed, the review is stale: "
                + "; ".join(execution.blocked_reasons)
                + ". "
                + next_step.get("detail", "")
            ).strip()
            body = {
                "error": "blocked_stale",
                "detail": detail,
                "fields": {},
                "checks": summary["blocked_checks"],
                "next": summary["next_step"],
                "execution": summary,
                "resume": resume_instruction(review),
            }
            return Response(_jsonable(body), status=status.HTTP_409_CONFLICT)
        return Response(_jsonable(summary))


class ExecutionReportView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="report_execution",
        request=s.ReportIn,
        responses={200: s.ExecutionOut, **ERRORS},
    )
    def post(self, request, review_id):
        """Report how the claimed execution ended."""
        get_object_or_404(visible_reviews(request), review_id=review_id)
        data = parse(s.ReportIn, request)
        execution = execution_report(
            review_id=review_id,
            actor=Actor.of_agent(request.user),
            succeeded=data["outcome"] == "succeeded",
            result=data["result"],
            error=data["error"],
        )
        return Response(_jsonable(execution_summary(execution)))


def visible_runs(request):
    runs = AgentRun.objects.select_related("agent")
    if isinstance(request.user, Agent):
        # An agent sees its own runs only; people see a run through its reviews.
        runs = runs.filter(agent=request.user)
    return runs


def run_answer(run: AgentRun, request) -> dict:
    """The run as GET /runs/<id>/ answers it: the calls and the packets of its reviews the
    reader may see (Http404 for a person who may see none of them)."""
    reviews = list(visible_reviews(request).filter(run=run).order_by("created_at", "id"))
    is_agent = isinstance(request.user, Agent)
    if not is_agent and not reviews:
        raise Http404
    whole = is_agent or sees_whole_run(user=request.user, run=run)
    return _run_with_packets(run, reviews, whole=whole)


def proposal_run_answer(result: ProposalResult, request) -> dict:
    """`run_answer` for the agent that just proposed: a run its proposal created holds
    only what the proposal wrote, so its reviews are the ones in hand, not read back."""
    if not result.new_run:
        return run_answer(result.run, request)
    # Its calls too: the ones just written, in order.
    calls = [call.call for call in result.calls]
    return _run_with_packets(result.run, list(result.opened), whole=True, calls=calls)


def _run_with_packets(run: AgentRun, reviews: list, *, whole: bool, calls=None) -> dict:
    body = selectors.run_body(run, reviews=reviews, whole=whole, calls=calls)
    body["reviews"] = s.ReviewPacketOut(reviews, many=True).data
    return body


class RunDetailView(APIView):
    permission_classes = [IsAgentOrReviewer]

    @extend_schema(
        operation_id="get_run",
        parameters=[
            OpenApiParameter(
                "wait",
                float,
                OpenApiParameter.QUERY,
                description=f"Wait up to this many seconds (0 to {s.MAX_WAIT_SECONDS}) for "
                "the run to stop waiting for people: answered as soon as it is resumable or "
                "no longer waiting, else after the time with the run as it is.",
            )
        ],
        responses={200: s.RunOut, **ERRORS},
    )
    def get(self, request, run_id):
        """Everything a restarted agent needs to resume: checkpoint, each call with its
        decision, reviews, instructions."""
        wait = parse_query(s.RunWaitIn, request)["wait"]
        run = get_object_or_404(visible_runs(request), run_id=run_id)
        if wait:
            person = not isinstance(request.user, Agent)
            if person and not visible_reviews(request).filter(run=run).exists():
                raise Http404  # nobody waits on a run they may not see
            run = selectors.run_wait(run, seconds=wait)
        return Response(run_answer(run, request))


class RunCheckpointView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="save_checkpoint",
        request=s.CheckpointIn,
        responses={200: s.CheckpointOut, **ERRORS},
    )
    def put(self, request, run_id):
        """Replace the run's checkpoint if it is still at `version` (the checkpoint_version
        you read); a stale version answers 409 checkpoint_conflict with the current one."""
        get_object_or_404(visible_runs(request), run_id=run_id)
        data = parse(s.CheckpointIn, request)
        run = checkpoint_save(
            run_id=run_id,
            agent=request.user,
            checkpoint=data["checkpoint"],
            version=data["version"],
        )
        return Response({"checkpoint_version": run.checkpoint_version})


class RunFinishView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="finish_run",
        request=s.FinishIn,
        responses={200: s.RunOut, **ERRORS},
    )
    def post(self, request, run_id):
        """End the run (completed, or stopped): later proposals on it are refused. A run with
        open reviews answers 409 run_has_open_reviews unless `cancel_open` cancels them."""
        get_object_or_404(visible_runs(request), run_id=run_id)
        data = parse(s.FinishIn, request)
        run = run_finish(
            run_id=run_id,
            agent=request.user,
            outcome=data["outcome"],
            cancel_open=data["cancel_open"],
        )
        return Response(run_answer(run, request))


def _jsonable(data):
    # Idempotent answers are stored as JSON; render once so replays are byte-identical.
    import json

    from rest_framework.utils.encoders import JSONEncoder

    return json.loads(json.dumps(data, cls=JSONEncoder))
