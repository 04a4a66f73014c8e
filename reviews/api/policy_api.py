"""Deciding in the agent: GET /policy/ serves the tenant's active policy version for the
engine shipped in hitl_client; POST /decisions/ logs what the agent decided with it.

Only ``human_review`` goes through POST /actions/: the server stays the authority for
reviews, claims and re-validation. Calls whose action has a fact provider are listed in
``server_decides``: their decision needs trusted facts only the platform reads.
"""

import hashlib

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from hitl.kernel import Actor
from policies.decision_log import LOCAL_OUTCOMES, MAX_LOCAL_DECISIONS
from policies.models import ActionType, PolicyVersion
from policies.selectors import active_version_for, default_queue
from policies.services import local_decisions_log

from .errors import reject_unstorable_json
from .permissions import IsAgent
from .views import ERRORS

EMPTY_SNAPSHOT = {"format": 1, "rules": [], "catalogue": {}}


class ServedPolicyOut(serializers.Serializer):
    version = serializers.CharField(allow_null=True, help_text="The version's content hash.")
    number = serializers.IntegerField(allow_null=True)
    tenant = serializers.CharField(allow_blank=True)
    default_queue = serializers.CharField()
    server_decides = serializers.ListField(
        child=serializers.CharField(),
        help_text="Actions decided on trusted facts: propose them through POST /actions/.",
    )
    snapshot = serializers.DictField(help_text="The engine's snapshot (compile_policy input).")


class LocalDecisionEntryIn(serializers.Serializer):
    tool_call_id = serializers.CharField(max_length=200)
    proposal = serializers.DictField(help_text="The policy input decided on (proposal_input).")
    outcome = serializers.ChoiceField(choices=LOCAL_OUTCOMES)
    rule = serializers.CharField(max_length=80, allow_blank=True, allow_null=True, default="")
    policy_version = serializers.RegexField(r"^[0-9a-f]{64}$")
    decided_at = serializers.DateTimeField()


class LocalDecisionsIn(serializers.Serializer):
    entries = LocalDecisionEntryIn(many=True, min_length=1, max_length=MAX_LOCAL_DECISIONS)


class LocalDecisionsOut(serializers.Serializer):
    logged = serializers.IntegerField(help_text="Entries written now.")
    duplicates = serializers.IntegerField(help_text="Entries this agent had already logged.")


def policy_etag(version: PolicyVersion | None, server_decides: list[str]) -> str:
    """The version's content hash (it covers rules and catalogue), combined with the
    actions the server decides when there are some: changes whenever they do."""
    digest = version.content_hash if version is not None else ""
    if server_decides or not digest:
        text = "\x1f".join([digest, *server_decides])
        digest = hashlib.sha256(text.encode()).hexdigest()
    return f'"{digest}"'


class PolicyView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="get_policy",
        parameters=[
            OpenApiParameter(
                "If-None-Match",
                str,
                OpenApiParameter.HEADER,
                description="The ETag of the policy you hold: 304 while it is still active.",
            )
        ],
        responses={
            200: ServedPolicyOut,
            304: OpenApiResponse(description="Unchanged since the ETag you sent"),
            **ERRORS,
        },
    )
    def get(self, request):
        """The active policy version of your tenant, for hitl_client's engine; the ETag is
        its content hash (combined with the server-decided actions when there are some)."""
        tenant = request.user.tenant
        version = active_version_for(tenant)
        queue = default_queue()
        server_decides = sorted(
            ActionType.objects.exclude(fact_provider="").values_list("name", flat=True)
        )
        etag = policy_etag(version, server_decides)
        if etag in _etags(request.headers.get("If-None-Match", "")):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        snapshot = (
            PolicyVersion.objects.values_list("snapshot", flat=True).get(pk=version.pk)
            if version is not None
            else EMPTY_SNAPSHOT
        )
        body = {
            "version": version.content_hash if version else None,
            "number": version.number if version else None,
            "tenant": tenant,
            "default_queue": queue,
            "server_decides": server_decides,
            "snapshot": snapshot,
        }
        return Response(body, headers={"ETag": etag, "Cache-Control": "no-cache"})


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


class DecisionsView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="log_local_decisions",
        request=LocalDecisionsIn,
        responses={200: LocalDecisionsOut, **ERRORS},
    )
    def post(self, request):
        """Log decisions you made in process with the policy from GET /policy/ (at most
        1000 per request). Retrying a batch is safe: a tool call is logged once. A call the
        policy sends to a person is not logged here: propose it through POST /actions/."""
        reject_unstorable_json(request.data)
        entries = request.data.get("entries") if isinstance(request.data, dict) else None
        logged = local_decisions_log(
            actor=Actor.of_agent(request.user), tenant=request.user.tenant, entries=entries
        )
        return Response({"logged": logged.logged, "duplicates": logged.duplicates})
