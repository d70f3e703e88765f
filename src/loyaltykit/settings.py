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

from pydantic import Field, SecretStr, ValidationError
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
    """The kit's settings. Bad values raise :class:`~loyaltykit.errors.ConfigError` naming the field and
    where it came from (the TOML file, or the environment), never pydantic's ``ValidationError``; a TOML
    file that does not parse names the file and the line."""

    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_", extra="forbid", env_nested_delimiter="__")

    def __init__(self, **values: Any) -> None:
        from .errors import ConfigError

        path = config_path()
        if path is not None and not path.is_file():
            raise ConfigError(f"LOYALTYKIT_CONFIG names {path}, which does not exist", details={"file": str(path)})
        decode_errors: tuple[type[Exception], ...] = ()
        if path is not None:  # the TOML parser is loaded only when there is a file to read
            import tomllib

            decode_errors = (tomllib.TOMLDecodeError,)
        try:
            super().__init__(**values)
        except decode_errors as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}", details={"file": str(path)}) from None
        except ValidationError as exc:
            # Name the field and its source, never echo the value (it may be a secret).
            first = exc.errors(include_url=False, include_input=False)[0]
            field = ".".join(str(part) for part in first["loc"]) or "settings"
            env = f"LOYALTYKIT_{field.upper().replace('.', '__')}"
            source = f"{path} or {env}" if path is not None else env if field not in values else "arguments"
            raise ConfigError(f"invalid setting {field} (from {source}): {first['msg']}", field=field,
                              details={"file": str(path) if path else None}) from None

    engine: str = Field(default="local", description="Entry-point name of the engine adapter to use.")
    plugins_allow: list[str] | None = Field(
        default=None, description="Only these entry points are loaded (None: all)."
    )
    # ``default=[]``, not ``default_factory=list``: pydantic copies a mutable default per instance, and
    # checking a builtin factory's signature compiles the tokenizer's regex (~3 ms of start-up).
    plugins_block: list[str] = Field(default=[], description="Entry points never loaded.")
    evaluate_budget: float = Field(default=1.5, gt=0, le=60, description="Seconds an evaluation may take before it fails open.")
    read_deadline: float = Field(default=5.0, gt=0, le=120, description="Deadline of identify and product pricing, seconds.")
    write_deadline: float = Field(default=15.0, gt=0, le=300, description="Deadline of redeem, spend, export and reverse, seconds.")
    breaker_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open the circuit.")
    breaker_reset: float = Field(default=30.0, gt=0, description="Seconds the circuit stays open before one trial call.")
    key_lock_dir: Path | None = Field(
        default=None,
        description="A directory shared by this host's processes: one in-flight call per idempotency key "
        "across them (file locks). None: per process only.",
    )
    outbox_url: SecretStr = Field(
        default=SecretStr("sqlite:///.loyaltykit/outbox.sqlite3"),
        description="Where the export outbox lives: sqlite:///<path> or postgresql://... (kept out of reprs).",
    )
    # Raw sections may hold secrets (the adapter's settings model makes them SecretStr): keep out of repr.
    engines: dict[str, dict[str, Any]] = Field(
        default={}, repr=False, description="Per-adapter settings sections."
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
