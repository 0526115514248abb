"""Property-based tests of auth's OpenAPI document: no 5xx, and every response matches it.

Schemathesis runs the app in-process on its own event loop thread, so this module gives it a
database and a Redis namespace of its own instead of the per-test transaction. (Its lazy pytest
loader does not work with pytest 9, so each operation's strategy is driven with ``@given``.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.python import asgi
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from duochat_auth.config import Settings
from duochat_auth.main import create_app
from duochat_auth.migrate import migrate
from duochat_common.testing import REDIS_URL, mariadb_database, unique_prefix

from .conftest import CHEAP_HASHING

OPERATIONS = [
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("GET", "/auth/me"),
    ("GET", "/auth/.well-known/jwks.json"),
]


@pytest.fixture(scope="module")
def auth_schema() -> Iterator[BaseSchema]:
    with mariadb_database("authfuzz") as url:
        config = Settings(
            environment="test",
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=unique_prefix(),
            **CHEAP_HASHING,
        )
        migrate(config)
        app = create_app(config)
        try:
            yield schemathesis.openapi.from_asgi("/openapi.json", app)
        finally:
            asgi.shutdown_lifespans()  # closes the app's pools before its database is dropped


def test_the_schema_lists_every_operation(auth_schema: BaseSchema) -> None:
    operations = [result.ok() for result in auth_schema.get_all_operations()]  # type: ignore[union-attr]
    found = {(op.method.upper(), op.path) for op in operations}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_operation_conforms_to_its_schema(
    auth_schema: BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    if mode is GenerationMode.NEGATIVE and path.endswith("jwks.json"):
        pytest.skip("the JWKS takes no input to get wrong")
    operation = auth_schema[path][method]
    # A password can match the schema and still be too easy to guess: that 422 is by design.
    excluded: list[CheckFunction] = [positive_data_acceptance] if path == "/auth/register" else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(excluded_checks=excluded)

    check()
