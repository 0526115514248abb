"""Property-based tests of notify's OpenAPI document: no 5xx, and every response matches it
(issue 12, finding 9: a cursor, an alarm id or a Last-Event-ID of the wrong shape answered 500).

Schemathesis runs the app in-process on its own event loop thread, so this module gives it a
database and a Redis namespace of its own. (Its lazy pytest loader does not work with pytest 9,
so each operation's strategy is driven with ``@given``.) A generated ticket is never valid, so
``/notify/stream`` answers 401 or 422 and never opens a stream that would not end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.python import asgi
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from duochat_common.services import service
from duochat_common.testing import REDIS_URL, TestSigner, mariadb_database, unique_prefix
from duochat_notify.config import Settings
from duochat_notify.main import create_app

OPERATIONS = [
    ("POST", "/notify/ticket"),
    ("GET", "/notify/stream"),
    ("GET", "/notify/alarms"),
    ("POST", "/notify/alarms/read"),
]


@dataclass
class Target:
    schema: BaseSchema
    token: str


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    signer = TestSigner()
    with mariadb_database("notifyfuzz") as url:
        config = Settings(
            environment="test",
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=unique_prefix(),
            auth_jwks_json=json.dumps(signer.jwks()),
            consume_events=False,
            tickets_per_minute=10_000,
        )
        service("notify").migrate(config)
        app = create_app(config)
        try:
            yield Target(
                schema=schemathesis.openapi.from_asgi("/openapi.json", app),
                token=signer.token(4242, "fuzzer"),
            )
        finally:
            asgi.shutdown_lifespans()  # closes the app's pools before its database is dropped


def test_the_schema_lists_every_operation(target: Target) -> None:
    operations = [result.ok() for result in target.schema.get_all_operations()]  # type: ignore[union-attr]
    found = {(op.method.upper(), op.path) for op in operations}
    assert set(OPERATIONS) <= found


CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_operation_conforms_to_its_schema(
    target: Target, method: str, path: str, mode: GenerationMode
) -> None:
    operation = target.schema[path][method]
    bearer = {"Authorization": f"Bearer {target.token}"}
    # Shapes the schema cannot say: a ticket is only valid once issued, a cursor only when this
    # service gave it out, and a header FastAPI reads leniently. What must hold is "never a 5xx".
    excluded: list[CheckFunction] = [
        positive_data_acceptance,
        negative_data_rejection,
    ]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=bearer, excluded_checks=excluded)

    check()
