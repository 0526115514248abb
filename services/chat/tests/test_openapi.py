"""chat's OpenAPI document declares its errors, each as the one error body, and its wire names in
camelCase (built in process, from the app's factory)."""

from __future__ import annotations

from typing import Any

from duochat_chat.config import Settings
from duochat_chat.main import create_app


def test_every_route_declares_its_errors_as_the_error_body() -> None:
    document: dict[str, Any] = create_app(Settings(environment="test")).openapi()
    assert document["paths"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
            assert "401" in errors and "503" in errors, (method, path)
            if "{room_id}" in path:
                assert {"403", "422"} <= set(errors), (method, path)
            for status, response in errors.items():
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    page = document["components"]["schemas"]["HistoryPage"]["properties"]
    assert set(page) == {"items", "hasMore", "otherLastReadId"}
    message = document["components"]["schemas"]["MessageOut"]["properties"]
    assert {"roomId", "createdAt", "userCount", "clientMessageId"} <= set(message)
