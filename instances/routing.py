"""WebSocket routes of the instances app."""

from django.urls import path

from instances.consumers import ClusterMonitorConsumer

websocket_urlpatterns = [
    path("api/v1/multi-instance/monitor", ClusterMonitorConsumer.as_asgi()),
]
