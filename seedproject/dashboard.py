"""The operators' live pages. Server-rendered first frame, then the monitor sockets keep them current."""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from collaboration.consumers import collaboration_overview
from instances.balancing import strategy_names
from instances.selectors import cluster_snapshot
from seedproject.auth import principal_for

STAT_LABELS = [
    ("total_instances", "Instances"),
    ("healthy_instances", "Healthy"),
    ("unhealthy_instances", "Unhealthy"),
    ("total_connections", "Connections"),
    ("avg_cpu_usage", "Avg CPU %"),
    ("avg_memory_usage", "Avg memory %"),
    ("load_balance_strategy", "Strategy"),
]


def operator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Staff only, except for loopback clients in local anonymous mode (the API's Operator rule)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        principal = principal_for(token=None, user=request.user, client_address=request.META.get("REMOTE_ADDR"))
        if principal is not None and principal.is_operator:
            return view(request, *args, **kwargs)
        return redirect_to_login(request.get_full_path(), login_url="/admin/login/")

    return wrapper


@operator_required
def cluster(request: HttpRequest) -> HttpResponse:
    """Cluster stats, instances and recent status events, live from the cluster monitor socket."""
    context = {
        "snapshot": cluster_snapshot(),
        "stat_labels": STAT_LABELS,
        "strategies": strategy_names(settings.SEED_CUSTOM_STRATEGIES),
        "can_configure": True,
    }
    return render(request, "dashboard/cluster.html", context)


@operator_required
def employees(request: HttpRequest) -> HttpResponse:
    """Employees with role, status and queue depth by priority, recent messages and conversations."""
    return render(request, "dashboard/employees.html", {"overview": collaboration_overview()})
