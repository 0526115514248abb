"""One Fargate service behind the ALB: task, container, logs, security group, autoscaling.

The template never carries a ``DesiredCount``. CloudFormation would re-apply it on every update
of the service (aws-cdk#3919): a deploy at night would start tasks the business-hours scheduler
had stopped, against a stopped database, and an autoscaled service would fall back to its
template count on every release. Without it, CloudFormation creates the service with one task,
Application Auto Scaling raises it to ``min_tasks``, and a deploy changes only the task
definition: a service held at zero stays at zero and its next start runs the new version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy, Tags
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from duochat_infra.collector import TraceCollector
from duochat_infra.config import Sizing

SCHEDULE_TAG_KEY = "duochat:scheduled"
SCHEDULE_TAG_VALUE = "true"
# ECS sends SIGTERM, waits this long, then SIGKILL; uvicorn's graceful timeout is below it.
STOP_TIMEOUT = Duration.seconds(30)
# Internal calls (Service Connect) reach a task on its port plus this, through the proxy; the
# ALB's traffic on the port itself bypasses the proxy, so WebSockets and SSE never pass it.
SERVICE_CONNECT_PORT_OFFSET = 100
# Graviton: about 20 % cheaper per vCPU-hour than x86 on Fargate.
CPU_ARCHITECTURE = ecs.CpuArchitecture.ARM64


class AppService(Construct):
    """A Fargate service whose tasks accept traffic only from the ALB, on their own port."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        cluster: ecs.ICluster,
        subnets: ec2.SubnetSelection,
        image: ecs.ContainerImage,
        port: int,
        health_command: Sequence[str],
        environment: Mapping[str, str],
        secrets: Mapping[str, ecs.Secret],
        sizing: Sizing,
        target_group: elbv2.ApplicationTargetGroup,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        service_connect: bool = False,
        connections_metric: cloudwatch.IMetric | None = None,
        trace_sampling_ratio: float | None = None,
    ) -> None:
        """``trace_sampling_ratio`` adds the trace collector beside the service (None: none)."""
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=cluster.vpc,
            description=f"duochat {name} tasks",
            # Out to the NAT (images, secrets, logs), the other services (Service Connect)
            # and the data tier.
            allow_all_outbound=True,
        )
        task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=sizing.cpu,
            memory_limit_mib=sizing.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=CPU_ARCHITECTURE,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal_policy
        )
        # The image's files are read-only; /tmp (uvicorn's log config, nginx's temp files) is
        # a task volume of its own.
        task_definition.add_volume(name="tmp")
        tracing: dict[str, str] = {}
        if trace_sampling_ratio is not None:
            self.collector = TraceCollector(
                self,
                "Traces",
                task_definition=task_definition,
                log_group=log_group,
                stream_prefix=f"{name}-adot",
                sampling_ratio=trace_sampling_ratio,
            )
            tracing = self.collector.environment
        container = task_definition.add_container(
            name,
            image=image,
            port_mappings=[ecs.PortMapping(container_port=port, name=name)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name, log_group=log_group),
            environment={**environment, **tracing},
            secrets=dict(secrets),
            health_check=ecs.HealthCheck(
                command=["CMD", *health_command],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
            stop_timeout=STOP_TIMEOUT,
            readonly_root_filesystem=True,
        )
        container.add_mount_points(
            ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False)  # noqa: S108
        )
        self.port = port
        self.internal_port = port + SERVICE_CONNECT_PORT_OFFSET
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task_definition,
            # No desired_count: see the module docstring.
            security_groups=[self.security_group],
            vpc_subnets=subnets,
            assign_public_ip=False,
            # A rolling deploy: new tasks must pass the ALB health check before old ones
            # go; a deploy that keeps failing rolls back by itself.
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=Duration.seconds(120),
            enable_ecs_managed_tags=True,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            service_connect_configuration=(
                ecs.ServiceConnectProps(
                    services=[
                        ecs.ServiceConnectService(
                            port_mapping_name=name,
                            dns_name=name,
                            port=port,
                            ingress_port_override=self.internal_port,
                        )
                    ],
                    log_driver=ecs.LogDrivers.aws_logs(
                        stream_prefix=f"{name}-connect", log_group=log_group
                    ),
                )
                if service_connect
                else None
            ),
        )
        # Registers the tasks and opens the task security group to the ALB's on `port`.
        self.service.attach_to_application_target_group(target_group)
        # The business-hours scheduler finds the services to start and stop by this tag.
        Tags.of(self.service).add(
            SCHEDULE_TAG_KEY, SCHEDULE_TAG_VALUE, include_resource_types=["AWS::ECS::Service"]
        )

        scaling = self.service.auto_scale_task_count(
            min_capacity=sizing.min_tasks, max_capacity=sizing.max_tasks
        )
        # Out fast, in slowly: scaling in closes sockets, whose clients reconnect elsewhere.
        scale_in = Duration.seconds(sizing.scale_in_cooldown_s)
        scale_out = Duration.seconds(60)
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=sizing.cpu_target_percent,
            scale_in_cooldown=scale_in,
            scale_out_cooldown=scale_out,
        )
        if sizing.requests_per_target:
            scaling.scale_on_request_count(
                "Requests",
                requests_per_target=sizing.requests_per_target,
                target_group=target_group,
                scale_in_cooldown=scale_in,
                scale_out_cooldown=scale_out,
            )
        if sizing.connections_per_task:
            if connections_metric is None:
                raise ValueError(f"{name} scales on connections: give connections_metric")
            scaling.scale_to_track_custom_metric(
                "Connections",
                metric=connections_metric,
                target_value=sizing.connections_per_task,
                scale_in_cooldown=scale_in,
                scale_out_cooldown=scale_out,
            )

        NagSuppressions.add_resource_suppressions(
            task_definition,
            [
                NagPackSuppression(
                    id="AwsSolutions-ECS2",
                    reason="Only non-secret settings (URLs, names) are plain environment "
                    "variables; every secret is injected from Secrets Manager.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="CDK's execution-role policy: ecr:GetAuthorizationToken has no "
                    "resource-level permission.",
                    applies_to=["Resource::*"],
                ),
            ],
            apply_to_children=True,
        )

    def allow_internal_from(self, peer: ec2.ISecurityGroup, caller: str) -> None:
        """Let ``peer`` call this service through Service Connect (its proxy's port only)."""
        self.security_group.add_ingress_rule(
            peer, ec2.Port.tcp(self.internal_port), f"Service Connect from {caller}"
        )
