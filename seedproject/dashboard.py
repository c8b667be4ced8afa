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
from seedproject.security import is_loopback

STAT_LABELS = [
    ("total_instances", "Instances"),
    ("healthy_instances", "Healthy"),
    ("unhealthy_instances", "Unhealthy"),
    ("total_connections", "Connections"),
    ("avg_cpu_usage", "Avg CPU %"),
    ("avg_memory_usage", "Avg memory %"),
    ("load_balance_strategy", "Strategy"),
]


def is_local_anonymous(request: HttpRequest) -> bool:
    """The embedded default lets loopback clients in without an account (README: Security)."""
    return settings.SEED_ALLOW_LOCAL_ANONYMOUS and is_loopback(request.META.get("REMOTE_ADDR"))


def operator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Staff only, except for loopback clients in local anonymous mode."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated and request.user.is_staff:
            return view(request, *args, **kwargs)
        if is_local_anonymous(request):
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
