"""Issue 13, "run in production on AWS without surprises": one assertion per fix, on the
synthesized templates (the same session-wide synth as test_stack.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from duochat_common.routing import ROUTES, WEB_PORT
from duochat_common.serving import uvicorn_options
from duochat_infra import config
from duochat_infra.db_users import rds_ca_url
from duochat_infra.main import DEPLOY_ACCESS_STACK
from duochat_infra.monitoring import CONNECTION_METRICS, LAG_METRIC, METRICS_NAMESPACE
from duochat_infra.stack import INTERNAL_CALLS

from .conftest import Synthesized, app_container
from .test_stack import props, ref_id, resources

pytestmark = pytest.mark.timeout(600)

CONFIGS = {"dev": config.dev(), "prod": config.prod()}


def containers(template: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Container port -> the container definition (one container per task)."""
    out = {}
    for task in props(template, "AWS::ECS::TaskDefinition"):
        container = app_container(task)
        out[container["PortMappings"][0]["ContainerPort"]] = container
    return out


def environment(container: dict[str, Any]) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


# --- 1. deploys at any hour -------------------------------------------------------------------


def test_no_service_carries_a_desired_count(synthesized: Synthesized, env: str) -> None:
    """CloudFormation would re-apply a DesiredCount on every update (aws-cdk#3919) and start
    a stack the scheduler holds down; autoscaling owns the count (test_deploy_at_night.py)."""
    services = props(synthesized.json(env), "AWS::ECS::Service")
    assert services
    for service in services:
        assert "DesiredCount" not in service, service


def test_outputs_tell_the_workflow_where_the_stack_is(synthesized: Synthesized, env: str) -> None:
    outputs = synthesized.json(env)["Outputs"]
    for key in ("ClusterName", "DatabaseInstanceId", "SchedulerFunctionName"):
        assert key in outputs, sorted(outputs)


# --- 2. no 502s from idle keep-alive connections ----------------------------------------------


def test_servers_keep_connections_longer_than_the_alb(synthesized: Synthesized, env: str) -> None:
    (alb,) = props(synthesized.json(env), "AWS::ElasticLoadBalancingV2::LoadBalancer")
    idle = int(
        {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}[
            "idle_timeout.timeout_seconds"
        ]
    )
    for service in [r.service for r in ROUTES] + ["embedded"]:
        keep_alive = uvicorn_options(service)["timeout_keep_alive"]
        assert isinstance(keep_alive, int) and keep_alive > idle, (service, keep_alive, idle)
    with pytest.raises(ValueError, match="keep-alive"):
        config.dev(alb_idle_timeout_s=4000)


# --- 4. one MySQL user per service, TLS required, slow query log on ---------------------------


def test_mysql_requires_tls_and_logs_slow_queries(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    (db,) = props(template, "AWS::RDS::DBInstance")
    groups = resources(template, "AWS::RDS::DBParameterGroup")
    parameters = groups[ref_id(db["DBParameterGroupName"])]["Properties"]["Parameters"]
    assert parameters["require_secure_transport"] == "1"
    assert parameters["slow_query_log"] == "1"
    assert parameters["log_output"] == "FILE"  # what the CloudWatch export ships
    assert float(parameters["long_query_time"]) <= 1
    assert int(parameters["max_connections"]) == CONFIGS[env].max_connections
    assert "slowquery" in db["EnableCloudwatchLogsExports"]


def test_each_service_has_its_own_user_and_secret(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    secrets = resources(template, "AWS::SecretsManager::Secret")
    (users,) = props(template, "Custom::DuochatServiceUsers")
    (attachment,) = resources(template, "AWS::SecretsManager::SecretTargetAttachment")
    assert ref_id(users["MasterSecretArn"]) == attachment
    assert users["CaUrl"] == rds_ca_url(config.DEFAULT_REGION)
    provisioned = {u["database"]: ref_id(u["secretArn"]) for u in users["Users"]}
    assert set(provisioned) == {r.service for r in ROUTES}
    by_port = containers(template)
    for route in ROUTES:
        secret = secrets[provisioned[route.service]]["Properties"]["GenerateSecretString"]
        assert json.loads(json.dumps(secret["SecretStringTemplate"]))
        assert f'"username":"{route.service}"' in json.dumps(
            secret["SecretStringTemplate"]
        ).replace("\\", "").replace(" ", "")
        container = by_port[route.port]
        (db_secret,) = [s for s in container["Secrets"] if s["Name"] == "DB_SECRET"]
        assert ref_id(db_secret["ValueFrom"]) == provisioned[route.service]
        variables = environment(container)
        assert variables["DB_NAME"] == route.service
        assert variables["DB_TLS_CA_URL"].startswith("https://truststore.pki.rds.amazonaws.com/")


def test_user_provisioning_runs_before_the_services(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    (users_id,) = resources(template, "Custom::DuochatServiceUsers")
    for logical, service in resources(template, "AWS::ECS::Service").items():
        if service["Properties"]["LoadBalancers"][0]["ContainerPort"] == WEB_PORT:
            continue
        assert users_id in service.get("DependsOn", []), logical


def test_user_provisioning_waits_for_its_way_in(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    (users,) = resources(template, "Custom::DuochatServiceUsers").values()
    function = template["Resources"][ref_id(users["Properties"]["ServiceToken"])]["Properties"]
    (group,) = function["VpcConfig"]["SecurityGroupIds"]
    (rule_id,) = [
        k
        for k, v in resources(template, "AWS::EC2::SecurityGroupIngress").items()
        if ref_id(v["Properties"]["SourceSecurityGroupId"]) == ref_id(group)
    ]
    assert rule_id in users.get("DependsOn", []), users.get("DependsOn")


def test_user_provisioning_bundles_its_driver(synthesized: Synthesized, env: str) -> None:
    stack = synthesized.stacks[env]
    manifest = json.loads((synthesized.outdir / f"{stack.artifact_id}.assets.json").read_text())
    folders = [synthesized.outdir / f["source"]["path"] for f in manifest["files"].values()]
    bundles = [d for d in folders if (d / "index.py").exists()]
    (bundle,) = bundles
    assert (bundle / "pymysql" / "__init__.py").exists()
    assert "REQUIRE SSL" in (bundle / "index.py").read_text()


# --- 5. service to service through Service Connect, not the public ALB ------------------------


def test_internal_calls_use_service_connect(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    dumped = json.dumps(containers(template))
    assert "DNSName" not in dumped  # no task reaches another through the ALB's name
    ports = {r.service: r.port for r in ROUTES}
    by_port = containers(template)
    for route in ROUTES:
        variables = environment(by_port[route.port])
        assert variables["DUOCHAT_AUTH_JWKS_URL"] == (
            f"http://auth:{ports['auth']}/auth/.well-known/jwks.json"
        )
    assert environment(by_port[ports["chat"]])["DUOCHAT_BOARDS_URL"] == (
        f"http://boards:{ports['boards']}"
    )
    assert environment(by_port[ports["boards"]])["DUOCHAT_CHAT_URL"] == (
        f"http://chat:{ports['chat']}"
    )
    (namespace,) = props(template, "AWS::ServiceDiscovery::PrivateDnsNamespace")
    for service in props(template, "AWS::ECS::Service"):
        port = service["LoadBalancers"][0]["ContainerPort"]
        connect = service.get("ServiceConnectConfiguration")
        if port == WEB_PORT:
            assert connect is None
            continue
        name = next(r.service for r in ROUTES if r.port == port)
        assert connect["Enabled"] is True
        assert connect["Namespace"] == namespace["Name"]
        (exposed,) = connect["Services"]
        assert exposed["ClientAliases"] == [{"DnsName": name, "Port": port}]
        # ALB traffic (WebSockets, SSE) bypasses the proxy on the port itself.
        assert exposed["IngressPortOverride"] != port
    assert set(INTERNAL_CALLS) <= {r.service for r in ROUTES}


# --- 6. connection and memory budgets ---------------------------------------------------------


def test_pools_fit_max_connections_at_max_tasks(synthesized: Synthesized, env: str) -> None:
    cfg = CONFIGS[env]
    template = synthesized.json(env)
    by_port = containers(template)
    total = config.RESERVED_CONNECTIONS
    for route in ROUTES:
        variables = environment(by_port[route.port])
        pool, overflow = int(variables["DB_POOL_SIZE"]), int(variables["DB_MAX_OVERFLOW"])
        assert pool >= 2 and overflow >= 0
        sizing = cfg.services[route.service]
        writers = config.CHAT_WRITER_CONNECTIONS if route.service == "chat" else 0
        total += (pool + overflow + writers) * sizing.max_tasks
    assert total <= cfg.max_connections, (total, cfg.max_connections)
    assert total == cfg.connections_at_max()


def test_task_memory_follows_the_measured_figures(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    memory = {}
    for task in props(template, "AWS::ECS::TaskDefinition"):
        container = app_container(task)
        memory[container["Name"]] = int(task["Memory"])
    # auth: argon2id's 64 MiB per hash in flight, a ~512 MiB process, the proxy beside it.
    assert memory["auth"] >= 1024
    # chat: ~22 KiB per socket; 2,000 per task before it scales out is far below 512 MiB.
    assert memory["chat"] >= 1024
    assert all(m >= 512 for m in memory.values())


# --- 8. alarms and a dashboard ----------------------------------------------------------------


def alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return props(template, "AWS::CloudWatch::Alarm")


def metric_names(alarm: dict[str, Any]) -> set[str]:
    if "MetricName" in alarm:
        return {alarm["MetricName"]}
    return {
        m["MetricStat"]["Metric"]["MetricName"]
        for m in alarm.get("Metrics", [])
        if "MetricStat" in m
    }


def test_alarms_go_to_an_sns_topic_with_an_email_parameter(
    synthesized: Synthesized, env: str
) -> None:
    template = synthesized.json(env)
    assert "AlarmEmail" in template["Parameters"]
    (topic,) = resources(template, "AWS::SNS::Topic")
    (subscription,) = resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert "Condition" in subscription  # no address, no subscription: deploys still work
    found = alarms(template)
    assert found
    for alarm in found:
        assert [ref_id(a) for a in alarm["AlarmActions"]] == [topic], alarm
        # Nights and weekends are stopped on purpose: silence is not an incident.
        assert alarm["TreatMissingData"] == "notBreaching"


def test_the_issue_lists_alarms_for(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    names = [metric_names(a) for a in alarms(template)]
    flat = [n for group in names for n in group]
    assert {"HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count", "RequestCount"} <= set(flat)
    assert flat.count("UnHealthyHostCount") == len(ROUTES) + 1  # every target group
    for rds_metric in ("CPUUtilization", "DatabaseConnections", "FreeStorageSpace"):
        assert rds_metric in flat
    assert flat.count("EngineCPUUtilization") == 2  # both Redis nodes
    assert flat.count("DatabaseMemoryUsagePercentage") == 2
    lag = [a for a in alarms(template) if a.get("MetricName") == LAG_METRIC]
    assert {next(d["Value"] for d in a["Dimensions"] if d["Name"] == "Service") for a in lag} == {
        "chat",
        "notify",
    }
    assert all(a["Namespace"] == METRICS_NAMESPACE for a in lag)
    # The services learn the namespace and their dimension values from their environment.
    for route in ROUTES:
        variables = environment(containers(template)[route.port])
        assert variables["DUOCHAT_METRICS_NAMESPACE"] == METRICS_NAMESPACE
        assert variables["DUOCHAT_METRICS_ENVIRONMENT"] == env
    assert "Errors" in flat  # the scheduler Lambda
    (failed_start,) = props(template, "AWS::Logs::MetricFilter")
    assert '$.action = "start"' in failed_start["FilterPattern"]
    assert '$.level = "ERROR"' in failed_start["FilterPattern"]
    (transformation,) = failed_start["MetricTransformations"]
    assert transformation["MetricName"] in flat


def test_one_dashboard_per_environment(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    (dashboard,) = props(template, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["DashboardBody"])
    for needle in (
        *CONNECTION_METRICS.values(),
        LAG_METRIC,
        "EngineCPUUtilization",
        "DatabaseConnections",
    ):
        assert needle in body, needle


# --- 11. cost and hardening -------------------------------------------------------------------


def test_tasks_run_on_graviton_with_read_only_root_filesystems(
    synthesized: Synthesized, env: str
) -> None:
    tasks = props(synthesized.json(env), "AWS::ECS::TaskDefinition")
    assert len(tasks) == len(ROUTES) + 1
    for task in tasks:
        assert task["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
        container = app_container(task)
        assert container["ReadonlyRootFilesystem"] is True
        (mount,) = container["MountPoints"]
        assert mount["ContainerPath"] == "/tmp" and mount["ReadOnly"] is False
        assert {"Name": mount["SourceVolume"]} in task["Volumes"]


def test_images_are_built_for_arm64(synthesized: Synthesized, env: str) -> None:
    stack = synthesized.stacks[env]
    manifest = json.loads((synthesized.outdir / f"{stack.artifact_id}.assets.json").read_text())
    platforms = {image["source"].get("platform") for image in manifest["dockerImages"].values()}
    assert platforms == {"linux/arm64"}


# --- 9. the deploy role as code ---------------------------------------------------------------


def test_deploy_access_stack_is_nag_and_lint_clean(synthesized: Synthesized) -> None:
    import csv
    import subprocess
    import sys
    from pathlib import Path

    (report,) = synthesized.outdir.glob(f"AwsSolutions-*{DEPLOY_ACCESS_STACK}-NagReport.csv")
    with report.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and not [r for r in rows if r["Compliance"] == "Non-Compliant"]
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    template = synthesized.outdir / f"{DEPLOY_ACCESS_STACK}.template.json"
    result = subprocess.run(
        [str(cfn_lint), "--non-zero-exit-code", "error", str(template)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_role_trusts_only_this_repositorys_environments(synthesized: Synthesized) -> None:
    from aws_cdk.assertions import Template

    app = synthesized.stacks["dev"].node.root
    stack = app.node.find_child(DEPLOY_ACCESS_STACK)
    template = dict(Template.from_stack(stack).to_json())  # type: ignore[arg-type]
    (provider,) = props(template, "AWS::IAM::OIDCProvider")
    assert provider["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["ClientIdList"] == ["sts.amazonaws.com"]
    (role,) = props(template, "AWS::IAM::Role")
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    subjects = condition["token.actions.githubusercontent.com:sub"]
    assert sorted(subjects) == sorted(
        f"repo:duochat/duochat:environment:{name}" for name in ("dev", "prod")
    )
    policy = json.dumps(props(template, "AWS::IAM::Policy"))
    assert '"Action": "*"' not in policy and "AdministratorAccess" not in json.dumps(role)
    assert "cdk-hnb659fds-" in policy


def test_the_readme_pool_table_is_the_config() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    for name, cfg in CONFIGS.items():
        pools = cfg.pool_sizes()
        order = ("auth", "boards", "chat", "notify")
        row = (
            f"| {name} | db.{cfg.db_instance_type} | {cfg.max_connections} | "
            + ", ".join(str(cfg.services[s].max_tasks) for s in order)
            + " | "
            + ", ".join(f"{pools[s].pool_size}+{pools[s].max_overflow}" for s in order)
            + f" | {cfg.connections_at_max()} |"
        )
        assert row in readme, row


def test_services_trust_the_alb_forwarded_for(synthesized: Synthesized, env: str) -> None:
    # Issue 12, finding 2: X-Forwarded-For counts only from trusted proxies, and none are
    # trusted by default; behind the ALB the VPC's range must be, or every client would share
    # the ALB nodes' few addresses (and their sign-in and sign-up limits).
    template = synthesized.json(env)
    (vpc_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::EC2::VPC"]
    by_port = containers(template)
    for route in ROUTES:
        assert environment(by_port[route.port])["DUOCHAT_TRUSTED_PROXIES"] == {
            "Fn::GetAtt": [vpc_id, "CidrBlock"]
        }
