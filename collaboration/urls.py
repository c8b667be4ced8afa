"""REST routes under /api/v1/collaboration/ (API.md "Collaboration"); no trailing slashes."""

from django.urls import path

from collaboration import views

urlpatterns = [
    path("employees/register", views.RegisterView.as_view(), name="collab-register"),
    path("employees", views.EmployeeListView.as_view(), name="collab-employees"),
    path("employees/<str:employee_id>", views.EmployeeDetailView.as_view(), name="collab-employee"),
    path("employees/<str:employee_id>/connect", views.ConnectView.as_view(), name="collab-connect"),
    path("employees/<str:employee_id>/connections", views.ConnectionListView.as_view(), name="collab-connections"),
    path(
        "employees/<str:employee_id>/connections/<str:target_employee_id>",
        views.ConnectionDetailView.as_view(),
        name="collab-connection",
    ),
    path("employees/<str:employee_id>/messages", views.MessagesView.as_view(), name="collab-messages"),
    path("employees/<str:employee_id>/messages/receive", views.ReceiveView.as_view(), name="collab-receive"),
    path("employees/<str:employee_id>/messages/ack", views.AckBatchView.as_view(), name="collab-ack-batch"),
    path("employees/<str:employee_id>/messages/<uuid:message_id>/ack", views.AckView.as_view(), name="collab-ack"),
    path(
        "employees/<str:employee_id>/conversations",
        views.EmployeeConversationsView.as_view(),
        name="collab-employee-conversations",
    ),
    path("employees/<str:employee_id>/stats", views.EmployeeStatsView.as_view(), name="collab-employee-stats"),
    path(
        "conversations/<uuid:conversation_id>/messages",
        views.ConversationMessagesView.as_view(),
        name="collab-conversation-messages",
    ),
    path("system/stats", views.SystemStatsView.as_view(), name="collab-system-stats"),
]
