"""The seed's ``MultiInstanceManager``: a thin Python entry point over the instances services."""

from __future__ import annotations

from typing import Any

from instances import selectors, services
from instances.balancing import LoadBalanceStrategy
from instances.models import Instance


class MultiInstanceManager:
    """Register, heartbeat, pick and check Seed instances from Python (the same rules as the REST API).

    Constructor arguments (the seed's names):

    - ``heartbeat_interval``: seconds between heartbeats, and between the health passes beat runs.
    - ``instance_timeout``: seconds without a heartbeat or passing probe after which an active instance
      becomes ``unhealthy`` (no longer picked); must exceed ``heartbeat_interval``.
    - ``load_balance_strategy``: the strategy this manager's ``get_instance``/``select`` use.

    The cluster's live settings are stored in the database (``cluster/config``, admin); the constructor
    values become the cluster's settings only when ``save_config()`` is called. Health passes always use
    the cluster's live ``instance_timeout``.
    """

    def __init__(
        self,
        heartbeat_interval: int = 10,
        instance_timeout: int = 30,
        load_balance_strategy: LoadBalanceStrategy | str = LoadBalanceStrategy.ROUND_ROBIN,
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.instance_timeout = instance_timeout
        self.load_balance_strategy = load_balance_strategy

    def register_instance(
        self,
        host: str,
        port: int,
        weight: int = 1,
        metadata: dict | None = None,
        health_check_path: str = "/health",
        verify: bool = True,
    ) -> Instance:
        """Register (or re-register) host:port; raises InstanceUnreachable when the probe fails."""
        instance, _ = services.instance_register(
            host=host,
            port=port,
            weight=weight,
            metadata=metadata,
            health_check_path=health_check_path,
            verify=verify,
            actor="command",
        )
        return instance

    def deregister_instance(self, instance_id: Any) -> None:
        """Remove an instance from the cluster."""
        services.instance_deregister(instance_id=instance_id, actor="command")

    def heartbeat(
        self,
        instance_id: Any,
        cpu_usage: float | None = None,
        memory_usage: float | None = None,
        connections: int | None = None,
    ) -> Instance:
        """Report an instance alive with its figures."""
        return services.instance_heartbeat(
            instance_id=instance_id, cpu_usage=cpu_usage, memory_usage=memory_usage, connections=connections
        )

    def select(self, strategy: LoadBalanceStrategy | str | None = None, exclude: Any = ()) -> tuple[Instance, str]:
        """Pick an active instance; returns it with the strategy used."""
        return services.instance_select(strategy=str(strategy or self.load_balance_strategy), exclude=exclude)

    def get_instance(self, strategy: LoadBalanceStrategy | str | None = None) -> Instance:
        """Pick an active instance (raises NoHealthyInstance when there is none)."""
        return self.select(strategy)[0]

    def cluster_stats(self) -> dict:
        """The seed's cluster statistics."""
        return selectors.cluster_stats()

    def check_instances(self) -> dict:
        """Run one health pass now; returns the counts."""
        return services.instances_check_health(actor="command")

    def save_config(self) -> dict:
        """Store this manager's settings as the cluster's live config; returns the effective config."""
        return services.cluster_config_update(
            load_balance_strategy=str(self.load_balance_strategy),
            heartbeat_interval=self.heartbeat_interval,
            instance_timeout=self.instance_timeout,
        )
