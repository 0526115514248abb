"""What differs between environments: one typed value per stack, no copy-pasted stacks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from duochat_common.serving import ALB_IDLE_TIMEOUT_S, KEEP_ALIVE_S

# Any 12 digits satisfy synth; a real account comes from the CLI (CDK_DEFAULT_ACCOUNT).
PLACEHOLDER_ACCOUNT = "123456789012"
DEFAULT_REGION = "ap-northeast-2"  # Seoul, where the old project ran (business hours KST)

# The max_connections the parameter group sets per instance class: RDS MySQL's own default,
# {DBInstanceClassMemory/12582880}, rounded down (DBInstanceClassMemory is the class's memory
# less what RDS keeps for itself), so that memory is never what runs out first.
MAX_CONNECTIONS = {
    "t4g.micro": 60,
    "t4g.small": 130,
    "t4g.medium": 300,
    "t4g.large": 630,
    "m7g.large": 630,
}
# Connections kept out of the services' budget: the RDS admin, the scheduler, the user
# provisioning custom resource, an operator's mysql session.
RESERVED_CONNECTIONS = 10
# chat's MySQL writer keeps its own small pool (one connection plus one overflow) per task.
CHAT_WRITER_CONNECTIONS = 2


@dataclass(frozen=True, kw_only=True)
class Sizing:
    """How big each service runs: Fargate task size, autoscaling bounds and signals."""

    cpu: int = 256
    memory_mib: int = 512
    min_tasks: int = 1
    max_tasks: int = 2
    cpu_target_percent: int = 60
    # Request-per-target scaling for request/response services only.
    requests_per_target: int | None = 600
    # Socket services (chat's WebSockets, notify's SSE) scale on open connections per task:
    # ALB request counts say nothing about long-lived connections.
    connections_per_task: int | None = None
    # A share of the database's connection budget, relative to the other services.
    db_weight: int = 1
    scale_in_cooldown_s: int = 300


def _services(*, min_tasks: int, max_tasks: int, scale: int = 1) -> dict[str, Sizing]:
    """The four backend services. Memory comes from measured figures:

    - auth: argon2id takes 64 MiB per hash in flight, and the security issue bounds concurrent
      hashes so the process stays under 512 MiB; 1 GiB leaves room for the Service Connect proxy.
    - chat: 21.6 KiB per idle subscribed socket (bench/RESULTS.md), so 5,000 sockets per task
      are about 110 MiB over a ~150 MiB process; it scales out at 2,000 per task.
    - boards, notify: ~150 MiB processes; 512 MiB with the proxy.
    """
    return {
        "auth": Sizing(
            cpu=512 * scale, memory_mib=1024 * scale, min_tasks=min_tasks, max_tasks=max_tasks
        ),
        "boards": Sizing(
            cpu=256 * scale, memory_mib=512 * scale, min_tasks=min_tasks, max_tasks=max_tasks
        ),
        "chat": Sizing(
            cpu=512 * scale,
            memory_mib=1024 * scale,
            min_tasks=min_tasks,
            max_tasks=max_tasks,
            requests_per_target=None,
            connections_per_task=2000,
            db_weight=2,
            scale_in_cooldown_s=900,
        ),
        "notify": Sizing(
            cpu=256 * scale,
            memory_mib=512 * scale,
            min_tasks=min_tasks,
            max_tasks=max_tasks,
            requests_per_target=None,
            connections_per_task=2000,
            scale_in_cooldown_s=900,
        ),
    }


@dataclass(frozen=True)
class PoolSize:
    """One task's SQLAlchemy pool (``pool_size`` + ``max_overflow``)."""

    pool_size: int
    max_overflow: int

    @property
    def connections(self) -> int:
        return self.pool_size + self.max_overflow


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    """One deployment of duochat (``dev``, ``prod``), passed to ``DuochatStack``."""

    name: str
    account: str = PLACEHOLDER_ACCOUNT
    region: str = DEFAULT_REGION
    # HTTPS on 443 (and a redirect from 80) when given; plain HTTP on 80 otherwise.
    certificate_arn: str | None = None
    # The public host name that points at the ALB (the deploy smoke test calls it).
    domain_name: str | None = None
    # Secrets Manager secret holding auth's Ed25519 private key (PEM); created before deploy.
    jwt_key_secret_name: str = "duochat/dev/jwt-private-key"  # noqa: S105 - a name
    nat_gateways: int = 1
    services: Mapping[str, Sizing] = field(
        default_factory=lambda: _services(min_tasks=1, max_tasks=2)
    )
    web_sizing: Sizing = Sizing(min_tasks=1, max_tasks=2)
    db_instance_type: str = "t4g.micro"
    db_multi_az: bool = False
    db_allocated_storage_gib: int = 20
    db_backup_retention_days: int = 7
    # Statements slower than this go to the slow query log (exported to CloudWatch Logs).
    db_long_query_time_s: float = 0.5
    redis_node_type: str = "cache.t4g.micro"
    # ElastiCache runs with cluster mode on: this many shards (a primary and a replica each);
    # every service's keys are laid out for a cluster (DUOCHAT_REDIS_CLUSTER).
    redis_shards: int = 1
    redis_snapshot_retention_days: int = 1
    log_retention_days: int = 30
    alb_idle_timeout_s: int = ALB_IDLE_TIMEOUT_S
    deregistration_delay_s: int = 60
    # Run only 09:00-18:00 on weekdays (Asia/Seoul), as the old project did; the
    # BusinessHoursScheduler stops the services and the database outside those hours.
    business_hours_only: bool = True
    # prod keeps its database, logs and buckets when the stack is destroyed.
    retain_data: bool = False
    # The share of traces sent to X-Ray (by trace, so a trace is whole or absent): X-Ray bills
    # per trace recorded.
    trace_sampling_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.certificate_arn and not self.domain_name:
            raise ValueError(f"{self.name}: a certificate needs the domain_name it is for")
        if self.alb_idle_timeout_s < 300:
            raise ValueError("WebSocket and SSE need an ALB idle timeout of at least 300 s")
        if self.alb_idle_timeout_s >= KEEP_ALIVE_S:
            raise ValueError(
                f"the ALB idle timeout ({self.alb_idle_timeout_s} s) must stay below the "
                f"servers' keep-alive ({KEEP_ALIVE_S} s, duochat_common.serving), or the ALB "
                "reuses connections the servers are closing (502s)"
            )
        if not 0 < self.trace_sampling_ratio <= 1:
            raise ValueError("trace_sampling_ratio must be in (0, 1]")
        if self.db_instance_type not in MAX_CONNECTIONS:
            raise ValueError(f"no connection budget for {self.db_instance_type}")
        for name, pool in self.pool_sizes().items():
            if pool.pool_size < 2:
                raise ValueError(
                    f"{self.name}: {name} would get a pool of {pool.connections} connections "
                    f"per task on {self.db_instance_type}; use a bigger instance, fewer "
                    "max_tasks, or RDS Proxy"
                )

    @property
    def stack_name(self) -> str:
        return f"Duochat{self.name.capitalize()}"

    @property
    def max_connections(self) -> int:
        return MAX_CONNECTIONS[self.db_instance_type]

    def pool_sizes(self) -> dict[str, PoolSize]:
        """Each service's pool per task, so that every task at ``max_tasks`` fits together in
        ``max_connections`` less the reserve (chat's writer connections counted apart).

        A task's share is ``db_weight`` units of the budget spread over all the tasks that
        can run; two thirds of it stay open, the rest is overflow for bursts.
        """
        budget = self.max_connections - RESERVED_CONNECTIONS
        budget -= CHAT_WRITER_CONNECTIONS * self.services["chat"].max_tasks
        units = sum(s.db_weight * s.max_tasks for s in self.services.values())
        sizes = {}
        for name, sizing in self.services.items():
            per_task = budget * sizing.db_weight // units
            pool = max(1, per_task * 2 // 3)
            sizes[name] = PoolSize(pool_size=pool, max_overflow=per_task - pool)
        return sizes

    def connections_at_max(self) -> int:
        """Connections every service's tasks can open at their ``max_tasks``, plus the reserve."""
        pools = self.pool_sizes()
        used = sum(pools[n].connections * s.max_tasks for n, s in self.services.items())
        writers = CHAT_WRITER_CONNECTIONS * self.services["chat"].max_tasks
        return used + writers + RESERVED_CONNECTIONS


def dev(**overrides: object) -> EnvironmentConfig:
    """Small and cheap: one NAT gateway, single-AZ database, one task per service."""
    values: dict[str, object] = {"name": "dev"}
    values.update(overrides)
    return EnvironmentConfig(**values)  # type: ignore[arg-type]


def prod(**overrides: object) -> EnvironmentConfig:
    """Two of everything across two AZs, and data kept on destroy."""
    values: dict[str, object] = {
        "name": "prod",
        "jwt_key_secret_name": "duochat/prod/jwt-private-key",
        "nat_gateways": 2,
        "services": _services(min_tasks=2, max_tasks=8),
        "web_sizing": Sizing(min_tasks=2, max_tasks=4),
        "db_instance_type": "t4g.medium",
        "db_multi_az": True,
        "db_allocated_storage_gib": 50,
        "db_backup_retention_days": 14,
        "redis_node_type": "cache.t4g.small",
        "redis_shards": 2,
        "redis_snapshot_retention_days": 7,
        "log_retention_days": 90,
        "retain_data": True,
        "trace_sampling_ratio": 0.05,
    }
    values.update(overrides)
    return EnvironmentConfig(**values)  # type: ignore[arg-type]
