"""The entrypoint of every service image: prepare the database, migrate, then run uvicorn.

``python serve.py`` runs the service named by ``DUOCHAT_SERVICE`` on ``PORT``;
``python serve.py healthcheck`` is the image's HEALTHCHECK (``/healthz``, no curl needed).

On ECS, credentials arrive from Secrets Manager: ``DB_SECRET`` (this service's own MySQL user,
JSON with username, password, host, port; it has rights on its own database only) and
``REDIS_AUTH_TOKEN``. ECS injects a secret only whole, never into the middle of a URL, so this
script assembles ``DUOCHAT_DATABASE_URL`` (database ``DB_NAME``) and ``DUOCHAT_REDIS_URL``
(``rediss://`` to ``REDIS_HOST``:``REDIS_PORT``) from them. Where the URLs are set directly
(docker compose), they are used as they are.

RDS requires TLS. The CA comes from ``DB_TLS_CA_FILE`` when the image carries it, else it is
fetched once at start from ``DB_TLS_CA_URL`` (AWS's trust store, over verified HTTPS) into
/tmp, the only writable folder. ``DB_POOL_SIZE`` and ``DB_MAX_OVERFLOW`` cap the service's
pools (the CDK stack derives them from the task counts and the instance's max_connections).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from urllib.parse import quote, urlencode

GRACEFUL_SHUTDOWN_S = 20  # below ECS's stopTimeout and compose's stop_grace_period (30 s)
_DB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
CA_DOWNLOAD_PATH = "/tmp/rds-ca.pem"  # noqa: S108 - the task's own /tmp volume


def database_url(
    *,
    secret_json: str,
    db_name: str,
    ca_file: str | None = None,
    pool_size: str | None = None,
    max_overflow: str | None = None,
) -> str:
    """A SQLAlchemy async MySQL URL from an RDS secret and a database name, with the TLS CA
    and the pool ceilings in its query (``duochat_common.db`` reads them)."""
    if not _DB_NAME.match(db_name):
        raise ValueError(f"bad database name {db_name!r}")
    secret = json.loads(secret_json)
    user = quote(secret["username"], safe="")
    password = quote(secret["password"], safe="")
    url = f"mysql+aiomysql://{user}:{password}@{secret['host']}:{secret['port']}/{db_name}"
    query = {
        key: value
        for key, value in (
            ("ssl_ca", ca_file),
            ("pool_size", pool_size),
            ("max_overflow", max_overflow),
        )
        if value
    }
    return f"{url}?{urlencode(query)}" if query else url


def tls_ca_file(env: Mapping[str, str]) -> str | None:
    """The CA bundle to verify the database with: the image's file, else a one-time download."""
    if env.get("DB_TLS_CA_FILE"):
        return env["DB_TLS_CA_FILE"]
    url = env.get("DB_TLS_CA_URL")
    if not url:
        return None
    if not url.startswith("https://"):
        raise ValueError("DB_TLS_CA_URL must be https")
    target = Path(env.get("DB_TLS_CA_DOWNLOAD_PATH", CA_DOWNLOAD_PATH))
    if not target.exists():
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - https only
            body = response.read()
        if b"-----BEGIN CERTIFICATE-----" not in body:
            raise ValueError(f"{url} returned no PEM certificate")
        target.write_bytes(body)
    return str(target)


def redis_url(*, host: str, port: str, auth_token: str | None) -> str:
    """A TLS Redis URL (ElastiCache with encryption in transit)."""
    auth = f":{quote(auth_token, safe='')}@" if auth_token else ""
    return f"rediss://{auth}{host}:{port}/0"


def assemble_env(env: Mapping[str, str], *, ca_file: str | None = None) -> dict[str, str]:
    """The ``DUOCHAT_*`` URLs that ``env`` lacks but whose parts it carries."""
    extra: dict[str, str] = {}
    if not env.get("DUOCHAT_DATABASE_URL") and env.get("DB_SECRET"):
        extra["DUOCHAT_DATABASE_URL"] = database_url(
            secret_json=env["DB_SECRET"],
            db_name=env["DB_NAME"],
            ca_file=ca_file,
            pool_size=env.get("DB_POOL_SIZE"),
            max_overflow=env.get("DB_MAX_OVERFLOW"),
        )
    if not env.get("DUOCHAT_REDIS_URL") and env.get("REDIS_HOST"):
        extra["DUOCHAT_REDIS_URL"] = redis_url(
            host=env["REDIS_HOST"],
            port=env.get("REDIS_PORT", "6379"),
            auth_token=env.get("REDIS_AUTH_TOKEN"),
        )
    return extra


def create_database(*, secret_json: str, db_name: str, ca_file: str | None = None) -> None:
    """Create ``db_name`` on the RDS instance when it is missing (the stack's user
    provisioning creates it first; this keeps a hand-made user working too)."""
    import pymysql  # in the image through duochat-common

    if not _DB_NAME.match(db_name):
        raise ValueError(f"bad database name {db_name!r}")
    secret = json.loads(secret_json)
    connection = pymysql.connect(
        host=secret["host"],
        port=int(secret["port"]),
        user=secret["username"],
        password=secret["password"],
        connect_timeout=10,
        ssl={"ca": ca_file} if ca_file else None,
    )
    try:
        with connection.cursor() as cursor:
            # The name is checked against _DB_NAME above; identifiers cannot be parameters.
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{db_name}`")
    finally:
        connection.close()


def healthcheck(port: str) -> int:
    """0 when ``/healthz`` answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


def serve(env: MutableMapping[str, str]) -> None:
    """Migrate, then replace this process with uvicorn so that it gets SIGTERM directly."""
    service = env["DUOCHAT_SERVICE"]
    if env.get("DB_SECRET") and not env.get("DUOCHAT_DATABASE_URL"):
        ca_file = tls_ca_file(env)
        create_database(secret_json=env["DB_SECRET"], db_name=env["DB_NAME"], ca_file=ca_file)
        env.update(assemble_env(env, ca_file=ca_file))
    env.update(assemble_env(env))
    # The image's packages, not imported at healthcheck.
    from duochat_common.logs import uvicorn_log_config
    from duochat_common.services import service as service_spec
    from duochat_common.serving import uvicorn_cli

    spec = service_spec(service)
    subprocess.run(spec.migrate_command(), check=True, env=env)  # noqa: S603

    log_config = Path(tempfile.mkdtemp(prefix="duochat-")) / "logging.json"
    level = env.get("DUOCHAT_LOG_LEVEL", "INFO")
    log_config.write_text(json.dumps(uvicorn_log_config(service, level=level)))
    os.execve(  # noqa: S606 - fixed program and arguments
        sys.executable,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            spec.app_ref,
            "--host",
            "0.0.0.0",  # noqa: S104 - a container listens on its own interface
            "--port",
            env["PORT"],
            "--timeout-graceful-shutdown",
            str(GRACEFUL_SHUTDOWN_S),
            "--proxy-headers",
            "--forwarded-allow-ips",
            "*",
            "--no-server-header",
            "--log-config",
            str(log_config),
            *uvicorn_cli(service),
        ],
        env,
    )


def main(argv: list[str]) -> int:
    if argv[1:] == ["healthcheck"]:
        return healthcheck(os.environ["PORT"])
    if argv[1:]:
        print(f"usage: {argv[0]} [healthcheck]", file=sys.stderr)
        return 2
    serve(dict(os.environ))
    return 0  # not reached: execve replaced the process


if __name__ == "__main__":
    sys.exit(main(sys.argv))
