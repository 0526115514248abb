"""The AWS clients the scheduler talks to, bundled so that callers (and tests) can swap one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

# Standard mode retries throttling and transient errors with backoff before we see them.
_RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})


@dataclass(frozen=True)
class AwsClients:
    ecs: Any
    autoscaling: Any
    rds: Any
    ssm: Any
    lambda_: Any

    @classmethod
    def create(cls, session: boto3.Session | None = None) -> AwsClients:
        """Create real boto3 clients from ``session`` (the default session if omitted)."""
        s = session or boto3.Session()
        return cls(
            ecs=s.client("ecs", config=_RETRIES),
            autoscaling=s.client("application-autoscaling", config=_RETRIES),
            rds=s.client("rds", config=_RETRIES),
            ssm=s.client("ssm", config=_RETRIES),
            lambda_=s.client("lambda", config=_RETRIES),
        )
