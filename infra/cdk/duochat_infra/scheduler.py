"""Business hours: a Lambda on two EventBridge Scheduler schedules that stops the stack at night.

The Lambda is ``lambdas/scheduler`` (package ``duochat_scheduler``); see its README for the
override, the holidays and the operator command.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsii
import tzdata
from aws_cdk import (
    BundlingOptions,
    CfnOutput,
    DockerImage,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_ssm as ssm
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

LAMBDA_SOURCE = Path(__file__).resolve().parents[3] / "lambdas" / "scheduler"
HANDLER = "duochat_scheduler.handler.handler"
# Only the package is deployed: tests, caches and packaging files stay behind.
_ASSET_EXCLUDE = [
    "tests",
    "**/__pycache__",
    "**/*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "*.egg-info",
    "pyproject.toml",
    "README.md",
]


@jsii.implements(ILocalBundling)
class _PackageWithTzdata:
    """Bundles the Lambda without Docker: the package plus the pure-Python ``tzdata`` package,
    because the Lambda base image may ship no zoneinfo files and the schedule needs Asia/Seoul."""

    def try_bundle(self, output_dir: str, options: object = None) -> bool:
        out = Path(output_dir)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(
            LAMBDA_SOURCE / "duochat_scheduler", out / "duochat_scheduler", ignore=ignore
        )
        shutil.copytree(Path(tzdata.__file__).parent, out / "tzdata", ignore=ignore)
        return True


def lambda_code() -> lambda_.Code:
    """The scheduler's deployment package, bundled locally (synth needs no Docker)."""
    return lambda_.Code.from_asset(
        str(LAMBDA_SOURCE),
        exclude=_ASSET_EXCLUDE,
        bundling=BundlingOptions(
            # Only used if local bundling were refused; it never is.
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
            # jsii calls try_bundle(output_dir, options) positionally, unlike the typed stub.
            local=cast(ILocalBundling, _PackageWithTzdata()),
        ),
    )


# EventBridge Scheduler's cron has six fields: minutes hours day-of-month month day-of-week year.
_CRON = re.compile(r"^cron\((\S+ ){5}\S+\)$")
_RATE_OR_AT = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\(\S+\))$")


class BusinessHoursScheduler(Construct):
    """Starts the cluster's tagged services and the DB instance on weekday mornings and stops
    them in the evening, with a least-privilege Lambda role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: ecs.ICluster,
        db_instance: rds.IDatabaseInstance,
        service_tag_key: str = "duochat:scheduled",
        service_tag_value: str = "true",
        holidays: Sequence[str | date] = (),
        timezone: str = "Asia/Seoul",
        start_schedule: str = "cron(0 9 ? * MON-FRI *)",
        stop_schedule: str = "cron(0 18 ? * MON-FRI *)",
        min_desired_count: int = 1,
        parameter_path: str | None = None,
        enabled: bool = True,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, construct_id)
        _check_schedule(start_schedule)
        _check_schedule(stop_schedule)
        _check_timezone(timezone)
        if min_desired_count < 0:
            raise ValueError("min_desired_count must be at least 0")
        holiday_list = [_holiday(day) for day in holidays]
        stack = Stack.of(self)
        path = (parameter_path or f"/{stack.stack_name}/scheduler").rstrip("/")
        if not path.startswith("/"):
            raise ValueError("parameter_path must start with '/'")
        state_prefix = f"{path}/state"

        self.override_parameter = ssm.StringParameter(
            self,
            "Override",
            parameter_name=f"{path}/override",
            string_value="{}",
            description='Scheduler override, e.g. {"mode": "keep-up", "until": "<ISO 8601>"}',
        )
        log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal_policy
        )
        self.log_group = log_group
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="duochat business-hours scheduler",
        )
        log_group.grant_write(role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLER,
            code=lambda_code(),
            role=role,
            log_group=log_group,
            memory_size=256,
            # A start waits here for RDS, then hands the rest of the wait to a new invocation.
            timeout=Duration.minutes(15),
            description="Starts and stops duochat for business hours",
            environment={
                "CLUSTER_ARN": cluster.cluster_arn,
                "SERVICE_TAG_KEY": service_tag_key,
                "SERVICE_TAG_VALUE": service_tag_value,
                "DB_INSTANCE_ID": db_instance.instance_identifier,
                "STATE_PARAMETER_PREFIX": state_prefix,
                "OVERRIDE_PARAMETER": self.override_parameter.parameter_name,
                "HOLIDAYS": ",".join(holiday_list),
                "TIMEZONE": timezone,
                "MIN_DESIRED_COUNT": str(min_desired_count),
            },
        )
        # A Policy of its own (not the role's default policy, which the function depends on)
        # can name the function itself without a dependency cycle.
        self.policy = iam.Policy(
            self,
            "Permissions",
            roles=[role],
            statements=_function_statements(
                stack=stack,
                cluster=cluster,
                db_instance=db_instance,
                override_parameter=self.override_parameter,
                state_prefix=state_prefix,
                function=self.function,
            ),
        )

        invoke_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description="Lets EventBridge Scheduler invoke the duochat scheduler Lambda",
        )
        invoke_role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[self.function.function_arn]
            )
        )
        self.schedules = {
            action: scheduler.CfnSchedule(
                self,
                f"{action.capitalize()}Schedule",
                description=f"duochat business hours: {action}",
                schedule_expression=expression,
                schedule_expression_timezone=timezone,
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED" if enabled else "DISABLED",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=self.function.function_arn,
                    role_arn=invoke_role.role_arn,
                    input=json.dumps({"action": action, "source": "schedule"}),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                        maximum_event_age_in_seconds=3600, maximum_retry_attempts=5
                    ),
                ),
            )
            for action, expression in (("start", start_schedule), ("stop", stop_schedule))
        }

        CfnOutput(self, "FunctionName", value=self.function.function_name)
        CfnOutput(self, "OverrideParameterName", value=self.override_parameter.parameter_name)
        self._suppress_nag()

    def _suppress_nag(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self.function,
            [
                NagPackSuppression(
                    id="AwsSolutions-L1",
                    reason="python3.12 is pinned on purpose (the code targets Python 3.11+ and "
                    "uses only boto3 from the runtime): moving to a newer runtime is a reviewed "
                    "change, not something a new cdk-nag release should force.",
                )
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.policy,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="ecs:ListServices and application-autoscaling:DescribeScalableTargets "
                    "support no resource-level permissions; ListServices is conditioned on this "
                    "cluster. Services are found by tag at run time, so the service ARNs end in "
                    "/* under this cluster only. Scalable target ARNs are random ids; "
                    "RegisterScalableTarget is bounded by ecs:UpdateService on this cluster's "
                    "services, which Application Auto Scaling checks on the caller. The state "
                    "parameters are one per service, under the scheduler's own SSM path.",
                    applies_to=[
                        "Resource::*",
                        RegexAppliesTo(
                            regex=r"/^Resource::arn:<AWS::Partition>:ecs:.*:service\/.*\/\*$/g"
                        ),
                        RegexAppliesTo(
                            regex=r"/^Resource::arn:<AWS::Partition>:application-autoscaling:.*:scalable-target\/\*$/g"
                        ),
                        RegexAppliesTo(
                            regex=r"/^Resource::arn:<AWS::Partition>:ssm:.*:parameter\/.*\/state\/\*$/g"
                        ),
                    ],
                )
            ],
            apply_to_children=True,
        )


def _function_statements(
    *,
    stack: Stack,
    cluster: ecs.ICluster,
    db_instance: rds.IDatabaseInstance,
    override_parameter: ssm.IStringParameter,
    state_prefix: str,
    function: lambda_.IFunction,
) -> list[iam.PolicyStatement]:
    """What the Lambda may do: this cluster's services and their scaling, this DB instance,
    its own parameters, and re-invoking itself. No wildcard action anywhere."""
    on_cluster = {"ArnEquals": {"ecs:cluster": cluster.cluster_arn}}
    services = stack.format_arn(
        service="ecs", resource="service", resource_name=f"{cluster.cluster_name}/*"
    )
    scalable_targets = stack.format_arn(
        service="application-autoscaling", resource="scalable-target", resource_name="*"
    )
    state_parameters = stack.format_arn(
        service="ssm", resource="parameter", resource_name=f"{state_prefix.lstrip('/')}/*"
    )
    return [
        iam.PolicyStatement(
            sid="ListClusterServices",
            actions=["ecs:ListServices"],
            resources=["*"],
            conditions=on_cluster,
        ),
        iam.PolicyStatement(
            sid="ScaleClusterServices",
            actions=["ecs:DescribeServices", "ecs:UpdateService"],
            resources=[services],
        ),
        iam.PolicyStatement(
            sid="ReadScalableTargets",
            actions=["application-autoscaling:DescribeScalableTargets"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="HoldScalableTargets",
            actions=["application-autoscaling:RegisterScalableTarget"],
            resources=[scalable_targets],
        ),
        iam.PolicyStatement(
            sid="StartStopDatabase",
            actions=["rds:DescribeDBInstances", "rds:StartDBInstance", "rds:StopDBInstance"],
            resources=[db_instance.instance_arn],
        ),
        iam.PolicyStatement(
            sid="ReadOverride",
            actions=["ssm:GetParameter"],
            resources=[override_parameter.parameter_arn],
        ),
        iam.PolicyStatement(
            sid="RecordCapacity",
            actions=["ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"],
            resources=[state_parameters],
        ),
        iam.PolicyStatement(
            sid="HandOnTheWait",
            actions=["lambda:InvokeFunction"],
            resources=[function.function_arn],
        ),
    ]


def _check_schedule(expression: str) -> None:
    """EventBridge Scheduler validates only at deploy time; fail at synth instead."""
    if not (_CRON.match(expression) or _RATE_OR_AT.match(expression)):
        raise ValueError(
            f"schedule {expression!r} is not cron(m h dom mon dow year), rate(...) or at(...)"
        )


def _check_timezone(timezone: str) -> None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"timezone {timezone!r} is not an IANA time zone") from exc


def _holiday(day: str | date) -> str:
    text = day.isoformat() if isinstance(day, date) else day
    try:
        date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"holiday {text!r} is not a YYYY-MM-DD date") from exc
    return text
