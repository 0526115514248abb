"""The duochat stack: wires the network, data, load balancer and one service per route."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, CfnParameter, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from duochat_common.routing import ROUTES, WEB_PORT, WEB_SERVICE, by_service
from duochat_infra.alb import LoadBalancer
from duochat_infra.config import EnvironmentConfig
from duochat_infra.data import MYSQL_PORT, Cache, Database
from duochat_infra.db_users import ServiceUsers, rds_ca_url
from duochat_infra.monitoring import (
    CONNECTION_METRICS,
    METRICS_NAMESPACE,
    Monitoring,
    service_metric,
)
from duochat_infra.network import Network
from duochat_infra.scheduler import BusinessHoursScheduler
from duochat_infra.service import SCHEDULE_TAG_KEY, SCHEDULE_TAG_VALUE, AppService

# Every image builds with the repository root as context (see /.dockerignore).
REPO_ROOT = Path(__file__).resolve().parents[3]
SERVICE_HEALTH_COMMAND = ("python", "/app/serve.py", "healthcheck")
WEB_HEALTH_COMMAND = ("wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{WEB_PORT}/healthz")
# The private DNS namespace Service Connect resolves service names in.
INTERNAL_NAMESPACE = "duochat.internal"
# Who calls whom inside the VPC (Service Connect), and nothing else: every service that
# verifies tokens fetches auth's JWKS; chat asks boards about room membership; boards asks
# chat for the messages a report names.
INTERNAL_CALLS = {"auth": ("boards", "chat", "notify"), "boards": ("chat",), "chat": ("boards",)}


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
# Every service's image, the service chosen by the build arguments SERVICE and PORT.
SERVICE_DOCKERFILE = "deploy/docker/service.Dockerfile"


def image_for(
    dockerfile: str, *, keep: tuple[str, ...], build_args: dict[str, str] | None = None
) -> ecs.ContainerImage:
    """The image built from ``dockerfile`` (with ``build_args``), whose context holds only
    ``keep``: the asset hash then changes only with what the image is made of, so a change to
    one service does not rebuild and redeploy the others."""
    return ecs.ContainerImage.from_asset(
        str(REPO_ROOT),
        file=dockerfile,
        build_args=build_args,
        exclude=[part for part in _CONTEXT_PARTS if part not in keep],
        # Graviton tasks; the base images are multi-arch, so the same Dockerfile builds both.
        platform=ecr_assets.Platform.LINUX_ARM64,
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
            default_cloud_map_namespace=ecs.CloudMapNamespaceOptions(
                name=f"{config.name}.{INTERNAL_NAMESPACE}", use_for_service_connect=True
            ),
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
            max_connections=config.max_connections,
            long_query_time_s=config.db_long_query_time_s,
        )
        cache = Cache(
            self,
            "Cache",
            vpc=network.vpc,
            subnets=network.data_subnets,
            node_type=config.redis_node_type,
            shards=config.redis_shards,
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
        base_url = (
            f"https://{config.domain_name}"
            if config.certificate_arn
            else f"http://{gateway.alb.load_balancer_dns_name}"
        )
        jwt_key = secretsmanager.Secret.from_secret_name_v2(
            self, "JwtPrivateKey", config.jwt_key_secret_name
        )
        # Service to service: by name through Service Connect, never out through the ALB.
        auth, boards, chat = by_service("auth"), by_service("boards"), by_service("chat")
        common_environment = {
            "DUOCHAT_ENVIRONMENT": "production",
            "DUOCHAT_AUTH_JWKS_URL": f"http://auth:{auth.port}/auth/.well-known/jwks.json",
            "DUOCHAT_LOG_JSON": "true",
            # Only the ALB reaches the services from outside the VPC: its X-Forwarded-For names
            # the client (the per-address limits would otherwise count the ALB's nodes).
            "DUOCHAT_TRUSTED_PROXIES": network.vpc.vpc_cidr_block,
            "REDIS_HOST": cache.host,
            "REDIS_PORT": cache.port,
            "DUOCHAT_REDIS_CLUSTER": "true",
            "DB_TLS_CA_URL": rds_ca_url(self.region),
            # Where the services' own metrics go (monitoring.py): the alarms and the
            # connection-based scaling read this namespace with dimensions Environment
            # (this value) and Service.
            "DUOCHAT_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "DUOCHAT_METRICS_ENVIRONMENT": config.name,
        }
        extra_environment = {
            "chat": {"DUOCHAT_BOARDS_URL": f"http://boards:{boards.port}"},
            "boards": {"DUOCHAT_CHAT_URL": f"http://chat:{chat.port}"},
        }
        extra_secrets = {
            "auth": {"DUOCHAT_JWT_PRIVATE_KEY": ecs.Secret.from_secrets_manager(jwt_key)}
        }
        pools = config.pool_sizes()
        deregistration_delay = Duration.seconds(config.deregistration_delay_s)

        self.services: dict[str, AppService] = {}
        target_groups = {}
        for route in sorted(ROUTES, key=lambda r: r.priority):
            sizing = config.services[route.service]
            target_group = gateway.target_group(
                port=route.port,
                # Liveness only: readiness would fail every target at once in a Redis
                # failover or an RDS reboot, and ECS would replace every task.
                health_path=route.liveness_path,
                deregistration_delay=deregistration_delay,
            )
            target_groups[route.service] = target_group
            db_user = self.database.service_secret(route.service)
            gateway.add_route(route, target_group)
            service = AppService(
                self,
                route.service.capitalize(),
                name=route.service,
                cluster=self.cluster,
                subnets=network.task_subnets,
                image=image_for(
                    SERVICE_DOCKERFILE,
                    keep=(*_PYTHON_PARTS, f"services/{route.service}"),
                    build_args={"SERVICE": route.service, "PORT": str(route.port)},
                ),
                port=route.port,
                health_command=SERVICE_HEALTH_COMMAND,
                environment={
                    **common_environment,
                    "DB_NAME": route.service,
                    "DB_POOL_SIZE": str(pools[route.service].pool_size),
                    "DB_MAX_OVERFLOW": str(pools[route.service].max_overflow),
                    **extra_environment.get(route.service, {}),
                },
                secrets={
                    # The service's own user (JSON); the entrypoint builds the database URL.
                    "DB_SECRET": ecs.Secret.from_secrets_manager(db_user),
                    "REDIS_AUTH_TOKEN": ecs.Secret.from_secrets_manager(cache.auth_token),
                    **extra_secrets.get(route.service, {}),
                },
                sizing=sizing,
                target_group=target_group,
                log_retention=retention,
                removal_policy=removal,
                service_connect=True,
                connections_metric=(
                    service_metric(
                        environment=config.name,
                        service=route.service,
                        name=CONNECTION_METRICS[route.service],
                        statistic="Average",
                    )
                    if route.service in CONNECTION_METRICS
                    else None
                ),
                # Spans go to the ADOT collector beside the task, and on to X-Ray.
                trace_sampling_ratio=config.trace_sampling_ratio,
            )
            self.database.allow_from(service.security_group)
            cache.allow_from(service.security_group)
            self.services[route.service] = service
        for callee, callers in INTERNAL_CALLS.items():
            for caller in callers:
                self.services[callee].allow_internal_from(
                    self.services[caller].security_group, caller
                )
        self.service_users = ServiceUsers(
            self,
            "DatabaseUsers",
            vpc=network.vpc,
            subnets=network.task_subnets,
            master_secret=self.database.secret,
            users=dict(self.database.service_secrets),
            log_retention=retention,
            removal_policy=removal,
        )
        self.service_users.allow_to(self.database.security_group, MYSQL_PORT)
        # A service's first task must find its user; CloudFormation creates the users first.
        for route in ROUTES:
            self.services[route.service].service.node.add_dependency(self.service_users.resource)

        # /metrics is for Prometheus inside the network, on each task's own port.
        gateway.refuse_internal_paths()
        web_target_group = gateway.target_group(
            port=WEB_PORT, health_path="/healthz", deregistration_delay=Duration.seconds(15)
        )
        target_groups[WEB_SERVICE] = web_target_group
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
            min_desired_count=min(s.min_tasks for s in config.services.values()),
            log_retention=retention,
            removal_policy=removal,
        )
        # `cdk deploy -c ... --parameters DuochatProd:AlarmEmail=ops@example.com`; CloudFormation
        # keeps the address for later deploys that do not repeat it.
        alarm_email = CfnParameter(
            self,
            "AlarmEmail",
            type="String",
            default="",
            description="E-mail address for duochat alarms (confirm the subscription mail); "
            "empty for none",
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            environment=config.name,
            alarm_email=alarm_email,
            alb=gateway.alb,
            target_groups=target_groups,
            services={name: s.service for name, s in self.services.items()},
            db_instance=self.database.instance,
            db_max_connections=config.max_connections,
            db_allocated_storage_gib=config.db_allocated_storage_gib,
            cache=cache.replication_group,
            scheduler_function=self.scheduler.function,
            scheduler_log_group=self.scheduler.log_group,
        )

        self._suppress_cdk_singletons()

        CfnOutput(self, "AlbDnsName", value=gateway.alb.load_balancer_dns_name)
        # What deploy/aws/stack_state.py reads to tell whether the stack is held down.
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        CfnOutput(self, "DatabaseInstanceId", value=self.database.instance.instance_identifier)
        CfnOutput(self, "SchedulerFunctionName", value=self.scheduler.function.function_name)
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
