"""One Fargate service behind the ALB: task, container, logs, security group, autoscaling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from duochat_infra.config import Sizing

SCHEDULE_TAG_KEY = "duochat:scheduled"
SCHEDULE_TAG_VALUE = "true"
# ECS sends SIGTERM, waits this long, then SIGKILL; uvicorn's graceful timeout is below it.
STOP_TIMEOUT = Duration.seconds(30)


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
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=cluster.vpc,
            description=f"duochat {name} tasks",
            # Out to the NAT (images, secrets, logs), the ALB (service-to-service calls
            # go through it) and the data tier.
            allow_all_outbound=True,
        )
        task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=sizing.cpu,
            memory_limit_mib=sizing.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal_policy
        )
        task_definition.add_container(
            name,
            image=image,
            port_mappings=[ecs.PortMapping(container_port=port, name=name)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name, log_group=log_group),
            environment=dict(environment),
            secrets=dict(secrets),
            health_check=ecs.HealthCheck(
                command=["CMD", *health_command],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
            stop_timeout=STOP_TIMEOUT,
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task_definition,
            desired_count=sizing.min_tasks,
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
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=sizing.cpu_target_percent,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
        )
        scaling.scale_on_request_count(
            "Requests",
            requests_per_target=sizing.requests_per_target,
            target_group=target_group,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
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
