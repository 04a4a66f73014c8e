"""Endpoints that stop after one layer of the proposal path, to show what each layer costs
under the same gunicorn and clients as B1. Benchmark-only; never in the product's URLs."""

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import APIView

from policies.engine import POLICY_KEYS
from policies.selectors import evaluate_proposal
from reviews.api import serializers
from reviews.api.permissions import IsAgent
from reviews.api.views import parse


@csrf_exempt
def django_view(request):
    """A Django view through the product's middleware, doing nothing."""
    return JsonResponse({}, status=201)


class Authenticated(APIView):
    """DRF with the product's key authentication, permission and throttle."""

    permission_classes = [IsAgent]

    def post(self, request):
        return Response({}, status=201)


class Validated(Authenticated):
    """... and the proposal validated by the API's serializer, nothing written."""

    def post(self, request):
        parse(serializers.ProposalIn, request)
        return Response({}, status=201)


class Decided(Authenticated):
    """... and decided by the active policy as a proposal is, nothing written."""

    def post(self, request):
        data = parse(serializers.ProposalIn, request)
        policy_input = {key: data[key] for key in POLICY_KEYS if key in data}
        policy_input["tenant"] = request.user.tenant
        evaluate_proposal(proposal=policy_input)
        return Response({}, status=201)


LAYERS = {
    "django view": "/floor/django/",
    "+ DRF, agent key auth, throttle": "/floor/auth/",
    "+ proposal validation": "/floor/validated/",
    "+ policy decision": "/floor/decided/",
}
urlpatterns = [
    path("floor/django/", django_view),
    path("floor/auth/", Authenticated.as_view()),
    path("floor/validated/", Validated.as_view()),
    path("floor/decided/", Decided.as_view()),
]
