"""Alarms to an SNS topic (an e-mail address given at deploy) and one dashboard per environment.

Outside business hours the services and the database are stopped on purpose, and their
metrics simply stop: every alarm treats missing data as not breaching. A failed morning start
has its own alarm, read from the scheduler's JSON log.

The services' own figures come from the observability work (Prometheus metrics shipped to
CloudWatch in ``METRICS_NAMESPACE``, dimensions ``Environment`` and ``Service``):
``duochat_connections`` (open WebSockets or SSE streams of one task) and
``duochat_events_lag`` (entries a consumer group has not read yet).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import CfnCondition, CfnParameter, Duration, Fn
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

METRICS_NAMESPACE = "Duochat"
CONNECTIONS_METRIC = "duochat_connections"
LAG_METRIC = "duochat_events_lag"
_FIVE_MINUTES = Duration.minutes(5)


def service_metric(
    *, environment: str, service: str, name: str, statistic: str
) -> cloudwatch.Metric:
    """One of the services' own metrics (see the module docstring)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"Environment": environment, "Service": service},
        statistic=statistic,
        period=Duration.minutes(1),
    )


class Monitoring(Construct):
    """The topic, the alarms on it, and the dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: str,
        alarm_email: CfnParameter,
        alb: elbv2.ApplicationLoadBalancer,
        target_groups: Mapping[str, elbv2.ApplicationTargetGroup],
        services: Mapping[str, ecs.FargateService],
        db_instance: rds.DatabaseInstance,
        db_max_connections: int,
        db_allocated_storage_gib: int,
        cache: elasticache.CfnReplicationGroup,
        scheduler_function: lambda_.IFunction,
        scheduler_log_group: logs.ILogGroup,
        lag_services: tuple[str, ...] = ("chat", "notify"),
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "Alarms", display_name=f"duochat {environment} alarms", enforce_ssl=True
        )
        subscription = sns.Subscription(
            self,
            "Email",
            topic=self.topic,
            protocol=sns.SubscriptionProtocol.EMAIL,
            endpoint=alarm_email.value_as_string,
        )
        # Subscribed only when an address was given: deploys need no e-mail to succeed.
        no_email = Fn.condition_equals(alarm_email.value_as_string, "")
        has_email = CfnCondition(self, "HasAlarmEmail", expression=Fn.condition_not(no_email))
        cfn_subscription = subscription.node.default_child
        assert isinstance(cfn_subscription, sns.CfnSubscription)
        cfn_subscription.cfn_options.condition = has_email
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(
            name: str,
            metric: cloudwatch.IMetric,
            *,
            threshold: float,
            description: str,
            comparison: cloudwatch.ComparisonOperator = (
                cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            ),
            periods: int = 3,
            datapoints: int = 2,
        ) -> None:
            made = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=periods,
                datapoints_to_alarm=datapoints,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"duochat {environment}: {description}",
            )
            made.add_alarm_action(action)
            made.add_ok_action(action)
            self.alarms[name] = made

        # --- the load balancer: the users' view -------------------------------------------
        lb = alb.metrics
        five_xx = cloudwatch.MathExpression(
            expression="100 * (elb + target) / MAX([requests, 1])",
            using_metrics={
                "elb": lb.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=_FIVE_MINUTES),
                "target": lb.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=_FIVE_MINUTES
                ),
                "requests": lb.request_count(period=_FIVE_MINUTES),
            },
            label="5xx %",
            period=_FIVE_MINUTES,
        )
        alarm("Alb5xxRate", five_xx, threshold=5, description="over 5 % of requests get a 5xx")
        for name, group in target_groups.items():
            alarm(
                f"Unhealthy{name.capitalize()}",
                group.metrics.unhealthy_host_count(period=Duration.minutes(1), statistic="Max"),
                threshold=1,
                periods=5,
                datapoints=3,
                description=f"{name} has unhealthy targets",
            )

        # --- the database -----------------------------------------------------------------
        alarm(
            "DbCpu",
            db_instance.metric_cpu_utilization(period=_FIVE_MINUTES),
            threshold=80,
            description="RDS CPU over 80 %",
        )
        alarm(
            "DbConnections",
            db_instance.metric_database_connections(period=Duration.minutes(1), statistic="Max"),
            threshold=int(db_max_connections * 0.8),
            periods=5,
            datapoints=3,
            description=f"RDS connections over 80 % of max_connections ({db_max_connections})",
        )
        alarm(
            "DbFreeStorage",
            db_instance.metric_free_storage_space(period=_FIVE_MINUTES, statistic="Min"),
            threshold=db_allocated_storage_gib * 1024**3 * 0.1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            description="RDS free storage under 10 % (storage autoscaling may be at its cap)",
        )

        # --- Redis: each node of the replication group --------------------------------------
        for node in ("001", "002"):
            node_id = Fn.join("-", [cache.ref, node])
            for metric_name, label in (
                ("EngineCPUUtilization", "CPU"),
                ("DatabaseMemoryUsagePercentage", "memory"),
            ):
                alarm(
                    f"Redis{label.capitalize()}{node}",
                    cloudwatch.Metric(
                        namespace="AWS/ElastiCache",
                        metric_name=metric_name,
                        dimensions_map={"CacheClusterId": node_id},
                        statistic="Average",
                        period=_FIVE_MINUTES,
                    ),
                    threshold=80,
                    description=f"Redis node {node} {label} over 80 %",
                )

        # --- the event consumers ------------------------------------------------------------
        for name in lag_services:
            alarm(
                f"ConsumerLag{name.capitalize()}",
                service_metric(
                    environment=environment, service=name, name=LAG_METRIC, statistic="Maximum"
                ),
                threshold=1000,
                periods=5,
                datapoints=5,
                description=f"{name}'s event consumers are over 1,000 entries behind",
            )

        # --- the business-hours scheduler ---------------------------------------------------
        alarm(
            "SchedulerErrors",
            scheduler_function.metric_errors(period=_FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            periods=1,
            datapoints=1,
            description="the business-hours scheduler Lambda failed",
        )
        failed_starts = logs.MetricFilter(
            self,
            "FailedStarts",
            log_group=scheduler_log_group,
            metric_namespace=METRICS_NAMESPACE,
            metric_name=f"SchedulerFailedStarts{environment.capitalize()}",
            filter_pattern=logs.FilterPattern.literal(
                '{ $.message = "action.done" && $.action = "start" && $.level = "ERROR" }'
            ),
            metric_value="1",
            default_value=0,
        )
        alarm(
            "FailedStart",
            failed_starts.metric(statistic="Sum", period=_FIVE_MINUTES),
            threshold=1,
            periods=1,
            datapoints=1,
            description="the morning start failed: the stack did not come up",
        )

        self.dashboard = self._dashboard(
            environment=environment,
            alb=alb,
            services=services,
            db_instance=db_instance,
            cache=cache,
            five_xx=five_xx,
            lag_services=lag_services,
        )
        NagSuppressions.add_resource_suppressions(
            self.topic,
            [
                NagPackSuppression(
                    id="AwsSolutions-SNS2",
                    reason="Alarm notifications carry metric names and thresholds only; a KMS "
                    "key would need a key policy for CloudWatch and costs a key per stage.",
                )
            ],
        )

    def _dashboard(
        self,
        *,
        environment: str,
        alb: elbv2.ApplicationLoadBalancer,
        services: Mapping[str, ecs.FargateService],
        db_instance: rds.DatabaseInstance,
        cache: elasticache.CfnReplicationGroup,
        five_xx: cloudwatch.IMetric,
        lag_services: tuple[str, ...],
    ) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard")
        width = 8
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=24, height=4
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Requests and 5xx %",
                left=[alb.metrics.request_count()],
                right=[five_xx],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Response time p99",
                left=[alb.metrics.target_response_time(statistic="p99")],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Open connections per task",
                left=[
                    service_metric(
                        environment=environment,
                        service=name,
                        name=CONNECTIONS_METRIC,
                        statistic="Average",
                    )
                    for name in lag_services
                ],
                width=width,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Task CPU %",
                left=[s.metric_cpu_utilization() for s in services.values()],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Task memory %",
                left=[s.metric_memory_utilization() for s in services.values()],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Consumer lag (entries)",
                left=[
                    service_metric(
                        environment=environment, service=name, name=LAG_METRIC, statistic="Maximum"
                    )
                    for name in lag_services
                ],
                width=width,
            ),
        )
        node = Fn.join("-", [cache.ref, "001"])
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="RDS CPU % and connections",
                left=[db_instance.metric_cpu_utilization()],
                right=[db_instance.metric_database_connections()],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="RDS free storage",
                left=[db_instance.metric_free_storage_space()],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Redis primary CPU and memory %",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/ElastiCache",
                        metric_name=name,
                        dimensions_map={"CacheClusterId": node},
                    )
                    for name in ("EngineCPUUtilization", "DatabaseMemoryUsagePercentage")
                ],
                width=width,
            ),
        )
        return dashboard
