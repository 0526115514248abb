"""The settings base and the Redis-by-URL factory."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from duochat_common.redis_store import create_redis, is_memory
from duochat_common.settings import ServiceSettings


def test_defaults_suit_the_embedded_mode() -> None:
    settings = ServiceSettings()
    assert settings.environment == "development"
    assert settings.database_url.startswith("sqlite")
    assert is_memory(settings.redis_url)
    assert not settings.demo_accounts


def test_keys_carry_the_prefix() -> None:
    assert ServiceSettings(redis_prefix="t1:").key("events.boards") == "t1:events.boards"
    assert ServiceSettings().key("events.boards") == "events.boards"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUOCHAT_REDIS_PREFIX", "env:")
    monkeypatch.setenv("DUOCHAT_DEMO_ACCOUNTS", "true")
    settings = ServiceSettings()
    assert settings.redis_prefix == "env:"
    assert settings.demo_accounts


def test_production_refuses_every_unsafe_default_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        ServiceSettings(environment="production", demo_accounts=True)
    message = str(caught.value)
    for problem in ("DEMO_ACCOUNTS", "SQLite", "real Redis"):
        assert problem in message


def test_production_with_real_servers_starts() -> None:
    settings = ServiceSettings(
        environment="production",
        database_url="mysql://app:secret@db/app",
        redis_url="redis://cache:6379/0",
    )
    assert settings.production_problems() == []


async def test_memory_stores_are_shared_by_name_only() -> None:
    name = uuid.uuid4().hex
    first, second = create_redis(f"memory://{name}"), create_redis(f"memory://{name}")
    other = create_redis(f"memory://{name}-other")
    try:
        await first.set("k", "v")
        assert await second.get("k") == "v"  # decoded to str, like the real client
        assert await other.get("k") is None
    finally:
        for client in (first, second, other):
            await client.aclose()
