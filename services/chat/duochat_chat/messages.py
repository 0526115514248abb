"""The MESSAGE body clients read (docs/contract.md), and the texts of server-posted messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

TALK, ENTER, QUIT, SYSTEM = "TALK", "ENTER", "QUIT", "SYSTEM"
READ, TYPING, DELETED = "READ", "TYPING", "DELETED"  # transient: never stored, no id
STATUS = "STATUS"  # a draft that only moves a room's status (a silent block): no line at all
SYSTEM_SENDER = "system"
SERVER_KEY = "~"  # idempotency keys the server makes start with this; clients' never do
ENTER_KEY = "~enter"  # a member's first visit, stored once per room


def utcnow_ms() -> datetime:
    """Now, to the millisecond (what the database keeps is what clients saw live)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000, tzinfo=None)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Body:
    """A message body encoded once and shared by every subscriber it goes to."""

    text: str
    size: int  # UTF-8 bytes, for content-length

    @classmethod
    def of(cls, text: str) -> Body:
        return cls(text, len(text.encode()))

    @classmethod
    def of_json(cls, doc: object) -> Body:
        """``doc`` as compact JSON (UTF-8, not escaped to ASCII), by orjson: the body of every
        message is encoded once, on the hot path, and orjson does it several times faster than
        the standard library, with the same output. Text that is not Unicode (a lone
        surrogate) raises ``orjson.JSONEncodeError``, a ``TypeError``."""
        raw = orjson.dumps(doc)
        return cls(raw.decode(), len(raw))


def wire(
    *,
    id: int | None,
    type: str,
    room_id: str,
    sender: str,
    message: str,
    created_at: datetime | str,
    user_count: int,
    client_message_id: str | None = None,
    deleted: bool = False,
    code: str | None = None,
    params: dict[str, str] | None = None,
) -> dict[str, object]:
    """The body's fields (``created_at`` may come already formatted, as the writer does).
    ``clientMessageId`` goes back only when the client chose it (server-made keys start with
    ``~``), so the sender can settle its pending item. ``code`` and ``params`` name a SYSTEM
    line (``Notice``)."""
    out: dict[str, object] = {
        "id": id,
        "type": type,
        "roomId": room_id,
        "sender": sender,
        "message": message,
        "createdAt": created_at if isinstance(created_at, str) else iso(created_at),
        "userCount": user_count,
    }
    if client_message_id and not client_message_id.startswith(SERVER_KEY):
        out["clientMessageId"] = client_message_id
    if code is not None:
        out["code"] = code
        out["params"] = params or {}
    if deleted:
        out["message"] = ""
        out["deleted"] = True
    return out


def params_column(params: dict[str, str] | None) -> str | None:
    """A SYSTEM line's parameters as stored (JSON text)."""
    return None if params is None else json.dumps(params, ensure_ascii=False)


def encode_body(**fields: object) -> Body:
    return encode(wire(**fields))  # type: ignore[arg-type]


def encode(doc: dict[str, object]) -> Body:
    return Body.of_json(doc)


def entered_text(username: str) -> str:
    return f"{username} entered the room."


def left_text(username: str) -> str:
    return f"{username} left the room."


def transient(**fields: object) -> Body:
    """A READ, TYPING or DELETED signal: delivered on the room's subscription, never stored."""
    return Body.of_json(fields)


@dataclass(frozen=True, slots=True)
class Notice:
    """A SYSTEM line: a stable kind (its ``code`` on the wire; not named so here, where it is
    no error code) and its ``params``, which clients word in their own language, and ``text``,
    the English wording kept in ``message`` for older clients."""

    kind: str
    params: dict[str, str]
    text: str


def matched_notice(writer: str, applicant: str, title: str) -> Notice:
    text = f'{writer} and {applicant} matched on "{title}". ' + (
        "Next step: agree on a time and a place right here."
    )
    return Notice("matched", {"writer": writer, "applicant": applicant, "title": title}, text)


def rejected_notice(writer: str) -> Notice:
    text = (
        f"{writer} matched with someone else this time. Thank you for applying: "
        "this chat is now read-only, and other boards are waiting for you."
    )
    return Notice("rejected", {"writer": writer}, text)


def closed_notice(writer: str, title: str) -> Notice:
    text = f'{writer} closed the board "{title}". This chat is now read-only.'
    return Notice("closed", {"writer": writer, "title": title}, text)


def left_notice(username: str) -> Notice:
    """The line of a member who left the room for good (``room.left``)."""
    return Notice("left", {"user": username}, f"{username} left this chat. It is now read-only.")
