"""WebSocket routes of the collaboration app."""

from django.urls import path

from collaboration.consumers import CollaborationMonitorConsumer, EmployeeMonitorConsumer

websocket_urlpatterns = [
    path("api/v1/collaboration/monitor", CollaborationMonitorConsumer.as_asgi(), name="collab-monitor"),
    path(
        "api/v1/collaboration/employees/<str:employee_id>/monitor",
        EmployeeMonitorConsumer.as_asgi(),
        name="collab-employee-monitor",
    ),
]
