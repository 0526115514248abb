"""auth's settings."""

from __future__ import annotations

from duochat_auth.keys import parse_pem_keys
from duochat_auth.passwords import MIN_MEMORY_KIB, MIN_TIME_COST
from duochat_common.settings import ServiceSettings


class Settings(ServiceSettings):
    database_url: str = "sqlite:///./data/auth.db"
    # PEM Ed25519 private key(s). The first signs; all are published in the JWKS, so an old key
    # keeps verifying its tokens while a new one takes over. Empty = generate one and keep it in
    # the database (development and embedded mode only).
    jwt_private_key: str = ""
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    login_max_failures_per_name: int = 5
    login_max_failures_per_address: int = 30
    login_failure_window_seconds: int = 900
    # argon2id cost (RFC 9106's second recommendation); tests lower it, production refuses that.
    password_time_cost: int = 3
    password_memory_kib: int = 64 * 1024
    password_parallelism: int = 4
    # Trust the last X-Forwarded-For hop (the ALB or nginx appends the real client address).
    trust_forwarded_for: bool = True

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
