"""The local-services mode: each service its own uvicorn process on its own port, against
MariaDB and Redis, behind nginx configured from the route table.

``python -m duochat_embedded.localstack`` is what ``make services`` runs; the cross-service tests
start the same stack on free ports with throwaway databases.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from duochat_common.gateway import render_nginx_conf
from duochat_common.logs import uvicorn_log_config
from duochat_common.prometheus import local_config
from duochat_common.routing import GATEWAY_PORT, METRICS_PATH
from duochat_common.services import SERVICES, service
from duochat_common.serving import uvicorn_cli

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalStack:
    """Running processes of one stack, and where they listen."""

    ports: dict[str, int]
    gateway_port: int
    run_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)  # service -> database URL

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def metrics_url(self, name: str) -> str:
        return f"{self.service_url(name)}{METRICS_PATH}"

    @property
    def prometheus_config(self) -> Path:
        """A Prometheus scrape config for this stack's ports, rendered from the route table."""
        return self.run_dir / "prometheus.yml"

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def service_env(
    name: str,
    *,
    ports: Mapping[str, int],
    mysql_server: str,
    db_prefix: str,
    redis_url: str,
    redis_prefix: str,
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DUOCHAT_ENVIRONMENT="development",
        DUOCHAT_DATABASE_URL=f"{mysql_server}/{db_prefix}{name}",
        DUOCHAT_REDIS_URL=redis_url,
        DUOCHAT_REDIS_PREFIX=redis_prefix,
        DUOCHAT_AUTH_JWKS_URL=f"http://127.0.0.1:{ports['auth']}/auth/.well-known/jwks.json",
        DUOCHAT_BOARDS_URL=f"http://127.0.0.1:{ports['boards']}",
        DUOCHAT_CHAT_URL=f"http://127.0.0.1:{ports['chat']}",
        DUOCHAT_INSTANCE_ID=f"{name}-{ports[name]}",
        PYTHONUNBUFFERED="1",
    )
    # nginx runs on this machine: its X-Forwarded-For names the client. A load test's many
    # users all come from here, so sign-ups are not limited per address in this mode.
    env.setdefault("DUOCHAT_TRUSTED_PROXIES", "127.0.0.1,::1")
    env.setdefault("DUOCHAT_REGISTER_MAX_PER_ADDRESS", "1000000")
    return env


def _on_each_database(mysql_server: str, statement: str, names: list[str]) -> None:
    """Run ``statement`` (with ``{name}`` in it) for each database name, on the server."""
    engine = create_engine(
        mysql_server.replace("mysql://", "mysql+pymysql://", 1), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        for name in names:
            conn.execute(text(statement.format(name=name)))
    engine.dispose()


def create_databases(mysql_server: str, names: list[str]) -> None:
    _on_each_database(
        mysql_server, "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4", names
    )


def drop_databases(mysql_server: str, names: list[str]) -> None:
    _on_each_database(mysql_server, "DROP DATABASE IF EXISTS `{name}`", names)


def wait_ready(url: str, proc: subprocess.Popen[bytes], *, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def spawn(
    name: str, port: int, env: Mapping[str, str], run_dir: Path, log_dir: Path, log_name: str = ""
) -> subprocess.Popen[bytes]:
    """One service's uvicorn, as the image runs it, logging JSON lines to ``log_dir``."""
    log_name = log_name or name
    log_config = run_dir / f"{log_name}-logging.json"
    log_config.write_text(json.dumps(uvicorn_log_config(name)))
    return subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            service(name).app_ref,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "5",
            "--no-access-log",
            "--log-config",
            str(log_config),
            *uvicorn_cli(name),
        ],
        env=dict(env),
        stdout=(log_dir / f"{log_name}.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def start(
    *,
    mysql_server: str = "mysql://root@127.0.0.1:3306",
    db_prefix: str = "duochat_",
    redis_url: str = "redis://127.0.0.1:6379/0",
    redis_prefix: str = "",
    gateway_port: int = GATEWAY_PORT,
    ports: Mapping[str, int] | None = None,
    run_dir: Path | None = None,
    web_dist: Path = ROOT / "web" / "dist",
    log_dir: Path | None = None,
) -> LocalStack:
    """Create databases, migrate, start every service and nginx; wait until all are ready."""
    chosen = dict(ports or {spec.name: spec.port for spec in SERVICES})
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="duochat-stack-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir = log_dir or run_dir
    stack = LocalStack(ports=chosen, gateway_port=gateway_port, run_dir=run_dir)
    stack.prometheus_config.write_text(local_config(chosen))
    names = [spec.name for spec in SERVICES]
    stack.databases = {name: f"{mysql_server}/{db_prefix}{name}" for name in names}
    create_databases(mysql_server, [f"{db_prefix}{name}" for name in names])
    envs = {
        name: service_env(
            name,
            ports=chosen,
            mysql_server=mysql_server,
            db_prefix=db_prefix,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
        )
        for name in names
    }
    try:
        # Migrations, then the servers, each group in parallel: start-up is mostly imports.
        migrations = {
            name: subprocess.Popen(service(name).migrate_command(), env=envs[name])  # noqa: S603
            for name in names
        }
        for name, proc in migrations.items():
            if proc.wait(120) != 0:
                raise RuntimeError(f"migrations of {name} failed ({proc.returncode})")
        for name in names:
            stack.processes[name] = spawn(name, chosen[name], envs[name], run_dir, log_dir)
        for name in names:
            wait_ready(f"{stack.service_url(name)}/readyz", stack.processes[name])
        conf = run_dir / "nginx.conf"
        (run_dir / "tmp").mkdir(exist_ok=True)
        conf.write_text(
            render_nginx_conf(
                upstreams={name: [f"127.0.0.1:{port}"] for name, port in chosen.items()},
                listen=gateway_port,
                static_root=str(web_dist),
                pid_path=str(run_dir / "nginx.pid"),
                temp_dir=str(run_dir / "tmp"),
                error_log=str(log_dir / "nginx-error.log"),
                # As root, nginx's workers would run as nobody, who may not read web/dist.
                user=getpass.getuser() if os.geteuid() == 0 else None,
            )
        )
        stack.processes["nginx"] = subprocess.Popen(  # noqa: S603
            [NGINX, "-c", str(conf), "-p", str(run_dir), "-g", "daemon off;"],
            stdout=(log_dir / "nginx.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_ready(f"{stack.gateway_url}/auth/.well-known/jwks.json", stack.processes["nginx"])
    except BaseException:
        stack.stop()
        raise
    return stack


@contextlib.contextmanager
def running(**kwargs: object) -> Iterator[LocalStack]:
    stack = start(**kwargs)  # type: ignore[arg-type]
    try:
        yield stack
    finally:
        stack.stop()


def describe(stack: LocalStack) -> str:
    """What ``make services`` prints: where each service, its log and its metrics are, and how
    to run Prometheus on the scrape config rendered for these ports."""
    lines = [f"duochat services: gateway {stack.gateway_url}"]
    for name in stack.ports:
        log = stack.run_dir / f"{name}.log"
        lines.append(f"  {name:7} {stack.service_url(name)}  (log: {log})")
    lines.append("metrics (Prometheus text, on each service's own port, not via the gateway):")
    lines += [f"  {name:7} {stack.metrics_url(name)}" for name in stack.ports]
    lines.append(f"scrape config: {stack.prometheus_config}")
    lines.append(
        f"  prometheus --config.file={stack.prometheus_config} "
        f"--storage.tsdb.path={stack.run_dir / 'prometheus'} "
        "--web.listen-address=127.0.0.1:9090"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="duochat local-services mode")
    parser.add_argument(
        "--mysql", default=os.environ.get("DUOCHAT_MYSQL", "mysql://root@127.0.0.1:3306")
    )
    parser.add_argument(
        "--redis", default=os.environ.get("DUOCHAT_REDIS", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--gateway-port", type=int, default=GATEWAY_PORT)
    args = parser.parse_args()
    run_dir = ROOT / ".run" / "services"
    stack = start(
        mysql_server=args.mysql,
        redis_url=args.redis,
        gateway_port=args.gateway_port,
        run_dir=run_dir,
    )
    print(describe(stack), flush=True)
    print("Ctrl-C stops everything.", flush=True)
    try:
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        dead = [n for n, p in stack.processes.items() if p.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited; see the logs in {run_dir}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
