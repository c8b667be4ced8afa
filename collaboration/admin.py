"""Operator views of the bus: employees, connections, messages (with expire/requeue actions), conversations."""

from django.contrib import admin, messages

from collaboration import services
from collaboration.models import Connection, Conversation, ConversationParticipant, ConversationPost, Employee, Message


@admin.register(Employee)
class EmployeeAdmin(admin.ModelAdmin):
    """Registered AI employees."""

    list_display = ("employee_id", "role", "status", "registered_at", "last_seen")
    list_filter = ("status", "role")
    search_fields = ("employee_id", "role")
    actions = ("rotate_token", "revoke_token")

    @admin.action(description="Rotate token (shows the new one once)")
    def rotate_token(self, request, queryset) -> None:
        for employee_id in queryset.values_list("employee_id", flat=True):
            token = services.employee_token_rotate(employee_id=employee_id)
            self.message_user(request, f"New token for {employee_id}: {token}", messages.WARNING)

    @admin.action(description="Revoke token")
    def revoke_token(self, request, queryset) -> None:
        for employee_id in queryset.values_list("employee_id", flat=True):
            services.employee_token_revoke(employee_id=employee_id)
        self.message_user(request, f"Revoked the tokens of {queryset.count()} employee(s).", messages.SUCCESS)


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    """Bidirectional connections (stored once per pair)."""

    list_display = ("employee_a", "employee_b", "created_at")
    search_fields = ("employee_a__employee_id", "employee_b__employee_id")
    raw_id_fields = ("employee_a", "employee_b")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Every message the bus ever queued; expired and dead ones stay visible here."""

    list_display = ("id", "sender", "receiver", "message_type", "action", "priority", "status", "delivery_count")
    list_display_links = ("id",)
    list_filter = ("status", "priority", "message_type", "receiver")
    search_fields = ("id", "sender__employee_id", "receiver__employee_id", "action", "correlation_id")
    raw_id_fields = ("sender", "receiver", "conversation", "post")
    date_hierarchy = "created_at"
    actions = ("expire_now", "requeue_dead")

    @admin.action(description="Expire now (queued or leased)")
    def expire_now(self, request, queryset):
        changed = services.messages_expire_now(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{changed} message(s) expired.", messages.SUCCESS)

    @admin.action(description="Requeue dead messages")
    def requeue_dead(self, request, queryset):
        changed = services.messages_requeue_dead(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{changed} dead message(s) requeued.", messages.SUCCESS)


class ParticipantInline(admin.TabularInline):
    """Participants of a conversation."""

    model = ConversationParticipant
    extra = 0
    raw_id_fields = ("employee",)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Multi-party conversations."""

    list_display = ("id", "topic", "created_by", "created_at")
    search_fields = ("topic", "created_by__employee_id")
    raw_id_fields = ("created_by",)
    inlines = (ParticipantInline,)


@admin.register(ConversationPost)
class ConversationPostAdmin(admin.ModelAdmin):
    """Conversation history, one row per post."""

    list_display = ("id", "conversation", "sender", "action", "created_at")
    raw_id_fields = ("conversation", "sender")
