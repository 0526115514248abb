"""Property-based tests of auth's OpenAPI document: no 5xx, and every response matches it.

Schemathesis runs the app in-process on its own event loop thread, so this module gives it a
database and a Redis namespace of its own instead of the per-test transaction. (Its lazy pytest
loader does not work with pytest 9, so each operation's strategy is driven with ``@given``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
from duochat_common.services import service
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


@dataclass
class Target:
    schema: BaseSchema
    access_token: str


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with mariadb_database("authfuzz") as url:
        config = Settings(
            environment="test",
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=unique_prefix(),
            **CHEAP_HASHING,
        )
        service("auth").migrate(config)
        app = create_app(config)
        try:
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
            # a real user, so that /auth/me also answers 200
            with asgi.get_client(app) as client:  # type: ignore[arg-type]
                user = {"username": "fuzzer", "password": "fuzzing is fun 1"}
                assert client.post("/auth/register", json=user).status_code == 201
                token = client.post("/auth/login", json=user).json()["accessToken"]
            yield Target(schema=schema, access_token=token)
        finally:
            asgi.shutdown_lifespans()  # closes the app's pools before its database is dropped


def test_the_schema_lists_every_operation(target: Target) -> None:
    operations = [result.ok() for result in target.schema.get_all_operations()]  # type: ignore[union-attr]
    found = {(op.method.upper(), op.path) for op in operations}
    assert found == set(OPERATIONS)


# Every operation in both modes, except negative JWKS cases: the JWKS takes no input to get wrong.
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (mode is GenerationMode.NEGATIVE and path.endswith("jwks.json"))
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_operation_conforms_to_its_schema(
    target: Target, method: str, path: str, mode: GenerationMode
) -> None:
    operation = target.schema[path][method]
    bearer = {"Authorization": f"Bearer {target.access_token}"}
    # A password can match the schema and still be too easy to guess: that 422 is by design.
    excluded: list[CheckFunction] = [positive_data_acceptance] if path == "/auth/register" else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        # generated bearer tokens are always rejected; positive cases of /auth/me get a real one
        real_token = path == "/auth/me" and mode is GenerationMode.POSITIVE
        case.call_and_validate(headers=bearer if real_token else None, excluded_checks=excluded)

    check()
