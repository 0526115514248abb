"""What differs between environments: one typed value per stack, no copy-pasted stacks."""

from __future__ import annotations

from dataclasses import dataclass

# Any 12 digits satisfy synth; a real account comes from the CLI (CDK_DEFAULT_ACCOUNT).
PLACEHOLDER_ACCOUNT = "123456789012"
DEFAULT_REGION = "ap-northeast-2"  # Seoul, where the old project ran (business hours KST)


@dataclass(frozen=True, kw_only=True)
class Sizing:
    """How big each service runs: Fargate task size and autoscaling bounds."""

    cpu: int = 256
    memory_mib: int = 512
    min_tasks: int = 1
    max_tasks: int = 4
    cpu_target_percent: int = 60
    requests_per_target: int = 600


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    """One deployment of duochat (``dev``, ``prod``), passed to ``DuochatStack``."""

    name: str
    account: str = PLACEHOLDER_ACCOUNT
    region: str = DEFAULT_REGION
    # HTTPS on 443 (and a redirect from 80) when given; plain HTTP on 80 otherwise.
    certificate_arn: str | None = None
    # The public host name that points at the ALB; needed with a certificate, since the
    # services call each other through the ALB by that name.
    domain_name: str | None = None
    # Secrets Manager secret holding auth's Ed25519 private key (PEM); created before deploy.
    jwt_key_secret_name: str = "duochat/dev/jwt-private-key"  # noqa: S105 - a name
    nat_gateways: int = 1
    service_sizing: Sizing = Sizing()
    web_sizing: Sizing = Sizing(min_tasks=1, max_tasks=2)
    db_instance_type: str = "t4g.micro"
    db_multi_az: bool = False
    db_allocated_storage_gib: int = 20
    db_backup_retention_days: int = 7
    redis_node_type: str = "cache.t4g.micro"
    redis_snapshot_retention_days: int = 1
    log_retention_days: int = 30
    alb_idle_timeout_s: int = 600
    deregistration_delay_s: int = 60
    # Run only 09:00-18:00 on weekdays (Asia/Seoul), as the old project did; the
    # BusinessHoursScheduler stops the services and the database outside those hours.
    business_hours_only: bool = True
    # prod keeps its database, logs and buckets when the stack is destroyed.
    retain_data: bool = False

    def __post_init__(self) -> None:
        if self.certificate_arn and not self.domain_name:
            raise ValueError(f"{self.name}: a certificate needs the domain_name it is for")
        if self.alb_idle_timeout_s < 300:
            raise ValueError("WebSocket and SSE need an ALB idle timeout of at least 300 s")

    @property
    def stack_name(self) -> str:
        return f"Duochat{self.name.capitalize()}"


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
        "service_sizing": Sizing(cpu=512, memory_mib=1024, min_tasks=2, max_tasks=10),
        "web_sizing": Sizing(min_tasks=2, max_tasks=4),
        "db_instance_type": "t4g.medium",
        "db_multi_az": True,
        "db_allocated_storage_gib": 50,
        "db_backup_retention_days": 14,
        "redis_node_type": "cache.t4g.small",
        "redis_snapshot_retention_days": 7,
        "log_retention_days": 90,
        "retain_data": True,
    }
    values.update(overrides)
    return EnvironmentConfig(**values)  # type: ignore[arg-type]
