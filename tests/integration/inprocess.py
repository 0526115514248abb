"""The four services in this test process, each a real uvicorn server on its own port and its
own thread (and event loop), against MariaDB and Redis: as the local-services stack runs them,
but with objects the test hands in (a tracer provider per service) instead of environment."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI

from duochat_common.services import SERVICES, ServiceSpec
from duochat_common.serving import uvicorn_options
from duochat_common.settings import ServiceSettings
from duochat_common.testing import REDIS_URL
from duochat_embedded.localstack import create_databases, drop_databases, free_port

MYSQL = "mysql://root@127.0.0.1:3306"


@dataclass
class InProcessStack:
    ports: dict[str, int]
    servers: dict[str, uvicorn.Server] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


def _settings(
    spec: ServiceSpec, *, ports: Mapping[str, int], database: str, prefix: str
) -> ServiceSettings:
    name = spec.name
    extra: dict[str, Any] = {}
    if name == "auth":  # cheap hashes: this stack is about what happens after sign-in
        extra = {"password_time_cost": 1, "password_memory_kib": 1024, "password_parallelism": 1}
    return spec.settings(
        environment="test",
        database_url=f"{MYSQL}/{database}",
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        auth_jwks_url=f"http://127.0.0.1:{ports['auth']}/auth/.well-known/jwks.json",
        boards_url=f"http://127.0.0.1:{ports['boards']}",
        chat_url=f"http://127.0.0.1:{ports['chat']}",
        instance_id=f"{name}-{ports[name]}",
        **extra,
    )


@contextmanager
def running(app_kwargs: Callable[[str], dict[str, Any]]) -> Iterator[InProcessStack]:
    """Every service of the route table, ``create_app(settings, **app_kwargs(name))``."""
    prefix = f"t_tr_{uuid.uuid4().hex[:8]}_"
    names = [spec.name for spec in SERVICES]
    stack = InProcessStack(ports={name: free_port() for name in names})
    create_databases(MYSQL, [f"{prefix}{name}" for name in names])
    try:
        for spec in SERVICES:
            name = spec.name
            settings = _settings(spec, ports=stack.ports, database=f"{prefix}{name}", prefix=prefix)
            spec.migrate(settings)
            app: FastAPI = spec.create_app(settings, **app_kwargs(name))
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=stack.ports[name],
                log_config=None,
                log_level="warning",
                **uvicorn_options(name),  # type: ignore[arg-type]
            )
            server = stack.servers[name] = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, name=f"uvicorn-{name}", daemon=True)
            thread.start()
            stack.threads.append(thread)
        deadline = time.monotonic() + 60
        while not all(s.started for s in stack.servers.values()):
            if time.monotonic() > deadline or not all(t.is_alive() for t in stack.threads):
                raise RuntimeError("the in-process services did not start")
            time.sleep(0.05)
        yield stack
    finally:
        for server in stack.servers.values():
            server.should_exit = True
        for thread in stack.threads:
            thread.join(15)
        drop_databases(MYSQL, [f"{prefix}{name}" for name in names])
