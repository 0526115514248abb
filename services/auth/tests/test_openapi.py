"""The OpenAPI document declares every error as ``ErrorBody`` and the wire names in camelCase."""

from __future__ import annotations

from typing import Any

from .conftest import Api


async def test_every_error_response_is_an_error_body(api: Api) -> None:
    document: dict[str, Any] = (await api.client.get("/openapi.json")).json()
    error_body = document["components"]["schemas"]["ErrorBody"]
    assert set(error_body["required"]) == {"code", "message"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    login = document["paths"]["/auth/login"]["post"]["responses"]
    assert "Retry-After" in login["429"]["headers"]
    pair = document["components"]["schemas"]["TokenPair"]["properties"]
    assert set(pair) == {"accessToken", "refreshToken", "tokenType", "expiresIn"}
