"""Property-based tests from boards' own OpenAPI: whatever the input, no 5xx, and every reply
(errors included) has a declared status and matches its declared schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from duochat_boards.config import Settings
from duochat_boards.main import create_app
from duochat_common.services import service
from duochat_common.testing import REDIS_URL, TestSigner, mariadb_database, unique_prefix

MAX_EXAMPLES = 20
# Not negative_data_rejection: every case here carries a valid token, which turns schemathesis'
# "missing Authorization" negative cases into valid ones, and unknown query parameters are
# ignored on purpose.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_database_url() -> Iterator[str]:
    # The app runs in schemathesis' own event loop, so it gets a plain database of its own
    # rather than the suite's per-test transaction.
    with mariadb_database("boardsfuzz") as url:
        service("boards").migrate(Settings(database_url=url))
        yield url


@pytest.fixture(scope="module")
def fuzz_prefix() -> Iterator[str]:
    namespace = unique_prefix()
    yield namespace
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def boards_schema(fuzz_database_url: str, fuzz_prefix: str, signer: TestSigner):
    app = create_app(
        Settings(
            environment="test",
            database_url=fuzz_database_url,
            redis_url=REDIS_URL,
            redis_prefix=fuzz_prefix,
            outbox_relay_seconds=0,
        ),
        verifier=signer.verifier(),
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# The operations, read from a (never started) app: one test per operation and generation mode.
OPERATIONS = [
    (method.upper(), path)
    for path, operations in create_app(Settings(environment="test")).openapi()["paths"].items()
    for method in operations
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_operation(boards_schema, signer, method, path, mode):
    operation = boards_schema[path][method]
    headers = {"Authorization": f"Bearer {signer.token(1, 'fuzzer')}"}

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()
