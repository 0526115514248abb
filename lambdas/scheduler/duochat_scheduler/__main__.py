"""Operator command: ``python -m duochat_scheduler status|start|stop [--dry-run]``.

Runs the same actions as the Lambda, from a laptop, with the caller's AWS credentials.
Settings come from the same environment variables as the Lambda, or from the deployed
function's environment with ``--function NAME``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import IO

import boto3

from . import logs
from .actions import Request, Scheduler
from .clients import AwsClients
from .config import ConfigError, Settings
from .policy import Action, Source
from .report import render_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m duochat_scheduler", description="Start or stop the duochat stack."
    )
    parser.add_argument("action", choices=[a.value for a in Action])
    parser.add_argument("--dry-run", action="store_true", help="show what would change")
    parser.add_argument(
        "--function",
        metavar="NAME",
        help="read the settings from this deployed scheduler Lambda's environment",
    )
    parser.add_argument(
        "--wait-minutes",
        type=float,
        default=20.0,
        help="how long start waits for the database before giving up (default 20)",
    )
    parser.add_argument("--region", help="AWS region (default: from your AWS config)")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    clients: AwsClients | None = None,
    environ: Mapping[str, str] | None = None,
    out: IO[str] | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    # JSON logs go to stderr so that the table on stdout stays readable.
    logs.configure(stream=sys.stderr, level=logging.ERROR)
    aws = clients or AwsClients.create(boto3.Session(region_name=args.region))
    try:
        env = _function_environment(aws, args.function) if args.function else environ
        settings = Settings.from_env(env)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    request = Request(action=Action(args.action), source=Source.OPERATOR, dry_run=args.dry_run)
    result = Scheduler(settings=settings, clients=aws).run(
        request, wait_seconds=args.wait_minutes * 60
    )
    print(render_table(result), file=out)
    return 0 if result.ok else 1


def _function_environment(aws: AwsClients, name: str) -> dict[str, str]:
    config = aws.lambda_.get_function_configuration(FunctionName=name)
    return dict(config.get("Environment", {}).get("Variables", {}))


if __name__ == "__main__":
    sys.exit(main())
