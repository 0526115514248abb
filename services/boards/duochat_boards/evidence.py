"""The reported messages as chat stored them, copied into the report when it is filed.

chat owns the messages, and boards reads none of its tables. So the report asks chat's own
history API, with the reporter's token (chat answers members only), for the ids the reporter
named, and keeps what chat answered. The reporter names ids, never text, so they cannot put
words in someone's mouth; and the copy outlives an unsend, so evidence cannot be withdrawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from duochat_common.errors import Forbidden, Unavailable

PAGE = 200  # chat's largest history page


class MessageSource(Protocol):
    async def messages(
        self, *, room_id: str, ids: Sequence[int], token: str
    ) -> list[dict[str, Any]]:
        """The messages ``ids`` of ``room_id`` that exist, as ``evidence`` shapes them."""
        ...


def evidence(message: dict[str, Any]) -> dict[str, Any]:
    """What a report keeps of one message (chat's history item)."""
    return {
        "id": message["id"],
        "type": message["type"],
        "sender": message["sender"],
        "message": message["message"],
        "createdAt": message["createdAt"],
        "deleted": bool(message.get("deleted")),
    }


class ChatHistory:
    """chat's ``GET /chat/rooms/{room_id}/messages``, paged from just before each id still
    missing (so ids far apart cost a request each, never a walk through the whole room)."""

    def __init__(self, http: httpx.AsyncClient, chat_url: str) -> None:
        self.http = http
        self.chat_url = chat_url.rstrip("/")

    async def messages(
        self, *, room_id: str, ids: Sequence[int], token: str
    ) -> list[dict[str, Any]]:
        wanted = sorted(set(ids))
        found: list[dict[str, Any]] = []
        while wanted:
            page = await self._page(room_id, after=wanted[0] - 1, token=token)
            items = [m for m in page["items"] if m["id"] in wanted]
            found += [evidence(m) for m in items]
            last = page["items"][-1]["id"] if page["items"] else wanted[-1]
            wanted = [i for i in wanted if i > last] if page["hasMore"] else []
        return found

    async def _page(self, room_id: str, *, after: int, token: str) -> dict[str, Any]:
        url = f"{self.chat_url}/chat/rooms/{quote(room_id, safe='')}/messages"
        try:
            res = await self.http.get(
                url,
                params={"after": after, "limit": PAGE},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise Unavailable("chat does not answer; try again", retry_after=5) from exc
        if res.status_code == 403:
            raise Forbidden("you are not a member of this room", code="not_member")
        if res.status_code != 200:
            raise Unavailable("chat does not answer; try again", retry_after=5)
        page: dict[str, Any] = res.json()
        return page
