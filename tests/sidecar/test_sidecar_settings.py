"""Sidecar settings: hashed keys only, at most two per client, from the environment or a TOML file."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loyaltykit.sidecar import SidecarSettings, hash_key, new_key
from loyaltykit.sidecar.auth import Authenticator


def test_keys_are_stored_hashed_and_two_at_most(monkeypatch):
    key = new_key()
    assert key.startswith("lk_") and len(key) > 40 and new_key() != key
    assert hash_key(key).startswith("sha256:") and key not in hash_key(key)
    with pytest.raises(ValidationError, match="stored hashed"):
        SidecarSettings(clients=[{"name": "pos", "keys": [key]}])
    with pytest.raises(ValidationError):
        SidecarSettings(clients=[{"name": "pos", "keys": [hash_key("a"), hash_key("b"), hash_key("c")]}])
    with pytest.raises(ValidationError, match="client names"):
        SidecarSettings(clients=[{"name": "p o s", "keys": [hash_key("a")]}])


def test_settings_from_the_environment_and_from_toml(monkeypatch, tmp_path):
    monkeypatch.setenv("LOYALTYKIT_SIDECAR_CLIENTS", f'[{{"name": "pos", "keys": ["{hash_key("k1")}"]}}]')
    monkeypatch.setenv("LOYALTYKIT_SIDECAR_HMAC", "required")
    settings = SidecarSettings()
    assert settings.hmac == "required" and Authenticator(settings).authenticate("Bearer k1").client == "pos"
    monkeypatch.delenv("LOYALTYKIT_SIDECAR_CLIENTS")
    config = tmp_path / "sidecar.toml"
    config.write_text(f'idempotency_retention_hours = 72\n[[clients]]\nname = "sfcc"\nkeys = ["{hash_key("k2")}"]\n')
    monkeypatch.setenv("LOYALTYKIT_SIDECAR_CONFIG", str(config))
    settings = SidecarSettings()
    assert settings.retention_seconds == 72 * 3600
    assert Authenticator(settings).authenticate("Bearer k2").client == "sfcc"
    assert "database_url" not in repr(settings)
