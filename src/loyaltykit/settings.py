"""Kit settings: environment variables (``LOYALTYKIT_*``) over a TOML file over defaults.

The TOML file is ``$LOYALTYKIT_CONFIG`` if set, else ``loyaltykit.toml`` in the working directory
when present. Adapter settings live in ``[engines.<name>]`` and are validated by the adapter's own
settings model (which reads its own ``LOYALTYKIT_<NAME>_*`` variables too)::

    engine = "salesforce"
    evaluate_budget = 1.5

    [engines.salesforce]
    my_domain_url = "https://acme.my.salesforce.com"
    program_name = "NTO Insider"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def config_path() -> Path | None:
    explicit = os.environ.get("LOYALTYKIT_CONFIG")
    if explicit:
        return Path(explicit)
    default = Path("loyaltykit.toml")
    return default if default.is_file() else None


class LoyaltySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_", extra="forbid", env_nested_delimiter="__")

    engine: str = Field(default="local", description="Entry-point name of the engine adapter to use.")
    plugins_allow: list[str] | None = Field(
        default=None, description="Only these entry points are loaded (None: all)."
    )
    plugins_block: list[str] = Field(default_factory=list, description="Entry points never loaded.")
    evaluate_budget: float = Field(default=1.5, gt=0, le=60, description="Seconds an evaluation may take before it fails open.")
    read_deadline: float = Field(default=5.0, gt=0, le=120, description="Deadline of identify and product pricing, seconds.")
    write_deadline: float = Field(default=15.0, gt=0, le=300, description="Deadline of redeem, spend, export and reverse, seconds.")
    breaker_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open the circuit.")
    breaker_reset: float = Field(default=30.0, gt=0, description="Seconds the circuit stays open before one trial call.")
    outbox_url: SecretStr = Field(
        default=SecretStr("sqlite:///.loyaltykit/outbox.sqlite3"),
        description="Where the export outbox lives: sqlite:///<path> or postgresql://... (kept out of reprs).",
    )
    # Raw sections may hold secrets (the adapter's settings model makes them SecretStr): keep out of repr.
    engines: dict[str, dict[str, Any]] = Field(
        default_factory=dict, repr=False, description="Per-adapter settings sections."
    )

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
        path = config_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def engine_section(self, name: str) -> dict[str, Any]:
        return dict(self.engines.get(name, {}))
