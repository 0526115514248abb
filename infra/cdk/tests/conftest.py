"""One synthesized app for the whole session: the first synth costs ~25 s and ~1 GB."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from duochat_infra import config
from duochat_infra.main import build_app
from duochat_infra.stack import DuochatStack

CERTIFICATE_ARN = (
    "arn:aws:acm:ap-northeast-2:123456789012:certificate/00000000-0000-0000-0000-000000000000"
)


@dataclass
class Synthesized:
    outdir: Path
    stacks: dict[str, DuochatStack]
    templates: dict[str, Template]

    def json(self, env: str) -> dict[str, Any]:
        return dict(self.templates[env].to_json())


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stacks = build_app(
        outdir=str(outdir),
        configs=[
            config.dev(),  # HTTP only
            config.prod(certificate_arn=CERTIFICATE_ARN, domain_name="chat.example.com"),
        ],
    )
    app.synth()
    templates = {name: Template.from_stack(stack) for name, stack in stacks.items()}
    return Synthesized(outdir=outdir, stacks=stacks, templates=templates)


def app_container(task: dict[str, Any]) -> dict[str, Any]:
    """A task definition's service container (the one with a port), beside its sidecars."""
    (container,) = [c for c in task["ContainerDefinitions"] if c.get("PortMappings")]
    return dict(container)


@pytest.fixture(params=["dev", "prod"])
def env(request: pytest.FixtureRequest) -> str:
    return str(request.param)
