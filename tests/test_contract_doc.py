"""docs/contract.md names everything the code offers a client, and nothing it does not.

Read from the code: every HTTP route of each service's app (as its factory builds it), with the
query, header and body fields and the error statuses of its OpenAPI document; every STOMP
destination chat accepts, the frame commands and the MESSAGE body fields and types; every SSE
event notify sends and its fields; every event type of the shared schemas and its fields; every
error code the services raise. A route or event added without its section here fails, naming
it. The document's conventions: an endpoint is a heading `` `METHOD /path` `` (path parameters
in braces, any name), a STOMP destination `` `SEND /pub/...` `` or `` `SUBSCRIBE /sub/...{id}` ``,
an SSE event `` `event: name` ``, an event type `` `type.name` `` under "Events"; a field counts
where it stands in inline code in its section or in its chapter's text before the first
subsection.
"""

from __future__ import annotations

import ast
import functools
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel

import duochat_auth.config
import duochat_auth.main
import duochat_boards.config
import duochat_boards.main
import duochat_chat.config
import duochat_chat.main
import duochat_chat.messages
import duochat_chat.session
import duochat_notify.config
import duochat_notify.main
from duochat_chat.stomp.frames import CLIENT_COMMANDS, SERVER_COMMANDS
from duochat_common.events import schemas
from duochat_common.events.envelope import Envelope
from duochat_common.routing import ROUTES
from duochat_notify.schemas import AlarmKind, AlarmOut, ReadNotice

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "contract.md"
# How each service of the route table builds its app.
FACTORIES: dict[str, tuple[Callable[..., FastAPI], Callable[..., Any]]] = {
    "auth": (duochat_auth.main.create_app, duochat_auth.config.Settings),
    "boards": (duochat_boards.main.create_app, duochat_boards.config.Settings),
    "chat": (duochat_chat.main.create_app, duochat_chat.config.Settings),
    "notify": (duochat_notify.main.create_app, duochat_notify.config.Settings),
}
# Where the error codes are raised.
PACKAGES = [
    ROOT / "libs/common/duochat_common",
    *sorted((ROOT / "services").glob("*/duochat_*")),
]
# notify's SSE event names: the alarm kinds, and the read notice (``Delivery.push_read``).
SSE_EVENTS = (*typing.get_args(AlarmKind), "read")
HTTP = re.compile(r"`(GET|POST|PUT|PATCH|DELETE|WEBSOCKET) (/[^`\s]*)`")
STOMP = re.compile(r"`(SEND|SUBSCRIBE) (/[^`\s]*)`")
SSE = re.compile(r"`event: ([a-z_]+)`")
EVENT = re.compile(r"`([a-z_]+(?:\.[a-z_]+)+)`")
CODE_SPAN = re.compile(r"`([^`]+)`")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


# -- the document ------------------------------------------------------------------------------


@dataclass
class Section:
    level: int
    title: str
    text: str  # the whole section, subsections included
    intro: str  # the text before its first subsection
    parent: Section | None


def _sections(markdown: str) -> list[Section]:
    lines = markdown.splitlines()
    heads: list[tuple[int, int, str]] = []
    fenced = False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (found := re.match(r"(#{1,6}) (.+)", line)):
            heads.append((number, len(found.group(1)), found.group(2).strip()))
    out: list[Section] = []
    stack: list[Section] = []
    for i, (start, level, title) in enumerate(heads):
        end = next((n for n, lvl, _ in heads[i + 1 :] if lvl <= level), len(lines))
        first_sub = heads[i + 1][0] if i + 1 < len(heads) else len(lines)
        while stack and stack[-1].level >= level:
            stack.pop()
        section = Section(
            level=level,
            title=title,
            text="\n".join(lines[start + 1 : end]),
            intro="\n".join(lines[start + 1 : min(first_sub, end)]),
            parent=stack[-1] if stack else None,
        )
        stack.append(section)
        out.append(section)
    return out


@functools.cache
def document() -> list[Section]:
    return _sections(CONTRACT.read_text(encoding="utf-8"))


def code_words(text: str) -> set[str]:
    """The names that stand in inline code (or a code block) in ``text``."""
    words: set[str] = set()
    blocks = re.split(r"^```.*$", text, flags=re.MULTILINE)
    for i, block in enumerate(blocks):
        spans = [block] if i % 2 else CODE_SPAN.findall(block)
        for span in spans:
            words.update(WORD.findall(span))
    return words


def headed(pattern: re.Pattern[str]) -> dict[tuple[str, ...], Section]:
    """The sections whose whole heading matches ``pattern``, by its groups."""
    return {
        found.groups(): section
        for section in document()
        if (found := pattern.fullmatch(section.title)) is not None
    }


def chapter(title: str) -> Section:
    matches = [s for s in document() if s.level == 2 and s.title.startswith(title)]
    assert len(matches) == 1, f"docs/contract.md needs one chapter '## {title}...'"
    return matches[0]


def scope(section: Section) -> set[str]:
    """What a section documents: its own code, and its chapter's introduction."""
    words = code_words(section.text)
    parent = section.parent
    while parent is not None and parent.level >= 2:
        words |= code_words(parent.intro)
        parent = parent.parent
    return words


def template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


# -- the code ----------------------------------------------------------------------------------


@functools.cache
def apps() -> dict[str, FastAPI]:
    assert set(FACTORIES) == {route.service for route in ROUTES}, "a service has no factory here"
    return {
        name: make(settings(environment="test")) for name, (make, settings) in FACTORIES.items()
    }


def http_routes() -> dict[tuple[str, str], set[str]]:
    """(METHOD, path template) -> the services that serve it, for every route of each app."""
    routes: dict[tuple[str, str], set[str]] = {}
    for name, app in apps().items():
        ui = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
        for route in iter_route_contexts(app.routes):
            path = route.path
            if path is None or path in ui:
                continue
            for method in route.methods or {"WEBSOCKET"}:
                if method != "HEAD":
                    routes.setdefault((method, template(path)), set()).add(name)
    # ChatApp hands its STOMP socket over before routing.
    routes[("WEBSOCKET", duochat_chat.main.STOMP_PATH)] = {"chat"}
    return routes


def model_names(model: type[BaseModel]) -> set[str]:
    """The wire names of a model's fields, and of the models inside it."""
    names: set[str] = set()
    for field_name, info in model.model_fields.items():
        names.add(info.alias or field_name)
        for inner in nested_models(info.annotation):
            names |= model_names(inner)
    return names


def nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from nested_models(arg)


def schema_names(schema: dict[str, Any], components: dict[str, Any], seen: set[str]) -> set[str]:
    """The property names of an OpenAPI schema, followed through refs, arrays and unions."""
    ref = schema.get("$ref")
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return set()
        return schema_names(components[name], components, seen | {name})
    names = set(schema.get("properties", {}))
    inner = [*schema.get("properties", {}).values(), *schema.get("anyOf", [])]
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            inner.append(schema[key])
    for sub in inner:
        names |= schema_names(sub, components, seen)
    return names


def event_types() -> dict[str, type[schemas.EventData]]:
    out = {}
    todo = list(schemas.EventData.__subclasses__())
    while todo:
        cls = todo.pop()
        out[cls.TYPE] = cls
        todo += cls.__subclasses__()
    return out


def python_files() -> Iterator[tuple[Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(encoding="utf-8"))


def code_positions(tree: ast.Module) -> dict[str, int]:
    """Classes of a module that have a ``code`` field (a dataclass of problems): class name ->
    the field's position, for codes given positionally."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            fields = [
                item.target.id
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            ]
            if "code" in fields:
                out[node.name] = fields.index("code")
    return out


def error_codes() -> dict[str, Path]:
    """Every error code the services raise: ``code="..."`` arguments (or the positional ``code``
    of a class that has that field), ``default_code`` attributes, ``error_body("...")`` calls
    and the framework errors' table."""
    codes: dict[str, Path] = {}
    for path, tree in python_files():
        positions = code_positions(tree)
        for node in ast.walk(tree):
            found: list[ast.expr] = []
            if isinstance(node, ast.Call):
                found += [k.value for k in node.keywords if k.arg == "code"]
                if isinstance(node.func, ast.Name) and node.func.id in positions:
                    found += node.args[positions[node.func.id] : positions[node.func.id] + 1]
                if isinstance(node.func, ast.Name) and node.func.id == "error_body":
                    found += node.args[:1]
                if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Dict):
                    found += [*node.func.value.values, *node.args[1:]]
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "default_code" for t in targets):
                    found += [node.value] if node.value is not None else []
            for value in found:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    codes.setdefault(value.value, path)
    return codes


def signals() -> dict[str, set[str]]:
    """The signals chat sends on a room (``transient(type=..., ...)`` calls): type -> fields."""
    out: dict[str, set[str]] = {}
    package = Path(duochat_chat.messages.__file__).parent
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "transient"
            ):
                continue
            fields = {k.arg: k.value for k in node.keywords if k.arg is not None}
            kind = fields.get("type")
            assert isinstance(kind, ast.Name), f"{path.name}: a signal's type is a constant"
            out[getattr(duochat_chat.messages, kind.id)] = set(fields)
    return out


# -- the checks --------------------------------------------------------------------------------


def test_every_http_route_of_every_service_has_its_section() -> None:
    routes = http_routes()
    assert len(routes) > 20
    documented = {(method, template(path)) for method, path in headed(HTTP)}
    missing = sorted(
        f"{r[0]} {r[1]} ({', '.join(sorted(routes[r]))})" for r in routes if r not in documented
    )
    assert not missing, f"routes missing from docs/contract.md: {missing}"


def test_every_endpoint_the_document_names_is_served() -> None:
    routes = http_routes()
    stale = sorted(f"{m} {p}" for m, p in headed(HTTP) if (m, template(p)) not in routes)
    assert not stale, f"docs/contract.md names endpoints no service serves: {stale}"


def test_every_endpoint_section_names_its_fields_and_error_statuses() -> None:
    sections = {(m, template(p)): s for (m, p), s in headed(HTTP).items()}
    problems = []
    for name, app in apps().items():
        spec = app.openapi()
        components = spec.get("components", {}).get("schemas", {})
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                section = sections.get((method.upper(), template(path)))
                if section is None:
                    continue  # reported by the route test
                names = {p["name"] for p in operation.get("parameters", []) if p["in"] != "path"}
                body = operation.get("requestBody", {}).get("content", {})
                for media in body.values():
                    names |= schema_names(media.get("schema", {}), components, set())
                statuses = set()
                for status, response in operation["responses"].items():
                    if int(status) >= 400:
                        statuses.add(status)
                    elif int(status) < 300:
                        for media in response.get("content", {}).values():
                            names |= schema_names(media.get("schema", {}), components, set())
                words = scope(section)
                text = section.text + (section.parent.intro if section.parent else "")
                problems += [f"{name}: {method.upper()} {path}: `{n}`" for n in names - words]
                problems += [
                    f"{name}: {method.upper()} {path}: status {s}"
                    for s in statuses
                    if not re.search(rf"\b{s}\b", text)
                ]
    assert not problems, f"not in their sections of docs/contract.md: {sorted(problems)}"


def test_every_stomp_destination_frame_and_body_is_documented() -> None:
    code = set()
    for value in vars(duochat_chat.session).values():
        if isinstance(value, str) and value.startswith("/pub/"):
            code.add(("SEND", value))
        elif isinstance(value, str) and value.startswith("/sub/"):
            code.add(("SUBSCRIBE", value))
    assert {kind for kind, _ in code} == {"SEND", "SUBSCRIBE"}
    documented = {
        (kind, re.sub(r"\{[^}]*\}$", "", path) if kind == "SUBSCRIBE" else path)
        for kind, path in headed(STOMP)
    }
    assert not code - documented, f"STOMP destinations missing: {sorted(code - documented)}"
    assert not documented - code, f"documented destinations chat refuses: {documented - code}"

    stomp = chapter("chat: STOMP")
    words = code_words(stomp.text)
    frames = CLIENT_COMMANDS | SERVER_COMMANDS
    assert not frames - words, f"STOMP frames missing: {sorted(frames - words)}"
    bodies = next(s for s in document() if s.title == "MESSAGE bodies")
    body_words = code_words(bodies.text)
    sample = duochat_chat.messages.wire(
        id=1,
        type="TALK",
        room_id="r",
        sender="s",
        message="m",
        created_at="t",
        user_count=1,
        client_message_id="k",
        deleted=True,
    )
    m = duochat_chat.messages
    kinds = {m.TALK, m.ENTER, m.QUIT, m.SYSTEM}
    found = signals()
    assert found, "no signals found: the scan no longer sees transient() calls"
    needed = set(sample) | kinds | set(found) | {f for fields in found.values() for f in fields}
    assert not needed - body_words, f"MESSAGE body names missing: {sorted(needed - body_words)}"


def test_every_sse_event_and_its_fields_are_documented() -> None:
    documented = headed(SSE)
    names = {name for (name,) in documented}
    assert not set(SSE_EVENTS) - names, f"SSE events missing: {set(SSE_EVENTS) - names}"
    assert not names - set(SSE_EVENTS), f"documented SSE events notify never sends: {names}"
    alarm = model_names(AlarmOut)
    problems = []
    for (name,), section in documented.items():
        fields = model_names(ReadNotice) if name == "read" else alarm
        words = scope(section)
        problems += [f"{name}: `{f}`" for f in fields - words]
    assert not problems, f"SSE fields missing: {sorted(problems)}"


def test_every_event_type_and_its_fields_are_documented() -> None:
    events = chapter("Events")
    documented = {
        name: section for (name,), section in headed(EVENT).items() if section.parent is events
    }
    types = event_types()
    assert len(types) >= 6
    assert not set(types) - set(documented), f"events missing: {set(types) - set(documented)}"
    assert not set(documented) - set(types), f"unknown events: {set(documented) - set(types)}"
    intro = code_words(events.intro)
    problems = [f"envelope: `{n}`" for n in model_names(Envelope) - intro]
    streams = {v for k, v in vars(schemas).items() if k.endswith("_STREAM")}
    problems += [f"stream `{s}`" for s in streams if f"`{s}`" not in events.intro]
    for name, cls in types.items():
        words = code_words(documented[name].text) | intro
        problems += [f"{name}: `{f}`" for f in model_names(cls) - words]
    assert not problems, f"not in docs/contract.md's Events: {sorted(problems)}"


def test_every_error_code_is_documented() -> None:
    codes = error_codes()
    assert {"validation_error", "already_applied", "not_a_member"} <= set(codes)
    words = code_words(chapter("Errors").text)
    missing = sorted(f"{c} ({p.relative_to(ROOT)})" for c, p in codes.items() if c not in words)
    assert not missing, f"error codes missing from docs/contract.md's Errors: {missing}"


def test_every_error_code_the_table_names_is_raised_somewhere() -> None:
    table = next(s for s in document() if s.title == "Error codes")
    named = re.findall(r"^\| `([a-z_]+)` \|", table.text, flags=re.MULTILINE)
    assert len(named) > 20
    stale = sorted(set(named) - set(error_codes()))
    assert not stale, f"docs/contract.md lists error codes nothing raises: {stale}"


def test_the_document_parser_sees_sections_and_code() -> None:
    sections = _sections(
        "# A\n`a`\n## B\n`x`\n### C\n```\n# not a heading\n```\ntext `y, z`\n## D\n"
    )
    assert [s.title for s in sections] == ["A", "B", "C", "D"]
    assert sections[2].parent is sections[1] and sections[3].parent is sections[0]
    assert code_words(sections[1].intro) == {"x"}
    assert code_words(sections[2].text) == {"not", "a", "heading", "y", "z"}
    assert scope(sections[2]) == {"not", "a", "heading", "y", "z", "x"}
