"""REST routes under /api/v1/multi-instance/ (no trailing slashes, as API.md)."""

from django.urls import path

from instances import views

app_name = "instances"

urlpatterns = [
    path("instances", views.InstanceListView.as_view(), name="instance-list"),
    path("instances/loadbalance", views.LoadBalanceView.as_view(), name="loadbalance"),
    path("instances/<uuid:instance_id>", views.InstanceDetailView.as_view(), name="instance-detail"),
    path("instances/<uuid:instance_id>/heartbeat", views.InstanceHeartbeatView.as_view(), name="instance-heartbeat"),
    path("cluster/stats", views.ClusterStatsView.as_view(), name="cluster-stats"),
    path("cluster/config", views.ClusterConfigView.as_view(), name="cluster-config"),
]
