"""CloudFormation custom resource: one MySQL user per service, TLS required, with every right on
its own database and none elsewhere. Runs in the VPC with the master secret, which no service
task ever sees.

Properties: ``MasterSecretArn``, ``CaUrl`` (the RDS trust store bundle), ``Users``
(``[{"database": "auth", "secretArn": "..."}]``; each secret is JSON with username and password).
Create and Update provision every user idempotently (the password follows the secret); Delete
leaves the users, since the database they live in may be retained.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
CA_PATH = Path("/tmp/rds-ca.pem")  # noqa: S108 - Lambda's own /tmp
PHYSICAL_ID = "duochat-service-users"


class Cursor(Protocol):
    def execute(self, query: str, args: object = None) -> object: ...


def statements(*, database: str, username: str, password: str) -> list[tuple[str, tuple[str, ...]]]:
    """The statements that make ``username`` own ``database`` and nothing else."""
    if not _NAME.match(database) or not _NAME.match(username):
        raise ValueError(f"bad database or user name: {database!r}, {username!r}")
    # Identifiers cannot be parameters; both names are checked against _NAME above.
    return [
        (f"CREATE DATABASE IF NOT EXISTS `{database}`", ()),
        ("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s REQUIRE SSL", (username, password)),
        ("ALTER USER %s@'%%' IDENTIFIED BY %s REQUIRE SSL", (username, password)),
        (f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@'%%'", (username,)),
    ]


def provision(cursor: Cursor, users: Iterable[Mapping[str, str]]) -> list[str]:
    """Run the statements for each ``{database, username, password}``; the names done."""
    done = []
    for user in users:
        for query, args in statements(
            database=user["database"], username=user["username"], password=user["password"]
        ):
            cursor.execute(query, args or None)
        done.append(user["username"])
    return done


def _secret(client: Any, arn: str) -> dict[str, Any]:
    return dict(json.loads(client.get_secret_value(SecretId=arn)["SecretString"]))


def _ca_file(url: str) -> str:
    if not url.startswith("https://"):
        raise ValueError("CaUrl must be https")
    if not CA_PATH.exists():
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - https only
            CA_PATH.write_bytes(response.read())
    return str(CA_PATH)


def _apply(props: Mapping[str, Any]) -> list[str]:
    import boto3  # the Lambda runtime's
    import pymysql  # bundled with this handler

    secrets = boto3.client("secretsmanager")
    master = _secret(secrets, props["MasterSecretArn"])
    users = []
    for entry in props["Users"]:
        secret = _secret(secrets, entry["secretArn"])
        users.append(
            {
                "database": entry["database"],
                "username": secret["username"],
                "password": secret["password"],
            }
        )
    try:
        connection = pymysql.connect(
            host=master["host"],
            port=int(master["port"]),
            user=master["username"],
            password=master["password"],
            connect_timeout=15,
            ssl={"ca": _ca_file(props["CaUrl"])},
            autocommit=True,
        )
    except pymysql.err.OperationalError as exc:
        raise RuntimeError(
            f"cannot reach MySQL at {master['host']} ({exc}); if the business-hours scheduler "
            "stopped it, deploy this change in business hours or start it first"
        ) from exc
    try:
        with connection.cursor() as cursor:
            return provision(cursor, users)
    finally:
        connection.close()


def _respond(event: Mapping[str, Any], status: str, reason: str, data: dict[str, Any]) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": PHYSICAL_ID,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - CloudFormation's pre-signed https URL
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass


def handler(event: Mapping[str, Any], context: object) -> None:
    status, reason, data = "SUCCESS", "", {}
    try:
        if event["RequestType"] in ("Create", "Update"):
            data = {"Users": ",".join(_apply(event["ResourceProperties"]))}
    except Exception as exc:  # every failure must reach CloudFormation, or it waits an hour
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
        print(json.dumps({"level": "ERROR", "message": "db-users.failed", "error": reason}))
    _respond(event, status, reason, data)
