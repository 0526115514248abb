"""auth's settings."""

from __future__ import annotations

from pydantic import Field

from duochat_auth.keys import parse_pem_keys
from duochat_auth.passwords import MIN_MEMORY_KIB, MIN_TIME_COST
from duochat_auth.usernames import canonical
from duochat_common.settings import ServiceSettings


class Settings(ServiceSettings):
    database_url: str = "sqlite:///./data/auth.db"
    # PEM Ed25519 private key(s). The first signs; all are published in the JWKS, so an old key
    # keeps verifying its tokens while a new one takes over. Empty = generate one and keep it in
    # the database (development and embedded mode only).
    jwt_private_key: str = ""
    # Bounded: a stolen access token cannot be revoked, and a refresh token lives in a browser.
    access_token_ttl_seconds: int = Field(default=900, le=3600)
    refresh_token_ttl_seconds: int = Field(default=14 * 24 * 3600, le=90 * 24 * 3600)
    # Failed sign-ins per account before each further one doubles the wait (never a lock-out).
    login_max_failures_per_name: int = Field(default=5, ge=1)
    login_delay_base_seconds: float = Field(default=1.0, gt=0)
    login_delay_max_seconds: float = Field(default=60.0, gt=0, le=3600)
    login_max_failures_per_address: int = Field(default=30, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1, le=86400)
    # Accounts created per client address per window.
    register_max_per_address: int = Field(default=20, ge=1)
    register_window_seconds: int = Field(default=3600, ge=1, le=86400)
    # argon2id cost (RFC 9106's second recommendation); tests lower it, production refuses that.
    password_time_cost: int = 3
    password_memory_kib: int = 64 * 1024
    password_parallelism: int = 4
    # Hashes running at once; 0 = as many as the CPUs and the memory budget allow. The excess
    # waits up to ``password_queue_seconds`` and then gets 503 with Retry-After.
    password_max_concurrent: int = Field(default=0, ge=0)
    password_memory_budget_mib: int = Field(default=256, ge=1)
    password_queue_seconds: float = Field(default=0.5, ge=0, le=10)

    # Accounts whose tokens carry ``role: operator`` (moderation, GET /boards/reports):
    # comma-separated usernames, compared as sign-in compares them (any case). Read at each
    # sign-in and refresh, so a change reaches a signed-in operator within a token's lifetime.
    operators: str = ""

    def operator_names(self) -> frozenset[str]:
        return frozenset(canonical(n.strip()) for n in self.operators.split(",") if n.strip())

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if not self.jwt_private_key.strip():
            problems.append("DUOCHAT_JWT_PRIVATE_KEY must hold the token-signing key (PEM)")
        else:
            try:
                if not parse_pem_keys(self.jwt_private_key):
                    raise ValueError("no PEM block")
            except (ValueError, TypeError) as exc:
                problems.append(f"DUOCHAT_JWT_PRIVATE_KEY is not Ed25519 PEM ({exc})")
        if self.password_time_cost < MIN_TIME_COST or self.password_memory_kib < MIN_MEMORY_KIB:
            problems.append(
                f"DUOCHAT_PASSWORD_TIME_COST must be >= {MIN_TIME_COST} and "
                f"DUOCHAT_PASSWORD_MEMORY_KIB >= {MIN_MEMORY_KIB}"
            )
        return problems
