from django.urls import path

import hitl.converters  # noqa: F401 - registers <ident:>

from . import metrics, policy_api, views

app_name = "api"

urlpatterns = [
    path("actions/", views.ActionsView.as_view(), name="actions"),
    path("reviews/<ident:review_id>/", views.ReviewDetailView.as_view(), name="review"),
    path(
        "reviews/<ident:review_id>/evidence/",
        views.ReviewEvidenceView.as_view(),
        name="review-evidence",
    ),
    path(
        "reviews/<ident:review_id>/cancel/", views.ReviewCancelView.as_view(), name="review-cancel"
    ),
    path(
        "reviews/<ident:review_id>/decisions/",
        views.ReviewDecisionsView.as_view(),
        name="review-decisions",
    ),
    path(
        "reviews/<ident:review_id>/execution/claim/",
        views.ExecutionClaimView.as_view(),
        name="execution-claim",
    ),
    path(
        "reviews/<ident:review_id>/execution/report/",
        views.ExecutionReportView.as_view(),
        name="execution-report",
    ),
    path("runs/<ident:run_id>/", views.RunDetailView.as_view(), name="run"),
    path(
        "runs/<ident:run_id>/checkpoint/",
        views.RunCheckpointView.as_view(),
        name="run-checkpoint",
    ),
    path("runs/<ident:run_id>/finish/", views.RunFinishView.as_view(), name="run-finish"),
    path("metrics/", metrics.MetricsView.as_view(), name="metrics"),
    path("policy/", policy_api.PolicyView.as_view(), name="policy"),
    path("decisions/", policy_api.DecisionsView.as_view(), name="decisions"),
]
