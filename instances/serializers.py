"""Input shapes of the instances API (types and ranges only; rules live in services)."""

import json
import math
import uuid

from django.conf import settings
from rest_framework import serializers

from instances.balancing import BUILTIN_STRATEGIES
from instances.choices import OPERATOR_SETTABLE_STATUSES, InstanceStatus
from instances.services import validate_health_check_path, validate_host
from seedproject.errors import InvalidInput


class FiniteFloatField(serializers.FloatField):
    """A float that is not NaN or infinite (both would pass the range checks), nor a boolean (false is not 0)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("A finite number is required.")
        return value


class StrictIntegerField(serializers.IntegerField):
    """An integer that refuses booleans and non-integral floats (1.5 is not a port)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, float) and not data.is_integer()):
            self.fail("invalid")
        return super().to_internal_value(data)


def _domain_check(check, value):
    try:
        return check(value)
    except InvalidInput as exc:
        raise serializers.ValidationError(next(iter(exc.details.values()))) from exc


class MetadataField(serializers.JSONField):
    """A JSON object (not a list, string or number), at most SEED_MAX_METADATA_BYTES when encoded."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > settings.SEED_MAX_METADATA_BYTES:
            raise serializers.ValidationError(
                f"Metadata is {size} bytes; the limit is {settings.SEED_MAX_METADATA_BYTES} bytes."
            )
        return value


class InstanceRegisterSerializer(serializers.Serializer):
    """POST instances."""

    host = serializers.CharField(max_length=253)
    port = StrictIntegerField(min_value=1, max_value=65535)
    weight = StrictIntegerField(min_value=1, max_value=1000, default=1)
    metadata = MetadataField(default=dict)
    health_check_path = serializers.CharField(max_length=255, default="/health", trim_whitespace=False)
    verify = serializers.BooleanField(default=True)
    rotate_token = serializers.BooleanField(
        default=False, help_text="Issue a fresh token on re-registration (the old one stops working)."
    )

    def validate_host(self, value):
        return _domain_check(validate_host, value)

    def validate_health_check_path(self, value):
        return _domain_check(validate_health_check_path, value)


class InstanceUpdateSerializer(serializers.Serializer):
    """PATCH instances/<id>."""

    weight = StrictIntegerField(min_value=1, max_value=1000, required=False)
    metadata = MetadataField(required=False)
    status = serializers.ChoiceField(choices=[str(s) for s in OPERATOR_SETTABLE_STATUSES], required=False)


class HeartbeatSerializer(serializers.Serializer):
    """POST instances/<id>/heartbeat: every figure optional."""

    cpu_usage = FiniteFloatField(min_value=0, max_value=100, required=False, allow_null=True)
    memory_usage = FiniteFloatField(min_value=0, max_value=100, required=False, allow_null=True)
    connections = StrictIntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True)


class InstanceListQuerySerializer(serializers.Serializer):
    """GET instances: ``?status=``."""

    status = serializers.ChoiceField(choices=InstanceStatus.values, required=False)


class LoadBalanceQuerySerializer(serializers.Serializer):
    """GET instances/loadbalance: ``?strategy=`` and ``?exclude=id,id``."""

    strategy = serializers.CharField(max_length=100, required=False)
    exclude = serializers.CharField(max_length=20_000, required=False, allow_blank=True)

    def validate_exclude(self, value):
        ids = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                ids.append(uuid.UUID(item))
            except ValueError as exc:
                raise serializers.ValidationError(f"{item[:80]!r} is not an instance id (UUID).") from exc
        return ids


class ClusterConfigSerializer(serializers.Serializer):
    """PUT cluster/config: each field optional; null puts it back to the settings default."""

    load_balance_strategy = serializers.CharField(max_length=64, required=False, allow_null=True)
    heartbeat_interval = StrictIntegerField(min_value=1, max_value=86_400, required=False, allow_null=True)
    instance_timeout = StrictIntegerField(min_value=1, max_value=86_400, required=False, allow_null=True)


# --- Fast paths for the two hottest routes -------------------------------------------------------
# DRF's field machinery (binding, validators, error collection) was a tenth of a pick or a heartbeat.
# These accept only input the serializers above would accept unchanged, and return exactly what they
# would return; anything else (including every invalid input, so every error body) goes through them.

_HEARTBEAT_PERCENTS = ("cpu_usage", "memory_usage")
_HEARTBEAT_FIELDS = frozenset((*_HEARTBEAT_PERCENTS, "connections"))


def plain_heartbeat(data: object) -> dict | None:
    """``HeartbeatSerializer``'s validated data for a plain body, or None when the serializer must decide."""
    if not isinstance(data, dict) or not data.keys() <= _HEARTBEAT_FIELDS:
        return None
    result: dict = {}
    for name, value in data.items():
        if value is None:
            result[name] = None
        elif name in _HEARTBEAT_PERCENTS:
            # type() rather than isinstance(): bool is an int, and the serializer refuses it.
            if type(value) not in (int, float) or not 0 <= value <= 100:  # NaN fails the range too
                return None
            result[name] = float(value)
        elif type(value) is int and 0 <= value <= 2**31 - 1:
            result[name] = value
        else:
            return None
    return result


def plain_loadbalance_query(params: dict) -> dict | None:
    """``LoadBalanceQuerySerializer``'s validated data for ``?strategy=<a built-in name>`` or no query at all."""
    if not params:
        return {}
    if params.keys() == {"strategy"} and params["strategy"] in BUILTIN_STRATEGIES:
        return {"strategy": params["strategy"]}
    return None
