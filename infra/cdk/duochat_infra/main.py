"""Build the CDK app: one ``DuochatStack`` per environment, checked by cdk-nag."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from duochat_infra import config as envs
from duochat_infra.deploy_access import DEFAULT_REPOSITORY, DeployAccessStack
from duochat_infra.stack import DuochatStack

DEPLOY_ACCESS_STACK = "DuochatDeployAccess"

CDK_DIR = Path(__file__).resolve().parents[1]


def file_context() -> dict[str, object]:
    """The context the CLI would pass: cdk.json's feature flags and cdk.context.json's
    cached lookups (the AZs of the placeholder account), so a plain ``python app.py`` sees
    the same and never calls AWS."""
    context: dict[str, object] = {}
    for name, key in (("cdk.json", "context"), ("cdk.context.json", None)):
        path = CDK_DIR / name
        if path.exists():
            data = json.loads(path.read_text())
            context.update(data.get(key, {}) if key else data)
    return context


def configs_from_context(app: cdk.App) -> list[envs.EnvironmentConfig]:
    """dev and prod, with the account, region and certificate from the CLI or ``-c`` flags.

    ``-c prodCertificateArn=arn:... -c prodDomainName=chat.example.com`` turns on HTTPS.
    """
    account = os.environ.get("CDK_DEFAULT_ACCOUNT") or envs.PLACEHOLDER_ACCOUNT
    region = app.node.try_get_context("region") or envs.DEFAULT_REGION
    configs = []
    for make in (envs.dev, envs.prod):
        name = make().name
        configs.append(
            make(
                account=account,
                region=region,
                certificate_arn=app.node.try_get_context(f"{name}CertificateArn"),
                domain_name=app.node.try_get_context(f"{name}DomainName"),
            )
        )
    return configs


def build_app(
    *, outdir: str | None = None, configs: Sequence[envs.EnvironmentConfig] | None = None
) -> tuple[cdk.App, dict[str, DuochatStack]]:
    """The app and its stacks by environment name; call ``app.synth()`` to write them."""
    # The CLI passes its own output folder (CDK_OUTDIR); a plain `python app.py` writes
    # to infra/cdk/cdk.out.
    app = cdk.App(
        outdir=outdir or os.environ.get("CDK_OUTDIR") or str(CDK_DIR / "cdk.out"),
        context=file_context(),  # what the CLI passes takes precedence over these
    )
    chosen = list(configs if configs is not None else configs_from_context(app))
    stacks = {config.name: DuochatStack(app, config.stack_name, config=config) for config in chosen}
    # The deploy workflow's role (deployed once per account, by hand): `-c githubRepository=`.
    DeployAccessStack(
        app,
        DEPLOY_ACCESS_STACK,
        env=cdk.Environment(account=chosen[0].account, region=chosen[0].region),
        description="duochat: GitHub OIDC provider and the deploy workflow's role",
        repository=app.node.try_get_context("githubRepository") or DEFAULT_REPOSITORY,
        environments=[config.name for config in chosen],
        stack_names=[config.stack_name for config in chosen],
    )
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app, stacks
