"""REST edge of the instances app: parse, call one service or selector, render."""

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from instances import schema, selectors, services
from instances.serializers import (
    ClusterConfigSerializer,
    HeartbeatSerializer,
    InstanceListQuerySerializer,
    InstanceRegisterSerializer,
    InstanceUpdateSerializer,
    LoadBalanceQuerySerializer,
    plain_heartbeat,
    plain_loadbalance_query,
)
from seedproject.api import page_params, validated
from seedproject.permissions import AnyPrincipal, Enroller, InstanceSelf, ReadAnyWriteInstanceSelf, ReadAnyWriteOperator


class InstancesAPIView(APIView):
    """Base of the instances routes: readable by anyone the cluster knows (see seedproject.permissions)."""

    permission_classes = [AnyPrincipal]


def _one(instance, status: int = 200) -> Response:
    return Response({"success": True, "instance": selectors.instance_to_dict(instance)}, status=status)


class InstanceListView(InstancesAPIView):
    """POST registers an instance (enrollment token or staff); GET lists them (``?status=``, ``?limit=&offset=``)."""

    def get_permissions(self) -> list:
        return [Enroller()] if self.request.method == "POST" else [AnyPrincipal()]

    @schema.instance_register
    def post(self, request: Request) -> Response:
        data = validated(InstanceRegisterSerializer, request.data)
        instance, created = services.instance_register(**data, actor="api")
        response = _one(instance, status=201 if created else 200)
        if instance.new_token:  # shown once: only its hash is stored
            response.data["token"] = instance.new_token
        return response

    @schema.instance_list
    def get(self, request: Request) -> Response:
        query = validated(InstanceListQuerySerializer, request.query_params.dict())
        limit, offset = page_params(request)
        instances, count = selectors.instance_page(status=query.get("status"), limit=limit, offset=offset)
        body = [selectors.instance_to_dict(instance) for instance in instances]
        return Response({"success": True, "instances": body, "count": count})


class InstanceDetailView(InstancesAPIView):
    """GET reads, PATCH changes weight/metadata/status, DELETE deregisters (the instance itself or staff)."""

    permission_classes = [ReadAnyWriteInstanceSelf]

    @schema.instance_get
    def get(self, request: Request, instance_id) -> Response:
        return _one(selectors.instance_get(instance_id=instance_id))

    @schema.instance_update
    def patch(self, request: Request, instance_id) -> Response:
        data = validated(InstanceUpdateSerializer, request.data)
        return _one(services.instance_update(instance_id=instance_id, **data, actor="api"))

    @schema.instance_deregister
    def delete(self, request: Request, instance_id) -> Response:
        services.instance_deregister(instance_id=instance_id, actor="api")
        return Response({"success": True, "deleted": str(instance_id)})


class InstanceHeartbeatView(InstancesAPIView):
    """POST a heartbeat with optional cpu_usage / memory_usage / connections (the instance itself or staff)."""

    permission_classes = [InstanceSelf]

    @schema.instance_heartbeat
    def post(self, request: Request, instance_id) -> Response:
        body = request.data if request.data is not None else {}
        data = plain_heartbeat(body)
        if data is None:
            data = validated(HeartbeatSerializer, body)
        return _one(services.instance_heartbeat(instance_id=instance_id, **data))


class LoadBalanceView(InstancesAPIView):
    """GET one active instance chosen by the cluster's (or ``?strategy=``) strategy."""

    @schema.instance_loadbalance
    def get(self, request: Request) -> Response:
        params = request.query_params.dict()
        query = plain_loadbalance_query(params)
        if query is None:
            query = validated(LoadBalanceQuerySerializer, params)
        instance, strategy = services.instance_select(strategy=query.get("strategy"), exclude=query.get("exclude", ()))
        body = selectors.instance_to_dict(instance)
        return Response({"success": True, "instance": body, "url": body["url"], "strategy": strategy})


class ClusterStatsView(InstancesAPIView):
    """GET the seed's cluster_stats."""

    @schema.cluster_stats
    def get(self, request: Request) -> Response:
        return Response({"success": True, "cluster_stats": selectors.cluster_stats()})


class ClusterConfigView(InstancesAPIView):
    """GET the live cluster settings; PUT (operators) overrides them (null resets a field to its default)."""

    permission_classes = [ReadAnyWriteOperator]

    @schema.cluster_config_get
    def get(self, request: Request) -> Response:
        return Response({"success": True, "config": selectors.cluster_config_get()})

    @schema.cluster_config_update
    def put(self, request: Request) -> Response:
        data = validated(ClusterConfigSerializer, request.data)
        reset = [name for name, value in data.items() if value is None]
        values = {name: value for name, value in data.items() if value is not None}
        return Response({"success": True, "config": services.cluster_config_update(**values, reset=reset)})
