"""OpenAPI description of the instances routes: the response envelopes and one ``extend_schema`` per operation.

The views render plain dicts (``selectors.instance_to_dict`` and friends); the serializers below only
describe those dicts for drf-spectacular and are never used to render or validate.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from instances.choices import InstanceStatus
from instances.serializers import (
    ClusterConfigSerializer,
    HeartbeatSerializer,
    InstanceListQuerySerializer,
    InstanceRegisterSerializer,
    InstanceUpdateSerializer,
)
from seedproject.api import PageParams, error_responses

TAG_INSTANCES = ["instances"]
TAG_CLUSTER = ["cluster"]
# Every route may answer these once authentication and throttling apply (API.md "Security").
AUTH_ERRORS = (401, 403, 429)


class InstanceSerializer(serializers.Serializer):
    """An instance as the API shows it (API.md "Representations")."""

    id = serializers.UUIDField()
    host = serializers.CharField()
    port = serializers.IntegerField(min_value=1, max_value=65535)
    url = serializers.CharField(help_text="http://host:port")
    weight = serializers.IntegerField(min_value=1, max_value=1000)
    status = serializers.ChoiceField(choices=InstanceStatus.choices)
    metadata = serializers.DictField()
    health_check_path = serializers.CharField()
    cpu_usage = serializers.FloatField(allow_null=True)
    memory_usage = serializers.FloatField(allow_null=True)
    connections = serializers.IntegerField(min_value=0)
    registered_at = serializers.DateTimeField()
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    last_probe_ok = serializers.DateTimeField(allow_null=True)


class InstanceResponseSerializer(serializers.Serializer):
    """``{success, instance}``."""

    success = serializers.BooleanField()
    instance = InstanceSerializer()


class InstanceRegisteredSerializer(InstanceResponseSerializer):
    """``{success, instance}`` after registration, plus the instance's own token (shown once)."""

    token = serializers.CharField(
        required=False, help_text="Bearer token for this instance's heartbeats and updates (ins_…), shown once."
    )


class InstanceListResponseSerializer(serializers.Serializer):
    """``{success, instances, count}``: one page and the total matching count."""

    success = serializers.BooleanField()
    instances = InstanceSerializer(many=True)
    count = serializers.IntegerField(min_value=0)


class InstanceDeletedSerializer(serializers.Serializer):
    """``{success, deleted}``: the id of the deregistered instance."""

    success = serializers.BooleanField()
    deleted = serializers.UUIDField()


class LoadBalanceResponseSerializer(serializers.Serializer):
    """``{success, instance, url, strategy}``: the picked instance and the strategy that picked it."""

    success = serializers.BooleanField()
    instance = InstanceSerializer()
    url = serializers.CharField()
    strategy = serializers.CharField()


_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class LoadBalanceParamsSerializer(serializers.Serializer):
    """Query of ``instances/loadbalance`` (documentation of instances.serializers.LoadBalanceQuerySerializer)."""

    strategy = serializers.CharField(
        required=False,
        max_length=100,
        help_text="round_robin, least_connections, random, weighted or a configured custom strategy; else 400.",
    )
    # The view takes up to 20,000 characters, but the HTTP server drops request lines over 16 KiB and
    # percent-encoding can make one character 12 bytes: 1,200 characters (32 ids) always get through.
    exclude = serializers.RegexField(
        rf"^({_UUID}(,{_UUID})*)?$",
        required=False,
        max_length=1_200,
        help_text="Comma-separated instance ids (UUIDs) to skip (client failover).",
    )


class ClusterStatsSerializer(serializers.Serializer):
    """The seed's cluster_stats keys, then the draining/disabled counts."""

    total_instances = serializers.IntegerField(min_value=0)
    healthy_instances = serializers.IntegerField(min_value=0)
    unhealthy_instances = serializers.IntegerField(min_value=0)
    total_connections = serializers.IntegerField(min_value=0)
    avg_cpu_usage = serializers.FloatField()
    avg_memory_usage = serializers.FloatField()
    load_balance_strategy = serializers.CharField()
    draining_instances = serializers.IntegerField(min_value=0)
    disabled_instances = serializers.IntegerField(min_value=0)


class ClusterStatsResponseSerializer(serializers.Serializer):
    """``{success, cluster_stats}``."""

    success = serializers.BooleanField()
    cluster_stats = ClusterStatsSerializer()


_SOURCES = [("config", "overridden in the database"), ("settings", "the settings default")]


class ClusterConfigStateSerializer(serializers.Serializer):
    """The effective cluster settings."""

    load_balance_strategy = serializers.CharField()
    heartbeat_interval = serializers.IntegerField(min_value=1)
    instance_timeout = serializers.IntegerField(min_value=1)
    sources = serializers.DictField(
        child=serializers.ChoiceField(choices=_SOURCES),
        help_text="Per field: config (overridden in the database) or settings (the default).",
    )
    updated_at = serializers.DateTimeField(allow_null=True)


class ClusterConfigResponseSerializer(serializers.Serializer):
    """``{success, config}``."""

    success = serializers.BooleanField()
    config = ClusterConfigStateSerializer()


INSTANCE_ID = OpenApiParameter("instance_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Instance id.")

instance_register = extend_schema(
    operation_id="instances_register",
    tags=TAG_INSTANCES,
    summary="Register an instance (idempotent per host:port)",
    description="201 on a new instance; 200 when host:port is already registered (updated, same id). "
    "With verify=true the instance is probed first (502 when unreachable or its address is not allowed).",
    request=InstanceRegisterSerializer,
    responses={
        201: InstanceRegisteredSerializer,
        200: InstanceRegisteredSerializer,
        **error_responses(400, *AUTH_ERRORS, 413, 502),
    },
)

instance_list = extend_schema(
    operation_id="instances_list",
    tags=TAG_INSTANCES,
    summary="List instances",
    parameters=[InstanceListQuerySerializer, PageParams],
    responses={200: InstanceListResponseSerializer, **error_responses(400, *AUTH_ERRORS)},
)

instance_get = extend_schema(
    operation_id="instances_get",
    tags=TAG_INSTANCES,
    summary="Read an instance",
    parameters=[INSTANCE_ID],
    responses={200: InstanceResponseSerializer, **error_responses(*AUTH_ERRORS, 404)},
)

instance_update = extend_schema(
    operation_id="instances_update",
    tags=TAG_INSTANCES,
    summary="Change an instance's weight, metadata or status",
    parameters=[INSTANCE_ID],
    request=InstanceUpdateSerializer,
    responses={200: InstanceResponseSerializer, **error_responses(400, *AUTH_ERRORS, 404, 413)},
)

instance_deregister = extend_schema(
    operation_id="instances_deregister",
    tags=TAG_INSTANCES,
    summary="Deregister an instance",
    parameters=[INSTANCE_ID],
    responses={200: InstanceDeletedSerializer, **error_responses(*AUTH_ERRORS, 404)},
)

instance_heartbeat = extend_schema(
    operation_id="instances_heartbeat",
    tags=TAG_INSTANCES,
    summary="Report a heartbeat (an unhealthy instance recovers)",
    parameters=[INSTANCE_ID],
    request=HeartbeatSerializer,
    responses={200: InstanceResponseSerializer, **error_responses(400, *AUTH_ERRORS, 404, 413)},
)

instance_loadbalance = extend_schema(
    operation_id="instances_loadbalance",
    tags=TAG_INSTANCES,
    summary="Pick one active instance",
    parameters=[LoadBalanceParamsSerializer],
    responses={200: LoadBalanceResponseSerializer, **error_responses(400, *AUTH_ERRORS, 503)},
)

cluster_stats = extend_schema(
    operation_id="cluster_stats",
    tags=TAG_CLUSTER,
    summary="Cluster statistics",
    responses={200: ClusterStatsResponseSerializer, **error_responses(*AUTH_ERRORS)},
)

cluster_config_get = extend_schema(
    operation_id="cluster_config_get",
    tags=TAG_CLUSTER,
    summary="Read the live cluster settings",
    responses={200: ClusterConfigResponseSerializer, **error_responses(*AUTH_ERRORS)},
)

cluster_config_update = extend_schema(
    operation_id="cluster_config_update",
    tags=TAG_CLUSTER,
    summary="Override cluster settings (null resets a field to its default)",
    request=ClusterConfigSerializer,
    responses={200: ClusterConfigResponseSerializer, **error_responses(400, *AUTH_ERRORS, 413)},
)
