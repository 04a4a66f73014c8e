"""The agent and reviewer API. Views parse and answer; services do the work."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from hitl.kernel import Actor

from .. import selectors
from ..models import Agent, AgentRun, ExecutionState, ReviewState
from ..selectors import execution_summary, resume_instruction, reviews_visible_to, sees_whole_run
from ..services import review_cancel, review_decide, review_supply_evidence
from ..services.execution import execution_claim, execution_report
from ..services.proposals import action_propose, fingerprint, idempotent_call
from . import serializers as s
from .errors import reject_unstorable_json
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
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


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
        responses={200: s.ProposalOut, 201: s.ProposalOut, 422: s.ErrorOut, **ERRORS},
    )
    def post(self, request):
        """Propose an action: the policy decides; a review opens if a person must judge."""
        agent = request.user

        def produce():
            data = parse(s.ProposalIn, request)
            result = action_propose(agent=agent, proposal=data)
            body = {
                "outcome": result.outcome,
                "review": s.ReviewPacketOut(result.review).data if result.review else None,
                "execution": None,
                "policy": result.decision.to_dict(),
            }
            return (201 if result.review else 200), _jsonable(body)

        key = request.headers.get("Idempotency-Key")
        if key is None:
            code, body = produce()
            return Response(body, status=code)
        code, body, replayed = idempotent_call(
            actor=Actor.of_agent(agent),
            key=key,
            body_fingerprint=fingerprint(request.data),
            produce=produce,
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


class RunDetailView(APIView):
    permission_classes = [IsAgentOrReviewer]

    @extend_schema(operation_id="get_run", responses={200: s.RunOut, **ERRORS})
    def get(self, request, run_id):
        """Everything a restarted agent needs to resume: checkpoint, reviews, instructions."""
        runs = AgentRun.objects.select_related("agent")
        if isinstance(request.user, Agent):
            runs = runs.filter(agent=request.user)
        run = get_object_or_404(runs, run_id=run_id)
        reviews = visible_reviews(request).filter(run=run).order_by("created_at", "id")
        if not isinstance(request.user, Agent) and not reviews.exists():
            return Response({"error": "not_found", "detail": "Not found.", "fields": {}}, 404)
        packets = s.ReviewPacketOut(reviews, many=True).data
        whole = isinstance(request.user, Agent) or sees_whole_run(user=request.user, run=run)
        body = {
            "run_id": run.run_id,
            "thread_id": run.thread_id,
            "agent": run.agent.name,
            "status": run.status,
            # People see the run's private state only if they may see all of its reviews.
            "checkpoint": run.checkpoint if whole else {},
            "pending_tool_call": run.pending_tool_call if whole else None,
            "pending_reviews": [
                p["review_id"]
                for p in packets
                if p["state"]
                in (ReviewState.PENDING, ReviewState.ESCALATED, ReviewState.AWAITING_EVIDENCE)
            ],
            "reviews": packets,
        }
        return Response(body)


def _jsonable(data):
    # Idempotent answers are stored as JSON; render once so replays are byte-identical.
    import json

    from rest_framework.utils.encoders import JSONEncoder

    return json.loads(json.dumps(data, cls=JSONEncoder))
