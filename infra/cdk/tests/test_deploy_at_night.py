"""A release at 23:00 (Seoul), against a moto account shaped like the synthesized stack.

The business-hours scheduler stopped the stack at 18:00. CloudFormation then applies the new
template: a new task definition per service and an update of each service with exactly the
properties the template carries. The counts stay at zero, the deploy workflow sees the stack
as down (no smoke test, nothing restarted), and the morning start runs the new version.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from duochat_scheduler.actions import Clock, Request, Scheduler
from duochat_scheduler.clients import AwsClients
from duochat_scheduler.config import Settings
from duochat_scheduler.policy import Action, Source

from .conftest import Synthesized
from .test_stack import props

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[3]
REGION = "ap-northeast-2"
CLUSTER = "duochat"
DB_ID = "duochat-db"
# Monday 2026-11-30, 23:00 in Seoul (UTC+9); the 09:00 start is Tuesday 00:00 UTC.
NIGHT = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
MORNING = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def load_stack_state() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stack_state", REPO / "deploy/aws/stack_state.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


stack_state = load_stack_state()

# CloudFormation property -> ECS UpdateService parameter, for the properties an update sends.
_UPDATE_FIELDS = {"DesiredCount": "desiredCount"}


class RecordingLambda:
    """Stands in for the Lambda client: the scheduler function is not deployed in moto."""

    def __init__(self) -> None:
        self.invocations: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.invocations.append(kwargs)
        return {"StatusCode": 200}


class Account:
    """The moto account: the stack's services (by name), their scaling bounds, the database."""

    def __init__(self, clients: AwsClients, ec2: Any, template: dict[str, Any]) -> None:
        self.clients = clients
        self.lambda_ = RecordingLambda()
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="svc", Description="svc", VpcId=vpc)
        self.cluster_arn = clients.ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
        self.services: dict[str, dict[str, Any]] = {}
        targets = props(template, "AWS::ApplicationAutoScaling::ScalableTarget")
        for service, target in zip(
            props(template, "AWS::ECS::Service"),
            _targets_by_service(template, targets),
            strict=True,
        ):
            name = service["LoadBalancers"][0]["ContainerName"]
            self.services[name] = service
            task = self.register(name, revision="v1")
            clients.ecs.create_service(
                cluster=CLUSTER,
                serviceName=name,
                taskDefinition=task,
                # CloudFormation's create without DesiredCount is one task; autoscaling then
                # raises it to the target's minimum.
                desiredCount=service.get("DesiredCount", max(1, target["MinCapacity"])),
                launchType="FARGATE",
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": [subnet],
                        "securityGroups": [group["GroupId"]],
                        "assignPublicIp": "DISABLED",
                    }
                },
                tags=[{"key": t["Key"], "value": t["Value"]} for t in service["Tags"]],
            )
            clients.autoscaling.register_scalable_target(
                ServiceNamespace="ecs",
                ResourceId=f"service/{CLUSTER}/{name}",
                ScalableDimension="ecs:service:DesiredCount",
                MinCapacity=target["MinCapacity"],
                MaxCapacity=target["MaxCapacity"],
            )
        clients.rds.create_db_instance(
            DBInstanceIdentifier=DB_ID,
            DBInstanceClass="db.t4g.micro",
            Engine="mysql",
            AllocatedStorage=20,
            MasterUsername="admin",
            MasterUserPassword="not-a-secret-1234",
        )
        clients.ssm.put_parameter(Name="/duochat/override", Value="{}", Type="String")

    def register(self, name: str, *, revision: str) -> str:
        reply = self.clients.ecs.register_task_definition(
            family=name,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": name, "image": f"{name}:{revision}", "essential": True}],
        )
        return str(reply["taskDefinition"]["taskDefinitionArn"])

    def cloudformation_update(self, *, revision: str) -> None:
        """What CloudFormation does to each service on a release: a new task definition, and
        UpdateService with the template's properties (only those it carries)."""
        for name, service in self.services.items():
            task = self.register(name, revision=revision)
            extra = {api: service[cfn] for cfn, api in _UPDATE_FIELDS.items() if cfn in service}
            self.clients.ecs.update_service(
                cluster=CLUSTER, service=name, taskDefinition=task, **extra
            )

    def counts(self) -> dict[str, int]:
        return stack_state.scheduled_services(self.clients.ecs, self.cluster_arn)  # type: ignore[no-any-return]

    def images(self) -> dict[str, str]:
        out = {}
        for name in self.services:
            (service,) = self.clients.ecs.describe_services(cluster=CLUSTER, services=[name])[
                "services"
            ]
            task = self.clients.ecs.describe_task_definition(
                taskDefinition=service["taskDefinition"]
            )
            out[name] = task["taskDefinition"]["containerDefinitions"][0]["image"]
        return out

    def scheduler(self, now: datetime) -> Scheduler:
        settings = Settings(
            cluster_arn=self.cluster_arn,
            db_instance_id=DB_ID,
            state_parameter_prefix="/duochat/scheduler/state",
            override_parameter="/duochat/override",
            min_desired_count=1,
        )
        clock = Clock(now=lambda: now, monotonic=lambda: 0.0, sleep=lambda _: None)
        return Scheduler(settings=settings, clients=self.clients, clock=clock)

    def hold_down(self) -> list[str]:
        """The workflow's step after a deploy while down; a fake Lambda records the calls."""
        return stack_state.hold_down(  # type: ignore[no-any-return]
            ecs=self.clients.ecs,
            rds=self.clients.rds,
            lambda_=self.lambda_,
            cluster=self.cluster_arn,
            db_instance=DB_ID,
            function="scheduler",
        )

    def state(self) -> Any:
        return stack_state.read_state(
            ecs=self.clients.ecs, rds=self.clients.rds, cluster=self.cluster_arn, db_instance=DB_ID
        )


def _targets_by_service(
    template: dict[str, Any], targets: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The scalable target of each ECS service, in the order ``props`` lists the services."""
    resources = template["Resources"]
    service_ids = [k for k, v in resources.items() if v["Type"] == "AWS::ECS::Service"]
    out = []
    for service_id in service_ids:
        (target,) = [t for t in targets if service_id in str(t["ResourceId"])]
        out.append(target)
    return out


@pytest.fixture
def account(synthesized: Synthesized, monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        clients = AwsClients.create(session)
        yield Account(clients, session.client("ec2"), synthesized.json("prod"))


def test_a_release_at_23_00_leaves_the_stopped_stack_stopped(account: Account) -> None:
    assert account.state().state == "up"
    stopped = account.scheduler(NIGHT).run(Request(Action.STOP, Source.SCHEDULE))
    assert stopped.ok, stopped.to_dict()
    assert set(account.counts().values()) == {0}
    assert account.state().state == "down"

    account.cloudformation_update(revision="v2")

    # Nothing started: not the backends, not the web service.
    assert set(account.counts().values()) == {0}
    assert account.state().state == "down"
    # The workflow's hold-down finds nothing to stop again.
    assert account.hold_down() == []
    # The morning start brings back the template's minimums, on the new version.
    account.clients.rds.start_db_instance(DBInstanceIdentifier=DB_ID)
    started = account.scheduler(MORNING).run(Request(Action.START, Source.SCHEDULE))
    assert started.ok, started.to_dict()
    assert all(count >= 1 for count in account.counts().values()), account.counts()
    assert all(image.endswith(":v2") for image in account.images().values())


def test_a_template_desired_count_would_have_started_it(account: Account) -> None:
    """The failure the fix removes: the same release with DesiredCount in the template. The
    workflow's hold-down then stops it again, through the scheduler."""
    account.scheduler(NIGHT).run(Request(Action.STOP, Source.SCHEDULE))
    for service in account.services.values():
        service["DesiredCount"] = 1
    account.cloudformation_update(revision="v2")
    assert set(account.counts().values()) == {1}
    assert account.state().state == "down"  # the database is still stopped: the tasks fail
    assert sorted(account.hold_down()) == sorted(account.services)
    (call,) = account.lambda_.invocations
    assert call["FunctionName"] == "scheduler"
    assert json.loads(call["Payload"]) == {"action": "stop", "source": "operator"}


def test_hold_down_leaves_a_morning_start_alone(account: Account) -> None:
    """A deploy that overlaps the 09:00 start: the database is coming up and the services
    are being restored; hold-down must not stop them for the day."""
    account.scheduler(NIGHT).run(Request(Action.STOP, Source.SCHEDULE))
    account.clients.rds.start_db_instance(DBInstanceIdentifier=DB_ID)
    account.scheduler(MORNING).run(Request(Action.START, Source.SCHEDULE))
    assert all(count >= 1 for count in account.counts().values())
    assert account.hold_down() == []
    assert account.lambda_.invocations == []


def test_a_failed_morning_start_logs_what_the_alarm_counts(
    account: Account, synthesized: Synthesized
) -> None:
    """The FailedStart alarm's metric filter reads the scheduler's own JSON line."""
    import io

    from duochat_scheduler import logs

    (metric_filter,) = props(synthesized.json("prod"), "AWS::Logs::MetricFilter")
    wanted = dict(re.findall(r'\$\.(\w+) = "([^"]+)"', metric_filter["FilterPattern"]))
    assert wanted == {"message": "action.done", "action": "start", "level": "ERROR"}

    stream = io.StringIO()
    logs.configure(stream=stream)
    account.scheduler(NIGHT).run(Request(Action.STOP, Source.SCHEDULE))
    account.clients.rds.delete_db_instance(DBInstanceIdentifier=DB_ID, SkipFinalSnapshot=True)
    started = account.scheduler(MORNING).run(Request(Action.START, Source.SCHEDULE))
    assert not started.ok
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    matching = [line for line in lines if all(line.get(k) == v for k, v in wanted.items())]
    assert len(matching) == 1, lines
    # A start that went well does not match.
    assert not any(
        line.get("message") == "action.done" and line.get("level") == "ERROR"
        for line in lines
        if line.get("action") == "stop"
    )


class ClientErrors:
    ClientError = ClientError


class FakeCloudFormation:
    """DescribeStacks only (moto's CloudFormation needs packages this venv does not have)."""

    exceptions = ClientErrors

    def __init__(self, outputs: dict[str, str] | None) -> None:
        self.outputs = outputs

    def describe_stacks(self, *, StackName: str) -> dict[str, Any]:
        if self.outputs is None:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": f"Stack with id {StackName} does not exist",
                    }
                },
                "DescribeStacks",
            )
        outputs = [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]
        return {"Stacks": [{"StackName": StackName, "Outputs": outputs}]}


def test_before_the_first_deploy_the_stack_is_new() -> None:
    assert stack_state.stack_outputs(FakeCloudFormation(None), "DuochatDev") is None
    outputs = {"ClusterName": "c", "DatabaseInstanceId": "d", "SchedulerFunctionName": "f"}
    assert stack_state.stack_outputs(FakeCloudFormation(outputs), "DuochatDev") == outputs
