"""GET /api/v1/metrics/: the dashboard's figures as JSON, or its time series as CSV."""

import csv
import io
from datetime import datetime, time, timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from ..selectors.metrics import Figures, MetricsFilter, as_dict, compute
from .permissions import IsStaffPerson
from .views import ERRORS

SERIES_COLUMNS = ["period", *Figures().__dict__.keys()]


class MetricsQuery(serializers.Serializer):
    since = serializers.DateField(required=False)
    until = serializers.DateField(required=False)
    queue = serializers.SlugField(required=False, default="")
    action = serializers.CharField(required=False, default="", max_length=100)
    agent_version = serializers.CharField(required=False, default="", max_length=100)
    rule = serializers.CharField(required=False, default="", max_length=100)
    bucket = serializers.ChoiceField(choices=["day", "week"], default="day")
    tenant = serializers.RegexField(
        r"^(\*|[a-z0-9][a-z0-9_-]*)?$",
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="One tenant's figures (default: your first tenant); '*' every tenant, "
        "platform admins only.",
    )

    def validate(self, data):
        today = timezone.localdate()
        until = data.get("until") or today
        if until.year > 9000 or (data.get("since") and data["since"].year < 2):
            # Dates at the calendar's ends overflow once a day or a time zone is added.
            raise serializers.ValidationError({"until": ["must be between year 2 and 9000."]})
        since = data.get("since") or until - timedelta(days=28)
        if since > until:
            raise serializers.ValidationError({"since": ["must not be after until."]})
        if (until - since).days > 366:
            raise serializers.ValidationError({"since": ["at most one year at a time."]})
        data["since"], data["until"] = since, until
        return data

    def to_filter(self) -> MetricsFilter:
        data = self.validated_data
        zone = timezone.get_current_timezone()
        return MetricsFilter(
            since=datetime.combine(data["since"], time.min, tzinfo=zone),
            until=datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=zone),
            queue=data["queue"],
            action=data["action"],
            agent_version=data["agent_version"],
            rule=data["rule"],
            bucket=data["bucket"],
            tenant=data.get("tenant"),
        )


class SeriesCSVRenderer(BaseRenderer):
    """`?format=csv`: one row per day (or week) with every figure."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        out = io.StringIO()
        writer = csv.writer(out)
        if isinstance(data, dict) and "series" in data:
            writer.writerow(SERIES_COLUMNS)
            for row in data["series"]:
                writer.writerow([row.get(column) for column in SERIES_COLUMNS])
        else:
            writer.writerow(["error", "detail"])
            writer.writerow([data.get("error", ""), data.get("detail", "")])
        return out.getvalue().encode()


class MetricsView(APIView):
    permission_classes = [IsStaffPerson]
    renderer_classes = [JSONRenderer, SeriesCSVRenderer]

    @extend_schema(
        operation_id="get_metrics",
        parameters=[MetricsQuery, OpenApiParameter("format", str, enum=["json", "csv"])],
        responses={200: dict, **ERRORS},
    )
    def get(self, request):
        """Approval, edit, rejection, escalation and expiry rates, time in queue, SLA
        breaches, reasons and rubber-stamp signals, sliced and over time."""
        query = MetricsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        metrics = compute(user=request.user, filters=query.to_filter())
        return Response(as_dict(metrics))
