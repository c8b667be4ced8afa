"""Admin for the instance registry: every change goes through the services (events, monitor updates)."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages

from instances import services
from instances.choices import OPERATOR_SETTABLE_STATUSES, InstanceStatus
from instances.models import ClusterConfig, Instance, InstanceEvent
from seedproject.errors import InvalidInput


class ClusterConfigForm(forms.ModelForm):
    """The live cluster settings; blank means "use the settings default"."""

    class Meta:
        model = ClusterConfig
        fields = ("load_balance_strategy", "heartbeat_interval", "instance_timeout")

    def clean(self):
        cleaned = super().clean()
        defaults = {
            "load_balance_strategy": settings.SEED_LOAD_BALANCE_STRATEGY,
            "heartbeat_interval": settings.SEED_HEARTBEAT_INTERVAL,
            "instance_timeout": settings.SEED_INSTANCE_TIMEOUT,
        }
        if not self.errors:
            try:
                services.cluster_config_check(**{k: cleaned.get(k) or d for k, d in defaults.items()})
            except InvalidInput as exc:
                field = next(iter(exc.details), None)
                raise forms.ValidationError(
                    {field if field in defaults else "load_balance_strategy": exc.message}
                ) from exc
        return cleaned


class InstanceForm(forms.ModelForm):
    """Operators may set weight, metadata and an operator status (never ``unhealthy``)."""

    class Meta:
        model = Instance
        fields = ("status", "weight", "metadata")

    def clean_status(self):
        status = self.cleaned_data["status"]
        if "status" in self.changed_data and status not in OPERATOR_SETTABLE_STATUSES:
            raise forms.ValidationError("Only active, draining or disabled can be set by an operator.")
        return status


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    """Instances: status and live figures; drain / disable / enable / probe / deregister."""

    list_display = (
        "address",
        "status",
        "weight",
        "cpu_usage",
        "memory_usage",
        "connections",
        "last_heartbeat",
        "last_probe_ok",
    )
    form = InstanceForm
    list_filter = ("status",)
    search_fields = ("host", "=port", "=id")
    ordering = ("registered_at", "id")
    fields = (
        "id",
        "host",
        "port",
        "status",
        "weight",
        "metadata",
        "health_check_path",
        "cpu_usage",
        "memory_usage",
        "connections",
        # Not picks_since_heartbeat: with Redis the least_connections picks are counted in the cache
        # (instances.services.LEAST_LOADED_KEY) and the column stays 0 between heartbeats.
        "registered_at",
        "last_heartbeat",
        "last_probe_ok",
    )
    readonly_fields = tuple(f for f in fields if f not in ("weight", "metadata", "status"))
    actions = ("drain", "disable", "enable", "probe_now", "deregister", "rotate_token", "revoke_token")

    def has_add_permission(self, request) -> bool:
        return False  # instances register themselves (API, runseed, register_instance), probe included

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # bypasses the service: use "deregister"
        return actions

    def _set_status(self, request, queryset, status: str, verb: str) -> None:
        count = services.instances_set_status(instance_ids=queryset.values_list("pk", flat=True), status=status)
        self.message_user(request, f"{count} instance(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Drain selected instances (stop picking them)")
    def drain(self, request, queryset) -> None:
        self._set_status(request, queryset, InstanceStatus.DRAINING, "set to draining")

    @admin.action(description="Disable selected instances")
    def disable(self, request, queryset) -> None:
        self._set_status(request, queryset, InstanceStatus.DISABLED, "disabled")

    @admin.action(description="Enable selected instances (set active)")
    def enable(self, request, queryset) -> None:
        self._set_status(request, queryset, InstanceStatus.ACTIVE, "enabled")

    @admin.action(description="Probe selected instances now")
    def probe_now(self, request, queryset) -> None:
        counts = services.instances_check_health(instance_ids=queryset.values_list("pk", flat=True), actor="admin")
        self.message_user(
            request,
            "Probed {checked}: {passed} passed, {failed} failed, {changed} changed status "
            "(draining/disabled instances are not probed).".format(**counts),
            messages.SUCCESS,
        )

    @admin.action(description="Rotate token (shows the new one once)")
    def rotate_token(self, request, queryset) -> None:
        for instance in queryset:
            token = services.instance_token_rotate(instance_id=instance.pk)
            self.message_user(request, f"New token for {instance.host}:{instance.port}: {token}", messages.WARNING)

    @admin.action(description="Revoke token")
    def revoke_token(self, request, queryset) -> None:
        for pk in queryset.values_list("pk", flat=True):
            services.instance_token_revoke(instance_id=pk)
        self.message_user(request, f"Revoked the tokens of {queryset.count()} instance(s).", messages.SUCCESS)

    @admin.action(description="Deregister selected instances")
    def deregister(self, request, queryset) -> None:
        count = services.instances_deregister(instance_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} instance(s) deregistered.", messages.SUCCESS)

    def save_model(self, request, obj, form, change) -> None:
        data = {name: form.cleaned_data[name] for name in ("weight", "metadata", "status") if name in form.changed_data}
        services.instance_update(instance_id=obj.pk, **data, actor="admin")

    def delete_model(self, request, obj) -> None:
        services.instance_deregister(instance_id=obj.pk, actor="admin")

    def delete_queryset(self, request, queryset) -> None:
        services.instances_deregister(instance_ids=list(queryset.values_list("pk", flat=True)))


@admin.register(InstanceEvent)
class InstanceEventAdmin(admin.ModelAdmin):
    """The instance history, read-only."""

    list_display = ("created_at", "address", "kind", "from_status", "to_status", "actor", "reason")
    list_filter = ("kind", "actor", "to_status")
    search_fields = ("address", "reason")
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ClusterConfig)
class ClusterConfigAdmin(admin.ModelAdmin):
    """The single cluster-config row, saved through the service (validated, pushed to monitors)."""

    form = ClusterConfigForm
    list_display = ("__str__", "load_balance_strategy", "heartbeat_interval", "instance_timeout", "updated_at")

    def has_add_permission(self, request) -> bool:
        return not ClusterConfig.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        values = {name: form.cleaned_data[name] for name in ClusterConfigForm.Meta.fields}
        reset = [name for name, value in values.items() if value in (None, "")]
        values = {name: value for name, value in values.items() if value not in (None, "")}
        services.cluster_config_update(**values, reset=reset)
        obj.pk = ClusterConfig.SINGLETON_PK
