from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

admin.site.site_header = "hitl · review operations"
admin.site.site_title = "hitl"
admin.site.index_title = "Your reviews"
# The product has no public site: no "View site" link to a 404.
admin.site.site_url = None

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("reviews.api.urls")),
    path("api/v1/", include("evaluation.api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

handler404 = "hitl.views.not_found"
