"""Password hashing is bounded (issue 12, finding 3): a few hashes at once, sized to the CPUs and
a memory budget; the excess waits briefly and then gets 503 with Retry-After."""

from __future__ import annotations

import asyncio

from duochat_auth.passwords import hash_slots, usable_cpus

from .conftest import Api, Serve, SettingsFactory, new_name


def test_slots_follow_the_cpus_and_the_memory_budget() -> None:
    cpus = usable_cpus()
    assert hash_slots(memory_kib=64 * 1024, budget_mib=256) == min(cpus, 4)
    assert hash_slots(memory_kib=64 * 1024, budget_mib=64) == 1
    assert hash_slots(memory_kib=64 * 1024, budget_mib=10) == 1  # never none
    assert hash_slots(memory_kib=64 * 1024, budget_mib=256, configured=7) == 7


async def test_logins_beyond_the_hash_slots_get_503_at_once(
    make_settings: SettingsFactory, serve: Serve, fresh_database_url: str
) -> None:
    settings = make_settings(
        database_url=fresh_database_url,  # concurrent requests: a connection each
        # about a tenth of a second per hash, so that the logins overlap
        password_time_cost=2,
        password_memory_kib=32 * 1024,
        password_max_concurrent=1,
        password_queue_seconds=0,
    )
    async with serve(settings, isolated=False) as api:
        account = await api.register()

        async def attempt() -> tuple[int, str | None]:
            response = await api.client.post(
                "/auth/login", json={"username": new_name(), "password": "not it at all"}
            )
            return response.status_code, response.headers.get("Retry-After")

        results = await asyncio.gather(*(attempt() for _ in range(6)))
        statuses = sorted(status for status, _ in results)
        assert statuses.count(401) >= 1
        assert statuses.count(503) >= 1, statuses
        assert all(retry == "1" for status, retry in results if status == 503)
        assert set(statuses) <= {401, 503}
        # once the burst is over, the owner signs in as usual
        assert (await api.login(account)).status_code == 200


async def test_the_busy_reply_is_documented(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    for path in ("/auth/login", "/auth/register"):
        reply = spec["paths"][path]["post"]["responses"]["503"]
        assert "Retry-After" in reply["headers"]
