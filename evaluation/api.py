"""GET /api/v1/datasets/{slug}/export/: a frozen dataset version as streamed JSONL."""

from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.views import APIView

import hitl.converters  # noqa: F401 - registers <ident:>
from reviews.api.permissions import IsStaffPerson
from reviews.api.views import ERRORS

from .models import DatasetVersion
from .selectors import EXPORT_FORMATS, export_lines, version_for

app_name = "evaluation_api"


class ExportQuery(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1)
    # Not "format": DRF reserves that query parameter for choosing a renderer.
    records = serializers.ChoiceField(
        choices=list(EXPORT_FORMATS),
        default="generic",
        error_messages={
            "invalid_choice": f'"{{input}}" is not an export format: use one of '
            f"{', '.join(EXPORT_FORMATS)}."
        },
    )


class DatasetExportView(APIView):
    permission_classes = [IsStaffPerson]

    @extend_schema(
        operation_id="export_dataset",
        parameters=[
            OpenApiParameter("version", int, description="Version number; latest by default."),
            OpenApiParameter(
                "records",
                str,
                enum=list(EXPORT_FORMATS),
                description="; ".join(
                    f"{f.name}: {f.description}" for f in EXPORT_FORMATS.values()
                ),
            ),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.STR, description="JSON Lines"), **ERRORS},
    )
    def get(self, request, slug):
        """Stream a frozen version as JSONL (one case per line), in constant memory."""
        if not request.user.has_perm("evaluation.view_dataset"):
            raise PermissionDenied("Exports are for ML engineers (evaluation.view_dataset).")
        query = ExportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            version = version_for(slug=slug, number=query.validated_data.get("version"))
        except DatasetVersion.DoesNotExist as exc:
            raise NotFound(str(exc) or "No such dataset version.") from None
        fmt = EXPORT_FORMATS[query.validated_data["records"]]
        response = StreamingHttpResponse(
            export_lines(version=version, fmt=fmt.name), content_type=fmt.content_type
        )
        name = f"{slug}-v{version.number}-{fmt.name}.jsonl"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


urlpatterns = [
    path(
        "datasets/<ident:slug>/export/",
        DatasetExportView.as_view(),
        name="dataset-export",
    ),
]
