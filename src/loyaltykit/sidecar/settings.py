"""Settings of the HTTP sidecar: ``[sidecar]`` is not part of the kit's settings; the sidecar reads
``LOYALTYKIT_SIDECAR_*`` variables (or a TOML file named by ``LOYALTYKIT_SIDECAR_CONFIG``).

Where the stores live is the kit's own ``outbox_url`` (``LOYALTYKIT_OUTBOX_URL``): the outbox and
the idempotency records share it (a SQLite file for one host, PostgreSQL for many).

API keys are stored as SHA-256 hashes (``sha256:<hex>``): the sidecar never holds a key in clear.
Keys are long random strings (``loyaltykit serve --new-key NAME`` makes one), so a fast hash is the
right tool, as for any bearer token; a slow password hash would only add latency to every request.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
CLIENT_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "lk_" + secrets.token_urlsafe(32)


class ClientKeys(BaseModel):
    """One calling system (a shop's cartridge, a POS fleet) and its active key hashes (at most two:
    the current key and the next one, so a key is rotated without downtime)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Client name; the user name of HTTP Basic.")
    keys: list[str] = Field(min_length=1, max_length=2, description="sha256:<hex> of each active key.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CLIENT_NAME.match(value):
            raise ValueError("client names are 1-64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("keys")
    @classmethod
    def _hashes(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _HASH.match(item):
                raise ValueError("keys are stored hashed: sha256:<64 hex digits> (see `loyaltykit serve --new-key`)")
        return value


def sidecar_config_path() -> Path | None:
    explicit = os.environ.get("LOYALTYKIT_SIDECAR_CONFIG")
    return Path(explicit) if explicit else None


class SidecarSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_SIDECAR_", extra="forbid", env_nested_delimiter="__")

    clients: list[ClientKeys] = Field(default_factory=list, description="Callers and their hashed API keys.")
    idempotency_retention_hours: float = Field(
        default=24.0, ge=24.0, le=24.0 * 90, description="How long a stored answer is replayed (at least 24 h)."
    )
    in_flight_retry_after: int = Field(default=1, ge=1, le=60, description="Retry-After (s) of a 409 while in flight.")
    lease_margin: float = Field(
        default=5.0, ge=0, description="Seconds past the write deadline after which a running call is presumed dead."
    )
    hmac: str = Field(default="off", pattern="^(off|optional|required)$", description="Request signing.")
    hmac_window: int = Field(default=300, ge=1, le=3600, description="Accepted clock skew of a signature, seconds.")
    max_body_bytes: int = Field(default=2_000_000, ge=1024, description="Largest request body accepted.")
    flush_interval: float = Field(
        default=5.0, ge=0, description="Seconds between outbox flushes by each worker (0: no background flush)."
    )
    ping_engine: bool = Field(default=False, description="/readyz also checks the engine (cached).")
    ping_cache_seconds: float = Field(default=10.0, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = sidecar_config_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def retention_seconds(self) -> float:
        return self.idempotency_retention_hours * 3600
