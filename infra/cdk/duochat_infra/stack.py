"""The duochat stack: wires the network, data, load balancer and one service per route."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from duochat_common.routing import ROUTES, WEB_PORT, WEB_SERVICE
from duochat_infra.alb import LoadBalancer
from duochat_infra.config import EnvironmentConfig
from duochat_infra.data import Cache, Database
from duochat_infra.network import Network
from duochat_infra.scheduler import BusinessHoursScheduler
from duochat_infra.service import SCHEDULE_TAG_KEY, SCHEDULE_TAG_VALUE, AppService

# Every image builds with the repository root as context (see /.dockerignore).
REPO_ROOT = Path(__file__).resolve().parents[3]
SERVICE_HEALTH_COMMAND = ("python", "/app/serve.py", "healthcheck")
WEB_HEALTH_COMMAND = ("wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{WEB_PORT}/healthz")


# What /.dockerignore lets into the build context; each image keeps only its own part.
_CONTEXT_PARTS = (
    "pyproject.toml",
    "uv.lock",
    "libs/common",
    "deploy/docker",
    "deploy/web",
    "web",
    *(f"services/{r.service}" for r in ROUTES),
)
_PYTHON_PARTS = ("pyproject.toml", "uv.lock", "libs/common", "deploy/docker")


def image_for(dockerfile: str, *, keep: tuple[str, ...]) -> ecs.ContainerImage:
    """The image built from ``dockerfile``, whose context holds only ``keep``: the asset
    hash then changes only with what the image is made of, so a change to one service does
    not rebuild and redeploy the others."""
    return ecs.ContainerImage.from_asset(
        str(REPO_ROOT),
        file=dockerfile,
        exclude=[part for part in _CONTEXT_PARTS if part not in keep],
        platform=ecr_assets.Platform.LINUX_AMD64,
    )


_RETENTION = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def _retention(days: int) -> logs.RetentionDays:
    if days not in _RETENTION:
        raise ValueError(f"log retention must be one of {sorted(_RETENTION)} days")
    return _RETENTION[days]


class DuochatStack(Stack):
    """duochat on ECS Fargate behind an ALB, for one ``EnvironmentConfig``."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=config.account, region=config.region),
            description=f"duochat ({config.name}): ECS Fargate services behind an ALB",
        )
        retention = _retention(config.log_retention_days)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY

        network = Network(
            self,
            "Network",
            nat_gateways=config.nat_gateways,
            log_retention=retention,
            removal_policy=removal,
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.database = Database(
            self,
            "Database",
            vpc=network.vpc,
            subnets=network.data_subnets,
            instance_type=config.db_instance_type,
            multi_az=config.db_multi_az,
            allocated_storage_gib=config.db_allocated_storage_gib,
            backup_retention=Duration.days(config.db_backup_retention_days),
            log_retention=retention,
            retain=config.retain_data,
        )
        cache = Cache(
            self,
            "Cache",
            vpc=network.vpc,
            subnets=network.data_subnets,
            node_type=config.redis_node_type,
            snapshot_retention_days=config.redis_snapshot_retention_days,
            log_retention=retention,
            retain=config.retain_data,
        )
        gateway = LoadBalancer(
            self,
            "Gateway",
            vpc=network.vpc,
            certificate_arn=config.certificate_arn,
            idle_timeout=Duration.seconds(config.alb_idle_timeout_s),
            access_log_days=config.log_retention_days,
        )
        # Services reach each other through the ALB, by the name the certificate is for.
        base_url = (
            f"https://{config.domain_name}"
            if config.certificate_arn
            else f"http://{gateway.alb.load_balancer_dns_name}"
        )
        jwt_key = secretsmanager.Secret.from_secret_name_v2(
            self, "JwtPrivateKey", config.jwt_key_secret_name
        )
        common_environment = {
            "DUOCHAT_ENVIRONMENT": "production",
            "DUOCHAT_AUTH_JWKS_URL": f"{base_url}/auth/.well-known/jwks.json",
            "DUOCHAT_LOG_JSON": "true",
            "REDIS_HOST": cache.host,
            "REDIS_PORT": cache.port,
        }
        extra_environment = {"chat": {"DUOCHAT_BOARDS_URL": base_url}}
        extra_secrets = {
            "auth": {"DUOCHAT_JWT_PRIVATE_KEY": ecs.Secret.from_secrets_manager(jwt_key)}
        }
        deregistration_delay = Duration.seconds(config.deregistration_delay_s)

        self.services: dict[str, AppService] = {}
        for route in sorted(ROUTES, key=lambda r: r.priority):
            target_group = gateway.target_group(
                port=route.port,
                health_path=route.health_path,
                deregistration_delay=deregistration_delay,
            )
            gateway.add_route(route, target_group)
            service = AppService(
                self,
                route.service.capitalize(),
                name=route.service,
                cluster=self.cluster,
                subnets=network.task_subnets,
                image=image_for(
                    f"services/{route.service}/Dockerfile",
                    keep=(*_PYTHON_PARTS, f"services/{route.service}"),
                ),
                port=route.port,
                health_command=SERVICE_HEALTH_COMMAND,
                environment={
                    **common_environment,
                    "DB_NAME": route.service,
                    **extra_environment.get(route.service, {}),
                },
                secrets={
                    # The RDS secret whole (JSON); the entrypoint builds the database URL.
                    "DB_SECRET": ecs.Secret.from_secrets_manager(self.database.secret),
                    "REDIS_AUTH_TOKEN": ecs.Secret.from_secrets_manager(cache.auth_token),
                    **extra_secrets.get(route.service, {}),
                },
                sizing=config.service_sizing,
                target_group=target_group,
                log_retention=retention,
                removal_policy=removal,
            )
            self.database.allow_from(service.security_group)
            cache.allow_from(service.security_group)
            self.services[route.service] = service

        web_target_group = gateway.target_group(
            port=WEB_PORT, health_path="/readyz", deregistration_delay=Duration.seconds(15)
        )
        gateway.set_default(web_target_group)
        self.services[WEB_SERVICE] = AppService(
            self,
            "Web",
            name=WEB_SERVICE,
            cluster=self.cluster,
            subnets=network.task_subnets,
            image=image_for("web/Dockerfile", keep=("web", "deploy/web")),
            port=WEB_PORT,
            health_command=WEB_HEALTH_COMMAND,
            environment={},
            secrets={},
            sizing=config.web_sizing,
            target_group=web_target_group,
            log_retention=retention,
            removal_policy=removal,
        )

        # Stops the tagged services (AppService tags them) and the database out of hours.
        self.scheduler = BusinessHoursScheduler(
            self,
            "Scheduler",
            cluster=self.cluster,
            db_instance=self.database.instance,
            service_tag_key=SCHEDULE_TAG_KEY,
            service_tag_value=SCHEDULE_TAG_VALUE,
            enabled=config.business_hours_only,
            min_desired_count=config.service_sizing.min_tasks,
            log_retention=retention,
            removal_policy=removal,
        )

        self._suppress_cdk_singletons()

        CfnOutput(self, "AlbDnsName", value=gateway.alb.load_balancer_dns_name)
        CfnOutput(self, "BaseUrl", value=base_url)

    def _suppress_cdk_singletons(self) -> None:
        """CDK's own log-retention Lambda (made for the RDS log exports) is one per stack."""
        for child in self.node.children:
            if child.node.id.startswith("LogRetention"):
                NagSuppressions.add_resource_suppressions(
                    child,
                    [
                        NagPackSuppression(
                            id="AwsSolutions-IAM4",
                            reason="CDK's LogRetention Lambda uses the basic execution role.",
                            applies_to=[
                                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                                "AWSLambdaBasicExecutionRole"
                            ],
                        ),
                        NagPackSuppression(
                            id="AwsSolutions-IAM5",
                            reason="CDK's LogRetention Lambda sets the retention of log groups "
                            "that RDS names at run time.",
                            applies_to=["Resource::*"],
                        ),
                    ],
                    apply_to_children=True,
                )
