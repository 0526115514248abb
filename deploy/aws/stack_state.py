"""Is the deployed stack up or held down by the business-hours scheduler? The deploy workflow
asks before and after ``cdk deploy``.

    python deploy/aws/stack_state.py check --stack DuochatDev
        prints the state as JSON and, in GitHub Actions, writes ``state=new|up|down`` to
        $GITHUB_OUTPUT.
    python deploy/aws/stack_state.py hold-down --stack DuochatDev
        after a deploy while down: if any scheduled service runs tasks again while the
        database is still stopped, asks the scheduler Lambda to stop the stack, so the night
        stays quiet and billing-free (a morning start in progress is left alone).

A deploy while down changes task definitions only (the template carries no DesiredCount):
nothing starts, and the next morning's start runs the new version and its migrations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

SCHEDULE_TAG_KEY = "duochat:scheduled"
# The stack outputs this script reads (DuochatStack writes them).
CLUSTER_OUTPUT = "ClusterName"
DB_OUTPUT = "DatabaseInstanceId"
SCHEDULER_OUTPUT = "SchedulerFunctionName"


@dataclass(frozen=True)
class StackState:
    state: str  # "new" (no stack yet), "up" or "down"
    database: str | None = None
    desired: Mapping[str, int] | None = None


def scheduled_services(ecs: Any, cluster: str) -> dict[str, int]:
    """The desired count of each service the scheduler manages, by name."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
        arns.extend(page["serviceArns"])
    counts = {}
    for start in range(0, len(arns), 10):
        reply = ecs.describe_services(
            cluster=cluster, services=arns[start : start + 10], include=["TAGS"]
        )
        for service in reply["services"]:
            tags = {t["key"]: t["value"] for t in service.get("tags", [])}
            if tags.get(SCHEDULE_TAG_KEY) == "true":
                counts[service["serviceName"]] = int(service["desiredCount"])
    return counts


def read_state(*, ecs: Any, rds: Any, cluster: str, db_instance: str) -> StackState:
    """``down`` when the database is not available or every scheduled service is at zero."""
    database = rds.describe_db_instances(DBInstanceIdentifier=db_instance)["DBInstances"][0][
        "DBInstanceStatus"
    ]
    desired = scheduled_services(ecs, cluster)
    down = database != "available" or not any(desired.values())
    return StackState(state="down" if down else "up", database=database, desired=desired)


def hold_down(
    *, ecs: Any, rds: Any, lambda_: Any, cluster: str, db_instance: str, function: str
) -> list[str]:
    """Stop the stack again (through the scheduler) if a deploy started any service while the
    database is still stopped. A database on its way up means the morning start is running:
    then the services are meant to come back, and this leaves them alone."""
    database = rds.describe_db_instances(DBInstanceIdentifier=db_instance)["DBInstances"][0][
        "DBInstanceStatus"
    ]
    if database not in ("stopped", "stopping"):
        return []
    running = [name for name, count in scheduled_services(ecs, cluster).items() if count]
    if running:
        lambda_.invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps({"action": "stop", "source": "operator"}).encode(),
        )
    return running


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str] | None:
    """The stack's outputs by key, or None when the stack does not exist yet."""
    try:
        reply = cloudformation.describe_stacks(StackName=stack)
    except cloudformation.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in reply["Stacks"][0].get("Outputs", [])}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["check", "hold-down"])
    parser.add_argument("--stack", required=True)
    args = parser.parse_args(argv)

    import boto3  # in the workspace venv (make env)

    outputs = stack_outputs(boto3.client("cloudformation"), args.stack)
    if args.command == "check":
        if outputs is None:
            state = StackState(state="new")
        else:
            state = read_state(
                ecs=boto3.client("ecs"),
                rds=boto3.client("rds"),
                cluster=outputs[CLUSTER_OUTPUT],
                db_instance=outputs[DB_OUTPUT],
            )
        print(json.dumps(asdict(state)))
        if github_output := os.environ.get("GITHUB_OUTPUT"):
            with open(github_output, "a", encoding="utf-8") as f:
                f.write(f"state={state.state}\n")
        return 0
    if outputs is None:
        print(f"{args.stack} does not exist", file=sys.stderr)
        return 1
    stopped = hold_down(
        ecs=boto3.client("ecs"),
        rds=boto3.client("rds"),
        lambda_=boto3.client("lambda"),
        cluster=outputs[CLUSTER_OUTPUT],
        db_instance=outputs[DB_OUTPUT],
        function=outputs[SCHEDULER_OUTPUT],
    )
    print(json.dumps({"stoppedAgain": stopped}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
