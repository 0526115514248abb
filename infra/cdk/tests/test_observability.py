"""What an operator sees on AWS: traces through the ADOT collector beside each service's task to
X-Ray, the services' own metrics in CloudWatch (written by each task as EMF lines, under the
names /metrics uses), a dashboard per environment, and alarms on those metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from duochat_auth.metrics import CLOUDWATCH as AUTH_EXPORTS
from duochat_chat.metrics import CLOUDWATCH as CHAT_EXPORTS
from duochat_common.emf import COMMON_EXPORTS
from duochat_common.routing import ROUTES, WEB_PORT
from duochat_infra import config
from duochat_infra.collector import ADOT_IMAGE, OTLP_HTTP_PORT, XRAY_ACTIONS
from duochat_infra.monitoring import (
    COMMIT_METRIC,
    CONNECTION_METRICS,
    DEAD_LETTER_METRIC,
    LAG_METRIC,
    LOOP_LAG_METRIC,
    METRICS_NAMESPACE,
    NOTIFY_DELIVERY_METRIC,
    SEND_TO_DELIVER_METRIC,
    STORED_METRIC,
)
from duochat_notify.metrics import CLOUDWATCH as NOTIFY_EXPORTS

from .conftest import Synthesized, app_container
from .test_production import alarms, environment
from .test_stack import props, ref_id

pytestmark = pytest.mark.timeout(600)

EXPORTED = {
    "auth": {*COMMON_EXPORTS, *AUTH_EXPORTS},
    "boards": set(COMMON_EXPORTS),
    "chat": {*COMMON_EXPORTS, *CHAT_EXPORTS},
    "notify": {*COMMON_EXPORTS, *NOTIFY_EXPORTS},
}
SAMPLING = {"dev": config.dev().trace_sampling_ratio, "prod": config.prod().trace_sampling_ratio}


def tasks_by_port(template: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {
        app_container(task)["PortMappings"][0]["ContainerPort"]: task
        for task in props(template, "AWS::ECS::TaskDefinition")
    }


def test_each_service_task_runs_the_trace_collector_beside_it(
    synthesized: Synthesized, env: str
) -> None:
    template = synthesized.json(env)
    tasks = tasks_by_port(template)
    for route in ROUTES:
        task = tasks[route.port]
        (collector,) = [c for c in task["ContainerDefinitions"] if not c.get("PortMappings")]
        assert collector["Image"] == ADOT_IMAGE
        # A collector that fails never takes the service down with it.
        assert collector["Essential"] is False
        assert collector["ReadonlyRootFilesystem"] is True
        assert collector["Memory"] <= 128
        assert collector["LogConfiguration"]["LogDriver"] == "awslogs"
        conf = json.loads(environment(collector)["AOT_CONFIG_CONTENT"])
        pipeline = conf["service"]["pipelines"]["traces"]
        assert pipeline["receivers"] == ["otlp"] and pipeline["exporters"] == ["awsxray"]
        # Spans stay inside the task: the receiver listens on localhost only.
        endpoint = conf["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        assert endpoint == f"127.0.0.1:{OTLP_HTTP_PORT}"
        assert "metrics" not in conf["service"]["pipelines"]  # metrics go out as EMF lines
        variables = environment(app_container(task))
        assert variables["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://127.0.0.1:{OTLP_HTTP_PORT}"
        assert variables["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert float(variables["OTEL_TRACES_SAMPLER_ARG"]) == SAMPLING[env]
    web = tasks[WEB_PORT]
    assert len(web["ContainerDefinitions"]) == 1  # static files: nothing to trace


def test_task_roles_may_write_to_xray_and_nothing_more(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    policies = {ref_id(role): p for p in props(template, "AWS::IAM::Policy") for role in p["Roles"]}
    for route in ROUTES:
        task = tasks_by_port(template)[route.port]
        policy = policies[ref_id(task["TaskRoleArn"])]
        statements = policy["PolicyDocument"]["Statement"]
        xray = [s for s in statements if str(s["Action"]).find("xray:") >= 0]
        (statement,) = xray
        assert sorted(statement["Action"]) == sorted(XRAY_ACTIONS)
        assert statement["Resource"] == "*"
        assert all(a.startswith("xray:") for a in statement["Action"])


def test_prod_samples_traces_and_dev_keeps_them_all() -> None:
    assert SAMPLING["dev"] == 1.0
    assert 0 < SAMPLING["prod"] < 1
    with pytest.raises(ValueError):
        config.dev(trace_sampling_ratio=0)


def test_what_the_stack_reads_is_what_the_services_export(synthesized: Synthesized) -> None:
    """Every service metric an alarm, the dashboard or the scaling reads is one that service
    writes to CloudWatch, under the same name."""
    read_by_service: dict[str, set[str]] = {name: set() for name in EXPORTED}
    for env in ("dev", "prod"):
        template = synthesized.json(env)
        for alarm in alarms(template):
            if alarm.get("Namespace") == METRICS_NAMESPACE and "Dimensions" in alarm:
                dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
                read_by_service[dims["Service"]].add(alarm["MetricName"])
        for policy in props(template, "AWS::ApplicationAutoScaling::ScalingPolicy"):
            spec = policy["TargetTrackingScalingPolicyConfiguration"].get(
                "CustomizedMetricSpecification"
            )
            if spec:
                dims = {d["Name"]: d["Value"] for d in spec["Dimensions"]}
                assert spec["Namespace"] == METRICS_NAMESPACE
                read_by_service[dims["Service"]].add(spec["MetricName"])
    for service, names in read_by_service.items():
        assert names <= EXPORTED[service], (service, names - EXPORTED[service])
    assert read_by_service["chat"] >= {
        CONNECTION_METRICS["chat"],
        LAG_METRIC,
        DEAD_LETTER_METRIC,
        SEND_TO_DELIVER_METRIC,
        LOOP_LAG_METRIC,
    }
    assert CONNECTION_METRICS["notify"] in read_by_service["notify"]
    for name in (STORED_METRIC, COMMIT_METRIC, NOTIFY_DELIVERY_METRIC):
        assert any(name in names for names in EXPORTED.values())


def test_alarms_watch_delivery_latency_loop_lag_and_dead_letters(
    synthesized: Synthesized, env: str
) -> None:
    template = synthesized.json(env)
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for alarm in alarms(template):
        if alarm.get("Namespace") == METRICS_NAMESPACE:
            by_metric.setdefault(alarm["MetricName"], []).append(alarm)
    (send,) = by_metric[SEND_TO_DELIVER_METRIC]
    assert send["ExtendedStatistic"] == "p99" and send["Threshold"] == 1.0
    (notify,) = by_metric[NOTIFY_DELIVERY_METRIC]
    assert notify["ExtendedStatistic"] == "p99"
    loop = by_metric[LOOP_LAG_METRIC]
    assert {next(d["Value"] for d in a["Dimensions"] if d["Name"] == "Service") for a in loop} == {
        r.service for r in ROUTES
    }
    dead = by_metric[DEAD_LETTER_METRIC]
    assert all(a["Statistic"] == "Sum" and a["Threshold"] == 1 for a in dead)
    for alarm in (send, notify, *loop, *dead):
        dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dims["Environment"] == env


def test_the_dashboard_shows_sockets_messages_latency_lag_errors_rds_and_redis(
    synthesized: Synthesized, env: str
) -> None:
    (dashboard,) = props(synthesized.json(env), "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["DashboardBody"])
    for needle in (
        *CONNECTION_METRICS.values(),  # sockets
        STORED_METRIC,  # msgs/s
        SEND_TO_DELIVER_METRIC,
        '\\"stat\\":\\"p99\\"',  # ... at p99
        LAG_METRIC,
        "HTTPCode_Target_5XX_Count",
        "HTTPCode_ELB_5XX_Count",
        "DatabaseConnections",
        "EngineCPUUtilization",
        LOOP_LAG_METRIC,
    ):
        assert needle in body, needle
