"""auth's settings."""

from __future__ import annotations

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
    # Trust the last X-Forwarded-For hop (the ALB or nginx appends the real client address).
    trust_forwarded_for: bool = True

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if not self.jwt_private_key.strip():
            problems.append("DUOCHAT_JWT_PRIVATE_KEY must hold the token-signing key (PEM)")
        return problems
