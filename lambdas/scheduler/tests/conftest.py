"""A moto account: a cluster of tagged services, their scaling targets and a DB instance."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import boto3
import pytest
from moto import mock_aws

from duochat_scheduler import logs
from duochat_scheduler.actions import Clock, Request, Scheduler
from duochat_scheduler.clients import AwsClients
from duochat_scheduler.config import Settings
from duochat_scheduler.ecs import Capacity
from duochat_scheduler.policy import Action, Source
from duochat_scheduler.report import Result

REGION = "ap-northeast-2"
CLUSTER = "duochat-test"
DB_ID = "duochat-db"
STATE_PREFIX = "/duochat/test/scheduler/state"
OVERRIDE = "/duochat/test/scheduler/override"
CHRISTMAS = date(2026, 12, 25)
# Tuesday 2026-11-24, 18:00 in Seoul.
WEEKDAY_EVENING = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

# name -> (desired count, scaling bounds or None); all tagged for the scheduler.
SERVICES: dict[str, tuple[int, tuple[int, int] | None]] = {
    "auth": (2, (1, 4)),
    "chat": (3, (2, 6)),
    "boards": (1, None),
}
UNTAGGED = "legacy"


@dataclass
class FakeClock:
    """A clock the test moves; sleeping advances it instead of waiting."""

    current: datetime = WEEKDAY_EVENING
    mono: float = 0.0
    slept: list[float] = field(default_factory=list)

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.mono += seconds

    def clock(self) -> Clock:
        return Clock(now=lambda: self.current, monotonic=lambda: self.mono, sleep=self._sleep)


@dataclass
class Env:
    """The mocked account plus helpers to run the scheduler against it and read it back."""

    clients: AwsClients
    settings: Settings
    clock: FakeClock
    cluster_arn: str

    # The account's layout, for assertions (test modules cannot import conftest).
    SERVICES: ClassVar = SERVICES
    UNTAGGED: ClassVar = UNTAGGED
    DB_ID: ClassVar = DB_ID
    STATE_PREFIX: ClassVar = STATE_PREFIX
    OVERRIDE: ClassVar = OVERRIDE
    CHRISTMAS: ClassVar = CHRISTMAS

    def scheduler(self, *, clients: AwsClients | None = None, **changes: Any) -> Scheduler:
        settings = self.settings
        if changes:
            settings = replace(settings, **changes)
        return Scheduler(
            settings=settings, clients=clients or self.clients, clock=self.clock.clock()
        )

    def run(
        self,
        action: str,
        *,
        source: str = "operator",
        dry_run: bool = False,
        clients: AwsClients | None = None,
        **changes: Any,
    ) -> Result:
        request = Request(Action(action), Source(source), dry_run)
        return self.scheduler(clients=clients, **changes).run(request)

    def original(self, name: str) -> Capacity:
        """The capacity ``name`` was created with."""
        desired, bounds = SERVICES[name]
        return Capacity(desired, *bounds) if bounds else Capacity(desired)

    def capacity(self, name: str) -> Capacity:
        svc = self.clients.ecs.describe_services(cluster=self.cluster_arn, services=[name])
        targets = self.clients.autoscaling.describe_scalable_targets(
            ServiceNamespace="ecs", ResourceIds=[f"service/{CLUSTER}/{name}"]
        )["ScalableTargets"]
        desired = svc["services"][0]["desiredCount"]
        if not targets:
            return Capacity(desired)
        return Capacity(desired, targets[0]["MinCapacity"], targets[0]["MaxCapacity"])

    def db_status(self) -> str:
        reply = self.clients.rds.describe_db_instances(DBInstanceIdentifier=DB_ID)
        return str(reply["DBInstances"][0]["DBInstanceStatus"])

    def state_parameters(self) -> dict[str, str]:
        reply = self.clients.ssm.get_parameters_by_path(Path=STATE_PREFIX, Recursive=True)
        return {p["Name"]: p["Value"] for p in reply["Parameters"]}

    def set_override(self, value: str) -> None:
        self.clients.ssm.put_parameter(Name=OVERRIDE, Value=value, Type="String", Overwrite=True)

    def set_capacity(self, name: str, capacity: Capacity) -> None:
        if capacity.scalable:
            self.clients.autoscaling.register_scalable_target(
                ServiceNamespace="ecs",
                ResourceId=f"service/{CLUSTER}/{name}",
                ScalableDimension="ecs:service:DesiredCount",
                MinCapacity=capacity.min_capacity,
                MaxCapacity=capacity.max_capacity,
            )
        self.clients.ecs.update_service(
            cluster=self.cluster_arn, service=name, desiredCount=capacity.desired
        )


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    logs.configure(stream=stream)
    return stream


@pytest.fixture(scope="session")
def _boto_clients() -> tuple[AwsClients, Any]:
    """Clients are slow to build and moto intercepts them whenever a mock is active,
    so every test shares them; each test still gets a fresh, empty mocked account."""
    session = boto3.Session(
        region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return AwsClients.create(session), session.client("ec2")


@pytest.fixture
def env(log_stream: io.StringIO, _boto_clients: tuple[AwsClients, Any]) -> Iterator[Env]:
    clients, ec2 = _boto_clients
    with mock_aws():
        cluster_arn = _build_account(ec2, clients)
        settings = Settings(
            cluster_arn=cluster_arn,
            db_instance_id=DB_ID,
            state_parameter_prefix=STATE_PREFIX,
            override_parameter=OVERRIDE,
            holidays=frozenset({CHRISTMAS}),
            min_desired_count=1,
        )
        yield Env(clients=clients, settings=settings, clock=FakeClock(), cluster_arn=cluster_arn)


def _build_account(ec2: Any, clients: AwsClients) -> str:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="svc", Description="svc", VpcId=vpc)["GroupId"]
    cluster_arn = clients.ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
    clients.ecs.register_task_definition(
        family="app",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "app", "image": "app:latest", "essential": True}],
    )
    network = {
        "awsvpcConfiguration": {
            "subnets": [subnet],
            "securityGroups": [group],
            "assignPublicIp": "DISABLED",
        }
    }
    tagged = {name: True for name in SERVICES} | {UNTAGGED: False}
    for name, is_tagged in tagged.items():
        desired, bounds = SERVICES.get(name, (1, None))
        clients.ecs.create_service(
            cluster=CLUSTER,
            serviceName=name,
            taskDefinition="app",
            desiredCount=desired,
            launchType="FARGATE",
            networkConfiguration=network,
            tags=[{"key": "duochat:scheduled", "value": "true" if is_tagged else "false"}],
        )
        if bounds:
            clients.autoscaling.register_scalable_target(
                ServiceNamespace="ecs",
                ResourceId=f"service/{CLUSTER}/{name}",
                ScalableDimension="ecs:service:DesiredCount",
                MinCapacity=bounds[0],
                MaxCapacity=bounds[1],
            )
    clients.rds.create_db_instance(
        DBInstanceIdentifier=DB_ID,
        DBInstanceClass="db.t4g.micro",
        Engine="mysql",
        AllocatedStorage=20,
        MasterUsername="admin",
        MasterUserPassword="not-a-secret-1234",
    )
    clients.ssm.put_parameter(Name=OVERRIDE, Value="{}", Type="String")
    return str(cluster_arn)
