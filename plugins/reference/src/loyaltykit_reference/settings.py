"""Settings of the Reference adapter: ``[engines.reference]`` in loyaltykit.toml, or
``LOYALTYKIT_REFERENCE_*`` in the environment (``LOYALTYKIT_REFERENCE_BASE_URL=...``).

Credentials are ``SecretStr``: they never reach a repr, a log line or an error message.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loyaltykit.errors import ERROR_CODES
from loyaltykit.money import is_currency


class ReferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_REFERENCE_", extra="forbid")

    base_url: str = Field(description="The engine's API root, e.g. https://api.reference.example")
    auth: Literal["oauth2", "api_key"] = Field(
        default="oauth2", description="OAuth2 client credentials (POST /oauth/token), or an X-Api-Key header."
    )
    client_id: str | None = None
    client_secret: SecretStr | None = None
    api_key: SecretStr | None = None
    currency: str = Field(default="EUR", description="The program's one currency (ISO 4217).")
    error_codes: dict[str, str] = Field(
        default_factory=dict,
        description="Engine error code -> kit error code; extends the documented table.",
    )
    connect_timeout: float = Field(default=3.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(
        default=4, ge=1, le=10,
        description="Attempts per call for reads and keyed writes; a write without a key is sent once.",
    )
    backoff_base: float = Field(
        default=0.1, gt=0, le=5,
        description="Seconds; the wait before retry n is random(0, backoff_base * 2**n), at most 20 times this.",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError("not an ISO 4217 currency")
        return value

    @field_validator("error_codes")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(v for v in value.values() if v not in ERROR_CODES)
        if bad:
            raise ValueError(f"unknown kit error codes {bad}")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> ReferenceSettings:
        if self.auth == "oauth2" and (self.client_id is None or self.client_secret is None):
            raise ValueError("auth='oauth2' needs client_id and client_secret")
        if self.auth == "api_key" and self.api_key is None:
            raise ValueError("auth='api_key' needs api_key")
        return self
