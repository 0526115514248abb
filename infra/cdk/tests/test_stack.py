"""The synthesized stacks, asserted by resource properties (never by logical ids)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match

from duochat_common.routing import ROUTES, WEB_PORT
from duochat_infra.service import (
    SCHEDULE_TAG_KEY,
    SCHEDULE_TAG_VALUE,
    SERVICE_CONNECT_PORT_OFFSET,
)
from duochat_infra.stack import INTERNAL_CALLS, SERVICE_DOCKERFILE

from .conftest import CERTIFICATE_ARN, Synthesized, app_container

pytestmark = pytest.mark.timeout(600)

BACKEND_PORTS = {r.port for r in ROUTES}
ALL_PORTS = BACKEND_PORTS | {WEB_PORT}


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def props(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources(template, kind).values()]


def ref_id(value: Any) -> str:
    """The logical id behind a Ref or a GetAtt (to follow a reference, not to assert on)."""
    if "Ref" in value:
        return str(value["Ref"])
    return str(value["Fn::GetAtt"][0])


def alb_security_group(template: dict[str, Any]) -> str:
    (alb,) = props(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    (group,) = alb["SecurityGroups"]
    return ref_id(group)


def service_security_groups(template: dict[str, Any]) -> dict[int, str]:
    """Container port -> the security group of the ECS service that serves it."""
    out = {}
    for service in props(template, "AWS::ECS::Service"):
        (lb,) = service["LoadBalancers"]
        (group,) = service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
        out[lb["ContainerPort"]] = ref_id(group)
    return out


def ingress_rules(template: dict[str, Any], group: str) -> list[dict[str, Any]]:
    """Every ingress rule of ``group``: inline ones and separate SecurityGroupIngress."""
    rules = list(template["Resources"][group]["Properties"].get("SecurityGroupIngress", []))
    for rule in props(template, "AWS::EC2::SecurityGroupIngress"):
        if ref_id(rule["GroupId"]) == group:
            rules.append(rule)
    return rules


def test_one_listener_rule_per_route(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    rules = [
        r
        for r in props(template, "AWS::ElasticLoadBalancingV2::ListenerRule")
        if r["Actions"][0]["Type"] == "forward"
    ]
    assert len(rules) == len(ROUTES)
    groups = resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup")
    for route in ROUTES:
        (rule,) = [r for r in rules if r["Priority"] == route.priority]
        assert rule["Conditions"] == [
            {"Field": "path-pattern", "PathPatternConfig": {"Values": list(route.paths)}}
        ]
        (action,) = rule["Actions"]
        assert action["Type"] == "forward"
        target = groups[ref_id(action["TargetGroupArn"])]["Properties"]
        assert target["Port"] == route.port


def test_default_rule_goes_to_web(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    groups = resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup")
    listeners = props(template, "AWS::ElasticLoadBalancingV2::Listener")
    (main,) = [
        listener for listener in listeners if listener["DefaultActions"][0]["Type"] == "forward"
    ]
    target = groups[ref_id(main["DefaultActions"][0]["TargetGroupArn"])]["Properties"]
    assert target["Port"] == WEB_PORT


def test_one_target_group_per_service_checks_liveness_on_its_port(
    synthesized: Synthesized, env: str
) -> None:
    """Shallow checks only: a Redis failover or an RDS reboot must not fail every target at
    once (readiness, /readyz, stays in the route table for start-up and alarms)."""
    template = synthesized.templates[env]
    template.resource_count_is("AWS::ElasticLoadBalancingV2::TargetGroup", len(ALL_PORTS))
    for route in ROUTES:
        template.has_resource_properties(
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            {
                "Port": route.port,
                "Protocol": "HTTP",
                "TargetType": "ip",
                "HealthCheckPath": route.liveness_path,
                "HealthCheckPort": str(route.port),
                "Matcher": {"HttpCode": "200"},
                "TargetGroupAttributes": Match.array_with(
                    [{"Key": "deregistration_delay.timeout_seconds", "Value": Match.any_value()}]
                ),
            },
        )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"Port": WEB_PORT, "HealthCheckPath": "/healthz", "HealthCheckPort": str(WEB_PORT)},
    )
    for group in props(template.to_json(), "AWS::ElasticLoadBalancingV2::TargetGroup"):
        assert group["HealthCheckPath"] == "/healthz"
    for route in ROUTES:
        assert route.health_path == "/readyz" and route.liveness_path == "/healthz"


def test_idle_timeout_lets_websockets_and_sse_live(synthesized: Synthesized, env: str) -> None:
    (alb,) = props(synthesized.json(env), "AWS::ElasticLoadBalancingV2::LoadBalancer")
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert int(attributes["idle_timeout.timeout_seconds"]) >= 300
    assert attributes["access_logs.s3.enabled"] == "true"
    assert alb["Scheme"] == "internet-facing"


def test_deregistration_delay_drains(synthesized: Synthesized, env: str) -> None:
    for group in props(synthesized.json(env), "AWS::ElasticLoadBalancingV2::TargetGroup"):
        attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
        assert 10 <= int(attributes["deregistration_delay.timeout_seconds"]) <= 120


def test_tasks_accept_the_alb_on_their_port_and_named_callers_on_the_proxy_port(
    synthesized: Synthesized, env: str
) -> None:
    template = synthesized.json(env)
    alb_group = alb_security_group(template)
    groups = service_security_groups(template)
    assert set(groups) == ALL_PORTS
    port_of = {r.service: r.port for r in ROUTES}
    for port, group in groups.items():
        rules = ingress_rules(template, group)
        assert all(r["IpProtocol"] == "tcp" and "CidrIp" not in r for r in rules), rules
        from_alb = [r for r in rules if ref_id(r["SourceSecurityGroupId"]) == alb_group]
        assert [(r["FromPort"], r["ToPort"]) for r in from_alb] == [(port, port)]
        internal = {
            ref_id(r["SourceSecurityGroupId"])
            for r in rules
            if r["FromPort"] == r["ToPort"] == port + SERVICE_CONNECT_PORT_OFFSET
        }
        service = next((r.service for r in ROUTES if r.port == port), None)
        callers = INTERNAL_CALLS.get(service or "", ())
        assert internal == {groups[port_of[c]] for c in callers}, (port, rules)
        assert len(rules) == 1 + len(callers)


def provisioning_group(template: dict[str, Any]) -> str:
    """The security group of the Lambda behind Custom::DuochatServiceUsers."""
    (users,) = props(template, "Custom::DuochatServiceUsers")
    function = template["Resources"][ref_id(users["ServiceToken"])]["Properties"]
    (group,) = function["VpcConfig"]["SecurityGroupIds"]
    return ref_id(group)


def test_data_accepts_only_the_backend_tasks(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    groups = service_security_groups(template)
    backend_groups = {groups[port] for port in BACKEND_PORTS}
    (db,) = props(template, "AWS::RDS::DBInstance")
    (cache,) = props(template, "AWS::ElastiCache::ReplicationGroup")
    for group_ref, port, also in (
        (db["VPCSecurityGroups"][0], 3306, {provisioning_group(template)}),
        (cache["SecurityGroupIds"][0], 6379, set()),
    ):
        rules = ingress_rules(template, ref_id(group_ref))
        assert {ref_id(r["SourceSecurityGroupId"]) for r in rules} == backend_groups | also
        assert all(r["FromPort"] == r["ToPort"] == port for r in rules)
        assert not any("CidrIp" in r for r in rules)


def test_rds_is_encrypted_backed_up_and_its_secret_injected(
    synthesized: Synthesized, env: str
) -> None:
    template = synthesized.templates[env]
    template.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "mysql",
            "EngineVersion": Match.string_like_regexp(r"^8\."),
            "StorageEncrypted": True,
            "BackupRetentionPeriod": Match.any_value(),
            "PubliclyAccessible": False,
            "MultiAZ": env == "prod",
            "DeletionProtection": env == "prod",
        },
    )
    (db,) = props(template.to_json(), "AWS::RDS::DBInstance")
    assert db["BackupRetentionPeriod"] >= 7
    template.resource_count_is("AWS::SecretsManager::SecretTargetAttachment", 1)
    (attachment,) = resources(template.to_json(), "AWS::SecretsManager::SecretTargetAttachment")
    db_secrets = set()
    for task in props(template.to_json(), "AWS::ECS::TaskDefinition"):
        container = app_container(task)
        if container["PortMappings"][0]["ContainerPort"] == WEB_PORT:
            assert "Secrets" not in container
            continue
        secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
        assert {"DB_SECRET", "REDIS_AUTH_TOKEN"} <= set(secrets)
        # Each service its own user's secret; the master secret reaches no task.
        assert ref_id(secrets["DB_SECRET"]) != attachment
        db_secrets.add(ref_id(secrets["DB_SECRET"]))
        names = {e["Name"] for e in container["Environment"]}
        assert not any("PASSWORD" in n or "TOKEN" in n for n in names), names
    assert len(db_secrets) == len(ROUTES)


def test_auth_gets_the_signing_key_as_a_secret(synthesized: Synthesized, env: str) -> None:
    auth = next(r for r in ROUTES if r.service == "auth")
    for task in props(synthesized.json(env), "AWS::ECS::TaskDefinition"):
        container = app_container(task)
        has_key = any(s["Name"] == "DUOCHAT_JWT_PRIVATE_KEY" for s in container.get("Secrets", []))
        assert has_key == (container["PortMappings"][0]["ContainerPort"] == auth.port)


def test_redis_is_replicated_and_encrypted(synthesized: Synthesized, env: str) -> None:
    synthesized.templates[env].has_resource_properties(
        "AWS::ElastiCache::ReplicationGroup",
        {
            "Engine": "redis",
            "AtRestEncryptionEnabled": True,
            "TransitEncryptionEnabled": True,
            "AuthToken": Match.any_value(),
            "AutomaticFailoverEnabled": True,
            "MultiAZEnabled": True,
            "CacheParameterGroupName": "default.redis7.cluster.on",
            "NumNodeGroups": 2 if env == "prod" else 1,
            "ReplicasPerNodeGroup": 1,
        },
    )


def test_services_use_the_redis_cluster_through_its_configuration_endpoint(
    synthesized: Synthesized, env: str
) -> None:
    template = synthesized.json(env)
    (group_id,) = [
        logical
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::ElastiCache::ReplicationGroup"
    ]
    tasks = props(template, "AWS::ECS::TaskDefinition")
    backends = [c for t in tasks for c in t["ContainerDefinitions"] if c["Name"] != "web"]
    using = 0
    for container in backends:
        env_vars = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
        if "REDIS_HOST" not in env_vars:
            continue
        using += 1
        assert env_vars["DUOCHAT_REDIS_CLUSTER"] == "true"
        assert env_vars["REDIS_HOST"] == {"Fn::GetAtt": [group_id, "ConfigurationEndPoint.Address"]}


def test_rolling_deploys_with_circuit_breaker(synthesized: Synthesized, env: str) -> None:
    services = props(synthesized.json(env), "AWS::ECS::Service")
    assert len(services) == len(ALL_PORTS)
    for service in services:
        deployment = service["DeploymentConfiguration"]
        assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert deployment["MinimumHealthyPercent"] == 100
        assert service["LaunchType"] == "FARGATE"
        network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
        assert {"Key": SCHEDULE_TAG_KEY, "Value": SCHEDULE_TAG_VALUE} in service["Tags"]


def test_tasks_run_in_private_subnets_and_data_in_isolated(
    synthesized: Synthesized, env: str
) -> None:
    template = synthesized.json(env)
    subnets = resources(template, "AWS::EC2::Subnet")

    def kind(subnet_ref: Any) -> str:
        tags = {t["Key"]: t["Value"] for t in subnets[ref_id(subnet_ref)]["Properties"]["Tags"]}
        return tags["aws-cdk:subnet-type"]

    for service in props(template, "AWS::ECS::Service"):
        network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert {kind(s) for s in network["Subnets"]} == {"Private"}
    (db_subnets,) = props(template, "AWS::RDS::DBSubnetGroup")
    (cache_subnets,) = props(template, "AWS::ElastiCache::SubnetGroup")
    for group in (db_subnets, cache_subnets):
        assert {kind(s) for s in group["SubnetIds"]} == {"Isolated"}
    azs = {subnet["Properties"]["AvailabilityZone"] for subnet in subnets.values()}
    assert len(azs) == 2


def test_autoscaling_on_cpu_and_on_requests_or_connections(
    synthesized: Synthesized, env: str
) -> None:
    """Request/response services scale on requests; socket services on connections per task
    (an ALB request count says nothing about a WebSocket or an SSE stream), and slowly in."""
    template = synthesized.json(env)
    policies = props(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    configs = [p["TargetTrackingScalingPolicyConfiguration"] for p in policies]
    predefined = [
        c["PredefinedMetricSpecification"]["PredefinedMetricType"]
        for c in configs
        if "PredefinedMetricSpecification" in c
    ]
    assert predefined.count("ECSServiceAverageCPUUtilization") == len(ALL_PORTS)
    sockets = {"chat", "notify"}
    assert predefined.count("ALBRequestCountPerTarget") == len(ALL_PORTS) - len(sockets)
    custom = [c for c in configs if "CustomizedMetricSpecification" in c]
    assert {
        next(
            d["Value"]
            for d in c["CustomizedMetricSpecification"]["Dimensions"]
            if d["Name"] == "Service"
        )
        for c in custom
    } == sockets
    for c in custom:
        assert c["CustomizedMetricSpecification"]["Statistic"] == "Average"
        assert c["ScaleInCooldown"] >= 600 and c["ScaleOutCooldown"] <= 120
    targets = props(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert len(targets) == len(ALL_PORTS)
    assert all(t["MaxCapacity"] > t["MinCapacity"] >= 1 for t in targets)


def test_cluster_has_container_insights(synthesized: Synthesized, env: str) -> None:
    synthesized.templates[env].has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
    )


def test_every_log_group_has_a_retention(synthesized: Synthesized, env: str) -> None:
    groups = props(synthesized.json(env), "AWS::Logs::LogGroup")
    assert len(groups) >= len(ALL_PORTS)
    assert all(g.get("RetentionInDays") for g in groups)


def test_https_only_with_a_certificate(synthesized: Synthesized) -> None:
    dev = props(synthesized.json("dev"), "AWS::ElasticLoadBalancingV2::Listener")
    assert [(lst["Port"], lst["Protocol"]) for lst in dev] == [(80, "HTTP")]
    prod = props(synthesized.json("prod"), "AWS::ElasticLoadBalancingV2::Listener")
    by_port = {lst["Port"]: lst for lst in prod}
    assert by_port[443]["Protocol"] == "HTTPS"
    assert by_port[443]["Certificates"] == [{"CertificateArn": CERTIFICATE_ARN}]
    assert by_port[80]["DefaultActions"][0]["Type"] == "redirect"


def test_outputs_the_alb_dns_name(synthesized: Synthesized, env: str) -> None:
    outputs = synthesized.json(env)["Outputs"]
    assert any(
        o["Value"] == {"Fn::GetAtt": [Match.any_value(), "DNSName"]} or "DNSName" in json.dumps(o)
        for o in outputs.values()
    )
    synthesized.templates[env].has_output("AlbDnsName", {"Value": Match.any_value()})


def test_images_build_from_each_dockerfile(synthesized: Synthesized, env: str) -> None:
    stack = synthesized.stacks[env]
    manifest = json.loads((synthesized.outdir / f"{stack.artifact_id}.assets.json").read_text())
    built = sorted(
        (
            (image["source"]["dockerFile"], image["source"].get("dockerBuildArgs", {}))
            for image in manifest["dockerImages"].values()
        ),
        key=str,
    )
    expected = [
        (SERVICE_DOCKERFILE, {"SERVICE": r.service, "PORT": str(r.port)}) for r in ROUTES
    ] + [("web/Dockerfile", {})]
    assert built == sorted(expected, key=str)
    for image in manifest["dockerImages"].values():
        staged = synthesized.outdir / image["source"]["directory"]
        dockerfile = image["source"]["dockerFile"]
        assert (staged / dockerfile).exists()
        assert not (staged / ".venv").exists() and not (staged / "infra").exists()
        # Each context holds only what its image is made of.
        present = {p.name for p in (staged / "services").glob("*")}
        if dockerfile == SERVICE_DOCKERFILE:
            assert present == {image["source"]["dockerBuildArgs"]["SERVICE"]}
            assert (staged / "uv.lock").exists() and (staged / "libs/common").is_dir()
            assert not (staged / "web").exists()
        else:
            assert present == set() and not (staged / "libs").exists()
            assert (staged / "web/package-lock.json").exists()
            assert not (staged / "web/node_modules").exists()


def test_no_unsuppressed_cdk_nag_errors(synthesized: Synthesized, env: str) -> None:
    stack = synthesized.stacks[env]
    errors = Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp("AwsSolutions-.*")
    )
    assert errors == [], "\n".join(f"{e.id}: {e.entry.data}" for e in errors)
    # The pack really ran: its report lists compliant rules and the reasoned suppressions.
    (report,) = synthesized.outdir.glob(f"AwsSolutions-*{stack.artifact_id}-NagReport.csv")
    with report.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert any(r["Compliance"] == "Compliant" for r in rows)
    suppressed = [r for r in rows if r["Compliance"] == "Suppressed"]
    assert all(len(r["Exception Reason"]) > 20 for r in suppressed), suppressed
    assert not [r for r in rows if r["Compliance"] == "Non-Compliant"]


def test_cfn_lint_finds_no_errors(synthesized: Synthesized) -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    templates = [
        str(synthesized.outdir / f"{stack.artifact_id}.template.json")
        for stack in synthesized.stacks.values()
    ]
    result = subprocess.run(
        [str(cfn_lint), "--non-zero-exit-code", "error", *templates],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_business_hours_scheduler_drives_this_cluster(synthesized: Synthesized, env: str) -> None:
    template = synthesized.json(env)
    schedules = props(template, "AWS::Scheduler::Schedule")
    assert sorted(s["ScheduleExpressionTimezone"] for s in schedules) == ["Asia/Seoul"] * 2
    (cluster,) = resources(template, "AWS::ECS::Cluster")
    (db,) = resources(template, "AWS::RDS::DBInstance")
    functions = [
        f
        for f in props(template, "AWS::Lambda::Function")
        if "CLUSTER_ARN" in f.get("Environment", {}).get("Variables", {})
    ]
    (function,) = functions
    variables = function["Environment"]["Variables"]
    assert ref_id(variables["CLUSTER_ARN"]) == cluster
    assert ref_id(variables["DB_INSTANCE_ID"]) == db
    assert (variables["SERVICE_TAG_KEY"], variables["SERVICE_TAG_VALUE"]) == (
        SCHEDULE_TAG_KEY,
        SCHEDULE_TAG_VALUE,
    )
