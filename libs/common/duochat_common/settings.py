"""The settings base every service extends.

Values come from ``DUOCHAT_*`` environment variables. Every default suits the embedded mode;
``environment=production`` refuses the defaults that are only safe on a laptop.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_DEFAULT_MARK = "dev-only"


class ServiceSettings(BaseSettings):
    """Settings shared by every service; build one with ``Settings(**overrides)``."""

    model_config = SettingsConfigDict(env_prefix="DUOCHAT_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./data/duochat.db"
    redis_url: str = "memory://embedded"
    redis_max_connections: int = 256
    # ``redis_url`` names any node of a Redis Cluster (redis-py's cluster client).
    redis_cluster: bool = False
    # CloudWatch metrics as log lines (duochat_common.emf); off unless a namespace is set.
    metrics_namespace: str = ""
    metrics_environment: str = ""
    # Prefixes every Redis key and stream name, so that test runs and tenants never collide.
    redis_prefix: str = ""
    # Where every service fetches the public keys that verify access tokens.
    auth_jwks_url: str = "http://127.0.0.1:8000/auth/.well-known/jwks.json"
    jwt_issuer: str = "duochat-auth"
    jwt_audience: str = "duochat"
    jwks_cache_seconds: int = 300
    instance_id: str = ""
    # Seeds happydaddy/angrydaddy; embedded mode only.
    demo_accounts: bool = False

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if self.environment != "production":
            return self
        problems = self.production_problems()
        if problems:
            raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

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
        return problems
