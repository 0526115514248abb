"""Render a Prometheus scrape config from the route table, as the gateway is rendered from it.

One job per service of ``ROUTES``, scraping ``/metrics`` on the service's own port (never
through the gateway), each target labelled with its ``service``, as the embedded mode labels its
one registry. The file is JSON, which Prometheus reads as the YAML it is.

``make services`` writes one for its ports (``.run/services/prometheus.yml``), and the
integration tests run Debian's ``prometheus`` on it. For the compose stack:
``python -m duochat_common.prometheus --out deploy/prometheus/prometheus.yml``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from duochat_common.routing import METRICS_PATH, ROUTES

COMPOSE_CONF = Path("deploy/prometheus/prometheus.yml")


def render_scrape_config(*, targets: Mapping[str, Sequence[str]], interval_s: float = 15.0) -> str:
    """A prometheus.yml that scrapes every service of the route table at ``targets[service]``
    (``host:port`` addresses)."""
    services = [r.service for r in sorted(ROUTES, key=lambda r: r.priority)]
    missing = set(services) - set(targets)
    if missing:
        raise ValueError(f"no scrape target for: {', '.join(sorted(missing))}")
    unknown = set(targets) - set(services)
    if unknown:
        raise ValueError(f"not in the route table: {', '.join(sorted(unknown))}")
    interval = f"{interval_s:g}s"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": f"duochat-{service}",
                "metrics_path": METRICS_PATH,
                "scrape_timeout": f"{min(interval_s, 10.0):g}s",
                "static_configs": [
                    {"targets": list(targets[service]), "labels": {"service": service}}
                ],
            }
            for service in services
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def local_config(ports: Mapping[str, int], *, interval_s: float = 15.0) -> str:
    """Every service on 127.0.0.1 at its port (``make services``, the tests)."""
    return render_scrape_config(
        targets={name: [f"127.0.0.1:{port}"] for name, port in ports.items()},
        interval_s=interval_s,
    )


def compose_config() -> str:
    """The compose stack: each service by its compose name at its route-table port."""
    return render_scrape_config(targets={r.service: [f"{r.service}:{r.port}"] for r in ROUTES})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=COMPOSE_CONF)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(compose_config())


if __name__ == "__main__":
    main()
