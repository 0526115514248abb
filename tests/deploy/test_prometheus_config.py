"""The Prometheus scrape config is rendered from the route table, like the gateway: one job per
service on its own port at /metrics, labelled with its service; Debian's promtool accepts it,
and the committed compose copy is fresh."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from duochat_common import prometheus
from duochat_common.routing import METRICS_PATH, ROUTES

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def test_one_job_per_service_scrapes_its_own_port() -> None:
    config = json.loads(prometheus.local_config({r.service: r.port + 1000 for r in ROUTES}))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {f"duochat-{r.service}" for r in ROUTES}
    for route in ROUTES:
        job = jobs[f"duochat-{route.service}"]
        assert job["metrics_path"] == METRICS_PATH
        (static,) = job["static_configs"]
        assert static == {
            "targets": [f"127.0.0.1:{route.port + 1000}"],
            "labels": {"service": route.service},
        }


def test_promtool_accepts_the_rendered_configs(tmp_path: Path) -> None:
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool not found (apt-get install -y prometheus)")
    local = tmp_path / "local.yml"
    local.write_text(prometheus.local_config({r.service: r.port for r in ROUTES}, interval_s=1))
    for path in (local, REPO / prometheus.COMPOSE_CONF):
        result = subprocess.run(
            [PROMTOOL, "check", "config", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_committed_compose_config_is_fresh_and_mounted() -> None:
    assert (REPO / prometheus.COMPOSE_CONF).read_text() == prometheus.compose_config(), (
        "deploy/prometheus/prometheus.yml is stale: run "
        "`python -m duochat_common.prometheus --out deploy/prometheus/prometheus.yml`"
    )
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["prometheus"]
    assert f"./{prometheus.COMPOSE_CONF}:/etc/prometheus/prometheus.yml:ro" in service["volumes"]
    assert service["profiles"] == ["observability"]  # not part of a plain `docker compose up`


def test_a_target_for_every_service_or_none() -> None:
    targets = {r.service: [f"h:{r.port}"] for r in ROUTES}
    with pytest.raises(ValueError, match="no scrape target"):
        prometheus.render_scrape_config(targets={k: v for k, v in targets.items() if k != "chat"})
    with pytest.raises(ValueError, match="not in the route table"):
        prometheus.render_scrape_config(targets={**targets, "mail": ["h:1"]})
