"""ServiceUsers: a custom resource that gives each service its own MySQL user at deploy time.

The handler (db_users_lambda/index.py) runs in the task subnets with the master secret: it
creates each service's database and user (TLS required, every right on that database only)
and keeps the password equal to the service's secret. It runs when the stack is created and
when the list of users or secrets changes, not on a release that only changes images, so a
deploy outside business hours (database stopped) does not need it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

import jsii
import pymysql
from aws_cdk import (
    BundlingOptions,
    CustomResource,
    DockerImage,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

HANDLER_SOURCE = Path(__file__).resolve().parent / "db_users_lambda"


def rds_ca_url(region: str) -> str:
    """AWS's trust store bundle for RDS in ``region`` (the CAs its certificates chain to)."""
    return f"https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"


@jsii.implements(ILocalBundling)
class _HandlerWithPyMySQL:
    """The handler plus the pure-Python PyMySQL package, bundled without Docker."""

    def try_bundle(self, output_dir: str, options: object = None) -> bool:
        out = Path(output_dir)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copy2(HANDLER_SOURCE / "index.py", out / "index.py")
        shutil.copytree(Path(pymysql.__file__).parent, out / "pymysql", ignore=ignore)
        return True


def handler_code() -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(HANDLER_SOURCE),
        exclude=["__pycache__", "*.pyc"],
        bundling=BundlingOptions(
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
            local=cast(ILocalBundling, _HandlerWithPyMySQL()),
        ),
    )


class ServiceUsers(Construct):
    """Provisions ``users`` (database name -> its user's secret) on the instance whose master
    secret is ``master_secret``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        master_secret: secretsmanager.ISecret,
        users: dict[str, secretsmanager.ISecret],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="duochat MySQL user provisioning",
            # Out to MySQL, Secrets Manager and the RDS trust store (through the NAT).
            allow_all_outbound=True,
        )
        log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal_policy
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="duochat MySQL user provisioning",
        )
        log_group.grant_write(role)
        # What a Lambda in a VPC needs for its network interfaces; AWS scopes none by resource.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
            )
        )
        master_secret.grant_read(role)
        for secret in users.values():
            secret.grant_read(role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler="index.handler",
            code=handler_code(),
            role=role,
            log_group=log_group,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            memory_size=256,
            timeout=Duration.minutes(2),
            description="Creates each duochat service's MySQL user and database",
        )
        self.resource = CustomResource(
            self,
            "Users",
            service_token=self.function.function_arn,
            resource_type="Custom::DuochatServiceUsers",
            properties={
                "MasterSecretArn": master_secret.secret_arn,
                "CaUrl": rds_ca_url(stack.region),
                "Users": [
                    {"database": name, "secretArn": secret.secret_arn}
                    for name, secret in sorted(users.items())
                ],
            },
        )
        NagSuppressions.add_resource_suppressions(
            self,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="A Lambda in a VPC manages its network interfaces, whose ids are "
                    "not known in advance (ec2:*NetworkInterface* has no resource scoping).",
                    applies_to=["Resource::*"],
                ),
                NagPackSuppression(
                    id="AwsSolutions-L1",
                    reason="python3.12 is pinned on purpose, like the scheduler's: a runtime "
                    "change is a reviewed change.",
                ),
            ],
            apply_to_children=True,
        )

    def allow_to(self, database_security_group: ec2.ISecurityGroup, port: int) -> None:
        database_security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(port), "MySQL from the user provisioning"
        )
        # CloudFormation would otherwise run the handler before the rule exists.
        self.resource.node.add_dependency(database_security_group)
