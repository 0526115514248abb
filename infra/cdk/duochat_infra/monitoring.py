"""Alarms to an SNS topic (an e-mail address given at deploy) and one dashboard per environment.

Outside business hours the services and the database are stopped on purpose, and their
metrics simply stop: every alarm treats missing data as not breaching. A failed morning start
has its own alarm, read from the scheduler's JSON log.

The services' own figures are their Prometheus metrics, which each task writes once a minute
as EMF log lines (``duochat_common.emf``) into ``METRICS_NAMESPACE`` with the dimensions
``Environment`` and ``Service``, under the same names as on ``/metrics``: a gauge is the task's
value (the most lagging group for ``duochat_events_lag``), a counter its increase over the
minute, a histogram the minute's observations, so ``p99`` works on it.
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
# Open WebSockets (chat) and SSE streams (notify) of one task: what those two scale on.
CONNECTION_METRICS = {"chat": "duochat_chat_connections", "notify": "duochat_notify_streams"}
LAG_METRIC = "duochat_events_lag"
DEAD_LETTER_METRIC = "duochat_events_dead_lettered"
STORED_METRIC = "duochat_chat_messages_stored"
SEND_TO_DELIVER_METRIC = "duochat_chat_send_to_deliver_seconds"
COMMIT_METRIC = "duochat_chat_commit_seconds"
NOTIFY_DELIVERY_METRIC = "duochat_notify_delivery_seconds"
LOOP_LAG_METRIC = "duochat_event_loop_lag_seconds"
# Thresholds: a message should reach the other member well within a second; a notification
# within the presence hold (10 s) plus a few seconds; a loop that runs a quarter second late
# delays everything the task does.
SEND_TO_DELIVER_P99_S = 1.0
NOTIFY_DELIVERY_P99_S = 15.0
LOOP_LAG_P99_S = 0.25
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
        backend_services: tuple[str, ...] = ("auth", "boards", "chat", "notify"),
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
        def mine(service: str, name: str, statistic: str) -> cloudwatch.Metric:
            return service_metric(
                environment=environment, service=service, name=name, statistic=statistic
            )

        for name in lag_services:
            alarm(
                f"ConsumerLag{name.capitalize()}",
                mine(name, LAG_METRIC, "Maximum"),
                threshold=1000,
                periods=5,
                datapoints=5,
                description=f"{name}'s event consumers are over 1,000 entries behind",
            )
            alarm(
                f"DeadLetters{name.capitalize()}",
                mine(name, DEAD_LETTER_METRIC, "Sum"),
                threshold=1,
                periods=1,
                datapoints=1,
                description=f"{name} moved events to a dead-letter stream (<stream>.dead)",
            )

        # --- the users' view of chat and notify ---------------------------------------------
        alarm(
            "SendToDeliverP99",
            mine("chat", SEND_TO_DELIVER_METRIC, "p99"),
            threshold=SEND_TO_DELIVER_P99_S,
            periods=5,
            datapoints=3,
            description=f"messages take over {SEND_TO_DELIVER_P99_S:g} s from SEND to the "
            "other member (p99)",
        )
        alarm(
            "NotifyDeliveryP99",
            mine("notify", NOTIFY_DELIVERY_METRIC, "p99"),
            threshold=NOTIFY_DELIVERY_P99_S,
            periods=5,
            datapoints=3,
            description=f"notifications take over {NOTIFY_DELIVERY_P99_S:g} s to reach their "
            "user's stream (p99)",
        )
        for name in backend_services:
            alarm(
                f"EventLoopLag{name.capitalize()}",
                mine(name, LOOP_LAG_METRIC, "p99"),
                threshold=LOOP_LAG_P99_S,
                periods=5,
                datapoints=5,
                description=f"{name}'s event loop runs over {LOOP_LAG_P99_S:g} s late (p99): "
                "every request and message of its tasks waits that long",
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
            backend_services=backend_services,
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
        backend_services: tuple[str, ...],
    ) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard")
        width = 8

        def mine(service: str, name: str, statistic: str, label: str) -> cloudwatch.Metric:
            return service_metric(
                environment=environment, service=service, name=name, statistic=statistic
            ).with_(label=label)

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
                title="Open sockets (all tasks) and per task",
                left=[
                    mine(name, metric, "Sum", f"{name} sockets")
                    for name, metric in CONNECTION_METRICS.items()
                ],
                right=[
                    mine(name, metric, "Average", f"{name} per task")
                    for name, metric in CONNECTION_METRICS.items()
                ],
                width=width,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Messages stored per second",
                left=[
                    cloudwatch.MathExpression(
                        expression="stored / 60",
                        using_metrics={"stored": mine("chat", STORED_METRIC, "Sum", "stored")},
                        label="msgs/s",
                        period=Duration.minutes(1),
                    )
                ],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="SEND to delivered (s)",
                left=[mine("chat", SEND_TO_DELIVER_METRIC, stat, stat) for stat in ("p50", "p99")],
                right=[mine("chat", COMMIT_METRIC, "p99", "commit p99")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=SEND_TO_DELIVER_P99_S, label="p99 alarm")
                ],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Notification delivery p99 (s)",
                left=[mine("notify", NOTIFY_DELIVERY_METRIC, "p99", "notify p99")],
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
                left=[mine(name, LAG_METRIC, "Maximum", name) for name in lag_services],
                width=width,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Event-loop lag p99 (s)",
                left=[mine(name, LOOP_LAG_METRIC, "p99", name) for name in backend_services],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Dead-lettered events",
                left=[mine(name, DEAD_LETTER_METRIC, "Sum", name) for name in lag_services],
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
