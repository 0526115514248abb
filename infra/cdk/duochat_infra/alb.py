"""The public entry: an ALB whose path rules and target groups come from the route table."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from duochat_common.routing import INTERNAL_PATHS, INTERNAL_PRIORITY, Route

MAX_PATTERNS_PER_RULE = 5  # an ALB quota: condition values per rule


class LoadBalancer(Construct):
    """An internet-facing ALB: HTTPS on 443 with a certificate (80 redirects), else HTTP on 80."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        certificate_arn: str | None,
        idle_timeout: Duration,
        access_log_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self._vpc = vpc
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="duochat ALB", allow_all_outbound=False
        )
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=self.security_group,
            # WebSocket and SSE connections stay open between heart-beats.
            idle_timeout=idle_timeout,
            drop_invalid_header_fields=True,
        )
        # Log buckets outlive the stack: they are the record of what happened before it went.
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(access_log_days))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.alb.log_access_logs(access_logs, prefix="alb")
        NagSuppressions.add_resource_suppressions(
            access_logs,
            [
                NagPackSuppression(
                    id="AwsSolutions-S1",
                    reason="This bucket is itself the access-log destination of the ALB.",
                )
            ],
            apply_to_children=True,
        )

        if certificate_arn:
            self.listener = self.alb.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                open=True,
            )
            self.alb.add_listener(
                "HttpRedirect",
                port=80,
                open=True,
                default_action=elbv2.ListenerAction.redirect(
                    protocol="HTTPS", port="443", permanent=True
                ),
            )
        else:
            self.listener = self.alb.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=True
            )
        NagSuppressions.add_resource_suppressions(
            self.security_group,
            [
                NagPackSuppression(
                    id="AwsSolutions-EC23",
                    reason="The public load balancer accepts the internet on its listener "
                    "ports only.",
                )
            ],
        )

    def target_group(
        self, *, port: int, health_path: str, deregistration_delay: Duration
    ) -> elbv2.ApplicationTargetGroup:
        """A target group of Fargate tasks (by IP) health-checked on their own port."""
        return elbv2.ApplicationTargetGroup(
            self,
            f"Targets{port}",
            vpc=self._vpc,
            port=port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            # Lets open WebSockets and SSE streams drain before ECS stops the task.
            deregistration_delay=deregistration_delay,
            health_check=elbv2.HealthCheck(
                path=health_path,
                port=str(port),
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )

    def add_route(self, route: Route, target_group: elbv2.ApplicationTargetGroup) -> None:
        """A listener rule: ``route``'s path patterns at ``route``'s priority."""
        if len(route.paths) > MAX_PATTERNS_PER_RULE:
            raise ValueError(f"{route.service}: an ALB rule takes at most 5 path patterns")
        self.listener.add_target_groups(
            f"Rule{route.service.capitalize()}",
            priority=route.priority,
            conditions=[elbv2.ListenerCondition.path_patterns(list(route.paths))],
            target_groups=[target_group],
        )

    def refuse_internal_paths(self) -> None:
        """404 for the paths each service serves on its own port only (``/metrics``), before
        any route's rule: the default rule would otherwise hand them to the web app."""
        self.listener.add_action(
            "Internal",
            priority=INTERNAL_PRIORITY,
            conditions=[elbv2.ListenerCondition.path_patterns(list(INTERNAL_PATHS))],
            action=elbv2.ListenerAction.fixed_response(
                404,
                content_type="application/json",
                message_body='{"code":"not_found","message":"not found"}',
            ),
        )

    def set_default(self, target_group: elbv2.ApplicationTargetGroup) -> None:
        """The default rule (``/*``): what no path rule matched."""
        self.listener.add_target_groups("Default", target_groups=[target_group])
