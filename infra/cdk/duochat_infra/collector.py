"""The ADOT collector beside each service's container: it takes the service's spans over
OTLP/HTTP on localhost and sends them to X-Ray.

It carries traces only. Metrics go to CloudWatch as EMF log lines that the service writes itself
(``duochat_common.emf``): the collector's ``awsemf`` exporter turns a Prometheus histogram into
a statistic set, from which CloudWatch cannot compute the send-to-deliver p99 the dashboard and
the alarms need, while the service's own lines carry each minute's values and counts. A sidecar
per task (not one shared collector service) keeps spans on localhost, needs no ingress rule and
scales with the tasks; it is not essential, so a collector that fails never stops the service.
"""

from __future__ import annotations

import json

from aws_cdk import Duration
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

ADOT_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
OTLP_HTTP_PORT = 4318
HEALTH_PORT = 13133
MEMORY_LIMIT_MIB = 128
# X-Ray's write and sampling actions; none of them takes a resource.
XRAY_ACTIONS = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
)


def collector_config() -> str:
    """The collector's configuration (JSON, which it reads as YAML): OTLP in on localhost,
    batched, out to X-Ray, and never more memory than its container has."""
    config = {
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{HEALTH_PORT}"}},
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{OTLP_HTTP_PORT}"}}}},
        "processors": {
            "memory_limiter": {
                "check_interval": "1s",
                "limit_mib": MEMORY_LIMIT_MIB - 28,
                "spike_limit_mib": 20,
            },
            "batch/traces": {"timeout": "1s", "send_batch_size": 50},
        },
        "exporters": {"awsxray": {"index_all_attributes": False}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "batch/traces"],
                    "exporters": ["awsxray"],
                }
            },
        },
    }
    return json.dumps(config, separators=(",", ":"))


class TraceCollector(Construct):
    """Adds the collector container to ``task_definition`` and lets the task write to X-Ray.
    ``environment`` is what the service's container needs to send its spans there."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        task_definition: ecs.TaskDefinition,
        log_group: logs.ILogGroup,
        stream_prefix: str,
        sampling_ratio: float,
    ) -> None:
        super().__init__(scope, construct_id)
        if not 0 < sampling_ratio <= 1:
            raise ValueError("the trace sampling ratio must be in (0, 1]")
        self.container = task_definition.add_container(
            "adot-collector",
            image=ecs.ContainerImage.from_registry(ADOT_IMAGE),
            essential=False,
            environment={"AOT_CONFIG_CONTENT": collector_config()},
            logging=ecs.LogDrivers.aws_logs(stream_prefix=stream_prefix, log_group=log_group),
            memory_limit_mib=MEMORY_LIMIT_MIB,
            memory_reservation_mib=64,
            readonly_root_filesystem=True,
            health_check=ecs.HealthCheck(
                command=["CMD", "/healthcheck"],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(15),
            ),
        )
        statement = iam.PolicyStatement(actions=list(XRAY_ACTIONS), resources=["*"])
        task_definition.add_to_task_role_policy(statement)
        NagSuppressions.add_resource_suppressions(
            task_definition.task_role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="X-Ray's PutTraceSegments, PutTelemetryRecords and sampling actions "
                    "support no resource-level permissions.",
                    applies_to=["Resource::*"],
                )
            ],
            apply_to_children=True,
        )
        # Parent-based: a trace that arrives sampled (or not) stays so across every service.
        self.environment = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{OTLP_HTTP_PORT}",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": f"{sampling_ratio:g}",
        }
