"""The settings base every service extends.

Values come from ``DUOCHAT_*`` environment variables. Every default suits the embedded mode;
``environment=production`` refuses the defaults that are only safe on a laptop.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import uuid
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from duochat_common.clientaddr import Network, parse_networks

DEV_DEFAULT_MARK = "dev-only"


class ServiceSettings(BaseSettings):
    """Settings shared by every service; build one with ``Settings(**overrides)``."""

    model_config = SettingsConfigDict(env_prefix="DUOCHAT_", extra="ignore", populate_by_name=True)

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./data/duochat.db"
    redis_url: str = "memory://embedded"
    redis_max_connections: int = 256
    # ``redis_url`` names any node of a Redis Cluster (redis-py's cluster client).
    redis_cluster: bool = False
    # CloudWatch metrics as log lines (duochat_common.emf); off unless a namespace is set.
    metrics_namespace: str = ""
    metrics_environment: str = ""
    # Traces over OTLP/HTTP (duochat_common.tracing): OpenTelemetry's own variable, so the
    # SDK's other OTEL_* settings (the sampler) sit beside it. Empty: no tracing at all.
    otel_exporter_otlp_endpoint: str = Field(default="", alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    # Prefixes every Redis key and stream name, so that test runs and tenants never collide.
    redis_prefix: str = ""
    # Where every service fetches the public keys that verify access tokens.
    auth_jwks_url: str = "http://127.0.0.1:8000/auth/.well-known/jwks.json"
    # A static JWKS document (JSON). When set it replaces ``auth_jwks_url``: tests and tools that
    # mint their own tokens hand the public keys over without running auth.
    auth_jwks_json: str = ""
    jwt_issuer: str = "duochat-auth"
    jwt_audience: str = "duochat"
    jwks_cache_seconds: int = 300
    instance_id: str = ""
    # Seeds happydaddy/angrydaddy; embedded mode only.
    demo_accounts: bool = False
    # Proxies whose X-Forwarded-For is believed (comma-separated addresses or CIDR networks):
    # nginx's address in compose, the ALB's subnets on AWS. Empty: the header is ignored.
    trusted_proxies: str = ""

    @field_validator("auth_jwks_json")
    @classmethod
    def _jwks_is_json(cls, value: str) -> str:
        if value:
            document = json.loads(value)
            if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
                raise ValueError("DUOCHAT_AUTH_JWKS_JSON must be a JWKS document with 'keys'")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # a typo must fail at start-up, not trust nobody silently
        return value

    def trusted_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if self.environment != "production":
            return self
        problems = self.production_problems()
        if problems:
            raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

    def instance_name(self) -> str:
        """This process's name in consumer groups, routing and Redis keys: ``instance_id`` when
        set, else one made of the host, the pid and a random part (a new one per call)."""
        raw = self.instance_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)[:100]

    def key(self, name: str) -> str:
        """A Redis key or stream name in this deployment's namespace."""
        return f"{self.redis_prefix}{name}"

    def production_problems(self) -> list[str]:
        """Reasons this configuration must not run in production (subclasses add their own)."""
        problems = []
        if self.demo_accounts:
            problems.append("DUOCHAT_DEMO_ACCOUNTS must be off")
        if self.database_url.startswith("sqlite"):
            problems.append("DUOCHAT_DATABASE_URL must point at MySQL, not SQLite")
        if self.redis_url.startswith("memory://"):
            problems.append("DUOCHAT_REDIS_URL must point at a real Redis")
        if DEV_DEFAULT_MARK in self.database_url:
            problems.append("DUOCHAT_DATABASE_URL still carries a default password")
        # Plain-text connections only inside a private network: a forged JWKS answer would let
        # anyone mint tokens, and Redis carries every event.
        jwks = urlsplit(self.auth_jwks_url)
        if jwks.scheme != "https" and not is_private_host(jwks.hostname):
            problems.append("DUOCHAT_AUTH_JWKS_URL must be https:// unless its host is private")
        cache = urlsplit(self.redis_url)
        if cache.scheme == "redis" and not is_private_host(cache.hostname):
            problems.append("DUOCHAT_REDIS_URL must be rediss:// unless its host is private")
        return problems


PRIVATE_SUFFIXES = (".internal", ".local", ".localdomain")


def is_private_host(host: str | None) -> bool:
    """A loopback or private address, or a name that only a private network resolves (a compose
    service name such as ``auth``, or one under ``.internal``/``.local``)."""
    if not host:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.lower().endswith(PRIVATE_SUFFIXES)
    return ip.is_private or ip.is_loopback
