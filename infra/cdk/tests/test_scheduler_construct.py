"""BusinessHoursScheduler in a small stack of its own: schedules, least-privilege IAM, cdk-nag."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_rds as rds
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from duochat_infra.scheduler import BusinessHoursScheduler

STACK = "SchedulerTest"
# Read-only actions that AWS does not scope by resource; everything else must be.
UNSCOPABLE = {"ecs:ListServices", "application-autoscaling:DescribeScalableTargets"}


@dataclass
class Synth:
    stack: Stack
    template: Template
    construct: BusinessHoursScheduler
    cluster: ecs.Cluster
    db: rds.DatabaseInstance
    assembly_dir: Path

    def resolve(self, value: Any) -> Any:
        return self.stack.resolve(value)

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.template.find_resources(kind).items()}


@pytest.fixture(scope="module")
def synth() -> Synth:
    app = App()
    stack = Stack(app, STACK)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0)
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    db = rds.DatabaseInstance(
        stack,
        "Db",
        engine=rds.DatabaseInstanceEngine.mysql(version=rds.MysqlEngineVersion.VER_8_0_40),
        storage_encrypted=True,
        vpc=vpc,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
    )
    construct = BusinessHoursScheduler(
        stack,
        "Scheduler",
        cluster=cluster,
        db_instance=db,
        holidays=["2026-12-25", "2027-01-01"],
        min_desired_count=2,
    )
    Aspects.of(app).add(AwsSolutionsChecks())
    template = Template.from_stack(stack)
    assembly = app.synth()
    return Synth(stack, template, construct, cluster, db, Path(assembly.directory))


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _function_role_policies(s: Synth) -> list[dict[str, Any]]:
    role_ref = s.resolve(s.construct.function.role.role_name)  # type: ignore[union-attr]
    return [
        policy
        for policy in s.resources("AWS::IAM::Policy").values()
        if role_ref in policy["Properties"]["Roles"]
    ]


def test_two_schedules_in_seoul_time_on_weekdays(synth: Synth) -> None:
    schedules = synth.resources("AWS::Scheduler::Schedule").values()
    by_action = {
        json.loads(s["Properties"]["Target"]["Input"])["action"]: s["Properties"] for s in schedules
    }

    assert set(by_action) == {"start", "stop"}
    assert by_action["start"]["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert by_action["stop"]["ScheduleExpression"] == "cron(0 18 ? * MON-FRI *)"
    function_arn = synth.resolve(synth.construct.function.function_arn)
    for props in by_action.values():
        assert props["ScheduleExpressionTimezone"] == "Asia/Seoul"
        assert props["State"] == "ENABLED"
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert props["Target"]["Arn"] == function_arn
        assert json.loads(props["Target"]["Input"])["source"] == "schedule"


def test_function_is_python_312_with_its_settings(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.12",
            "Handler": "duochat_scheduler.handler.handler",
            "Timeout": 900,
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "CLUSTER_ARN": synth.resolve(synth.cluster.cluster_arn),
                        "DB_INSTANCE_ID": synth.resolve(synth.db.instance_identifier),
                        "SERVICE_TAG_KEY": "duochat:scheduled",
                        "SERVICE_TAG_VALUE": "true",
                        "STATE_PARAMETER_PREFIX": f"/{STACK}/scheduler/state",
                        "OVERRIDE_PARAMETER": synth.resolve(
                            synth.construct.override_parameter.parameter_name
                        ),
                        "HOLIDAYS": "2026-12-25,2027-01-01",
                        "TIMEZONE": "Asia/Seoul",
                        "MIN_DESIRED_COUNT": "2",
                    }
                )
            },
        },
    )
    synth.template.has_resource_properties(
        "AWS::SSM::Parameter", {"Name": f"/{STACK}/scheduler/override", "Value": "{}"}
    )


def test_lambda_role_has_no_wildcard_action_and_no_managed_policy(synth: Synth) -> None:
    role_id = synth.resolve(synth.construct.function.role.role_arn)["Fn::GetAtt"][0]  # type: ignore[union-attr]
    role = synth.resources("AWS::IAM::Role")[role_id]
    assert "ManagedPolicyArns" not in role["Properties"]

    statements = [st for p in _function_role_policies(synth) for st in _statements(p)]
    actions = [a for st in statements for a in _as_list(st["Action"])]
    assert actions, "the function role has no policy"
    assert all(st["Effect"] == "Allow" for st in statements)
    assert not [a for a in actions if "*" in a]
    for st in statements:
        if _as_list(st["Resource"]) == ["*"]:
            assert set(_as_list(st["Action"])) <= UNSCOPABLE, st


def test_lambda_role_is_scoped_to_the_cluster_and_db_instance(synth: Synth) -> None:
    statements = [st for p in _function_role_policies(synth) for st in _statements(p)]

    def resources_for(action: str) -> list[Any]:
        return [
            r
            for st in statements
            if action in _as_list(st["Action"])
            for r in _as_list(st["Resource"])
        ]

    cluster_name = synth.resolve(synth.cluster.cluster_name)
    [services] = resources_for("ecs:UpdateService")
    assert resources_for("ecs:DescribeServices") == [services]
    parts = services["Fn::Join"][1]
    assert ":service/" in parts[-3] and parts[-2] == cluster_name and parts[-1] == "/*"

    [listing] = [st for st in statements if st["Action"] == "ecs:ListServices"]
    assert listing["Condition"] == {
        "ArnEquals": {"ecs:cluster": synth.resolve(synth.cluster.cluster_arn)}
    }

    db_arn = synth.resolve(synth.db.instance_arn)
    for action in ("rds:StartDBInstance", "rds:StopDBInstance", "rds:DescribeDBInstances"):
        assert resources_for(action) == [db_arn]

    [targets] = resources_for("application-autoscaling:RegisterScalableTarget")
    assert targets["Fn::Join"][1][-1].endswith(":scalable-target/*")

    ssm_resources = resources_for("ssm:PutParameter") + resources_for("ssm:DeleteParameter")
    assert ssm_resources and all(
        r["Fn::Join"][1][-1] == f":parameter/{STACK}/scheduler/state/*" for r in ssm_resources
    )
    assert resources_for("lambda:InvokeFunction") == [
        synth.resolve(synth.construct.function.function_arn)
    ]


def test_schedule_role_may_only_invoke_the_function(synth: Synth) -> None:
    schedule_role_arn = next(iter(synth.resources("AWS::Scheduler::Schedule").values()))[
        "Properties"
    ]["Target"]["RoleArn"]
    role_id = schedule_role_arn["Fn::GetAtt"][0]
    role = synth.resources("AWS::IAM::Role")[role_id]
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]

    policies = [
        p
        for p in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    statements = [st for p in policies for st in _statements(p)]
    assert statements == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": synth.resolve(synth.construct.function.function_arn),
        }
    ]


def test_cdk_nag_finds_nothing_unsuppressed_in_the_construct(synth: Synth) -> None:
    # Read cdk-nag's report rather than the annotations: jsii cannot always rebuild the
    # annotation objects in Python ("Unknown interface ... MetadataEntry").
    (report,) = synth.assembly_dir.glob(f"AwsSolutions-*{STACK}-NagReport.csv")
    with report.open(newline="") as f:
        rows = list(csv.DictReader(f))
    ours = [r for r in rows if r["Resource ID"].startswith(f"{STACK}/Scheduler/")]
    assert ours, "the report covers the construct"
    assert [r for r in ours if r["Compliance"] == "Non-Compliant"] == []
    suppressed = [r for r in ours if r["Compliance"] == "Suppressed"]
    assert all(len(r["Exception Reason"]) > 20 for r in suppressed), suppressed
    # The check really ran: the test stack's own VPC and database do have findings.
    assert any(r["Compliance"] == "Non-Compliant" for r in rows if r not in ours)


def test_asset_holds_the_package_but_not_the_tests(synth: Synth) -> None:
    assets = [
        d for d in synth.assembly_dir.iterdir() if (d / "duochat_scheduler" / "handler.py").exists()
    ]
    assert len(assets) == 1
    names = {p.name for p in assets[0].rglob("*")}
    assert "tests" not in names and "__pycache__" not in names and "conftest.py" not in names
    # The Python 3.12 base image may have no /usr/share/zoneinfo: zoneinfo falls back to tzdata.
    assert (assets[0] / "tzdata" / "zoneinfo" / "Asia" / "Seoul").is_file()


@pytest.mark.parametrize(
    "props",
    [
        {"start_schedule": "0 9 * * 1-5"},
        {"stop_schedule": "cron(0 18 * * MON-FRI)"},
        {"timezone": "Seoul"},
        {"holidays": ["25/12/2026"]},
        {"min_desired_count": -1},
        {"parameter_path": "duochat/scheduler"},
    ],
)
def test_bad_props_fail_at_synth(props: dict[str, Any]) -> None:
    stack = Stack(App(), "Bad")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0, subnet_configuration=[])
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    db = rds.DatabaseInstance.from_database_instance_attributes(
        stack,
        "Db",
        instance_identifier="db",
        instance_endpoint_address="db.example",
        port=3306,
        security_groups=[],
    )
    with pytest.raises(ValueError):
        BusinessHoursScheduler(stack, "Scheduler", cluster=cluster, db_instance=db, **props)
