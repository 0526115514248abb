"""The role the deploy workflow assumes, and GitHub's OIDC provider it trusts: in the repo as
code, deployed once per account by an administrator (README, "Deploy to AWS")::

    npx aws-cdk@<pinned> deploy DuochatDeployAccess -c githubRepository=<owner>/<repo>

The role trusts only this repository's ``dev`` and ``prod`` GitHub environments (the token's
``sub`` claim), and may do little itself: assume the CDK bootstrap roles, which do the deploy,
read what deploy/aws/stack_state.py asks about (the stacks, their services and databases),
stop a stack again through its scheduler Lambda, and create ECS's service-linked role on the
first deploy into an account.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, CfnOutput, Stack
from aws_cdk import aws_iam as iam
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

GITHUB_ISSUER = "token.actions.githubusercontent.com"
DEFAULT_REPOSITORY = "duochat/duochat"
# The qualifier `cdk bootstrap` uses unless told otherwise.
BOOTSTRAP_QUALIFIER = "hnb659fds"


def trust_subjects(repository: str, environments: Sequence[str]) -> list[str]:
    """The ``sub`` claims GitHub puts in a job's token that runs in one of ``environments``."""
    if repository.count("/") != 1 or not all(repository.split("/")):
        raise ValueError(f"githubRepository must be <owner>/<repo>, not {repository!r}")
    return [f"repo:{repository}:environment:{env}" for env in environments]


class DeployAccessStack(Stack):
    """GitHub's OIDC provider and the deploy role (one per account)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        repository: str,
        environments: Sequence[str],
        stack_names: Sequence[str],
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        provider = iam.CfnOIDCProvider(
            self,
            "GitHub",
            url=f"https://{GITHUB_ISSUER}",
            client_id_list=["sts.amazonaws.com"],
        )
        self.role = iam.Role(
            self,
            "DeployRole",
            description="duochat deploy workflow (GitHub Actions, OIDC)",
            assumed_by=iam.WebIdentityPrincipal(
                provider.attr_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_ISSUER}:aud": "sts.amazonaws.com",
                        f"{GITHUB_ISSUER}:sub": trust_subjects(repository, environments),
                    }
                },
            ),
        )
        bootstrap_roles = self.format_arn(
            service="iam",
            region="",
            resource="role",
            resource_name=f"cdk-{BOOTSTRAP_QUALIFIER}-*-{self.account}-{self.region}",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="UseCdkBootstrapRoles", actions=["sts:AssumeRole"], resources=[bootstrap_roles]
            )
        )
        stacks = [
            self.format_arn(service="cloudformation", resource="stack", resource_name=f"{name}/*")
            for name in stack_names
        ]
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadDuochatStacks", actions=["cloudformation:DescribeStacks"], resources=stacks
            )
        )
        # Describe calls that AWS does not scope by resource (the state check reads them).
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadStackState",
                actions=["ecs:ListServices", "ecs:DescribeServices", "rds:DescribeDBInstances"],
                resources=["*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="HoldStackDown",
                actions=["lambda:InvokeFunction"],
                resources=[
                    self.format_arn(
                        service="lambda",
                        resource="function",
                        resource_name=f"{name}-SchedulerFunction*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                    for name in stack_names
                ],
            )
        )
        # The first deploy into an account: ECS's service-linked role, and only that one.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="EcsServiceLinkedRole",
                actions=["iam:CreateServiceLinkedRole"],
                resources=[
                    self.format_arn(
                        service="iam",
                        region="",
                        resource="role",
                        resource_name="aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
                    )
                ],
                conditions={"StringEquals": {"iam:AWSServiceName": "ecs.amazonaws.com"}},
            )
        )
        CfnOutput(self, "DeployRoleArn", value=self.role.role_arn)
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The CDK bootstrap roles are named by qualifier, purpose, account and "
                    "region; the stacks and the scheduler functions get CloudFormation's "
                    "generated suffixes; ecs:ListServices/DescribeServices and "
                    "rds:DescribeDBInstances are read-only and checked against nothing else.",
                )
            ],
            apply_to_children=True,
        )
