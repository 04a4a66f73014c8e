from django.urls import path

from . import metrics, views

app_name = "api"

urlpatterns = [
    path("actions/", views.ActionsView.as_view(), name="actions"),
    path("reviews/<str:review_id>/", views.ReviewDetailView.as_view(), name="review"),
    path(
        "reviews/<str:review_id>/evidence/",
        views.ReviewEvidenceView.as_view(),
        name="review-evidence",
    ),
    path("reviews/<str:review_id>/cancel/", views.ReviewCancelView.as_view(), name="review-cancel"),
    path(
        "reviews/<str:review_id>/decisions/",
        views.ReviewDecisionsView.as_view(),
        name="review-decisions",
    ),
    path(
        "reviews/<str:review_id>/execution/claim/",
        views.ExecutionClaimView.as_view(),
        name="execution-claim",
    ),
    path(
        "reviews/<str:review_id>/execution/report/",
        views.ExecutionReportView.as_view(),
        name="execution-report",
    ),
    path("runs/<str:run_id>/", views.RunDetailView.as_view(), name="run"),
    path("metrics/", metrics.MetricsView.as_view(), name="metrics"),
]
