"""Root URLconf: the API under /api/v1/, admin, health."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from seedproject import dashboard, views

urlpatterns = [
    path("health", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("dashboard/", dashboard.cluster, name="dashboard-cluster"),
    path("dashboard/employees/", dashboard.employees, name="dashboard-employees"),
    path("api/v1/multi-instance/", include("instances.urls")),
    path("api/v1/collaboration/", include("collaboration.urls")),
]

handler404 = "seedproject.api.json_not_found"
handler500 = "seedproject.api.json_server_error"
