"""Everything the kit raises on bad input or misuse is a LoyaltyError: settings files, closed facades,
non-iterable exports, a second event loop. Driven through the embedded engine (no engine is called)."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from loyaltykit import AsyncLoyalty, ConfigError, InvalidRequestError, Loyalty, LoyaltySettings


def test_a_toml_syntax_error_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "broken.toml"
    path.write_text('engine = "local"\nevaluate_budget = \n')
    monkeypatch.setenv("LOYALTYKIT_CONFIG", str(path))
    with pytest.raises(ConfigError) as info:
        LoyaltySettings()
    assert "broken.toml" in str(info.value) and "line 2" in str(info.value)


def test_a_bad_value_in_the_file_names_the_file_and_the_field(tmp_path, monkeypatch):
    path = tmp_path / "shop.toml"
    path.write_text('evaluate_budget = -3\n')
    monkeypatch.setenv("LOYALTYKIT_CONFIG", str(path))
    with pytest.raises(ConfigError) as info:
        LoyaltySettings()
    assert info.value.field == "evaluate_budget" and "shop.toml" in str(info.value)


def test_a_bad_argument_is_a_config_error_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        LoyaltySettings(write_deadline="soon")
    assert info.value.field == "write_deadline"


def _settings(tmp_path) -> LoyaltySettings:
    return LoyaltySettings(engine="local", engines={"local": {
        "database_url": f"sqlite:///{tmp_path / 'engine.sqlite3'}"}})


def _local(tmp_path, facade=Loyalty):
    """A facade on a migrated embedded engine, set up as a shop does: `loyaltykit-local migrate` first."""
    from loyaltykit_local.cli import app

    url = f"sqlite:///{tmp_path / 'engine.sqlite3'}"
    result = CliRunner().invoke(app, ["migrate", "--url", url])
    assert result.exit_code == 0, result.output
    return facade(_settings(tmp_path))


def test_a_first_run_without_migrating_names_the_migrate_command(tmp_path):
    with pytest.raises(ConfigError) as info:
        Loyalty(_settings(tmp_path))
    assert "no schema yet" in str(info.value) and "loyaltykit-local migrate" in str(info.value)


def test_a_closed_facade_raises_a_config_error(tmp_path):
    loyalty = _local(tmp_path)
    loyalty.close()
    loyalty.close()  # closing twice is harmless
    with pytest.raises(ConfigError, match="closed"):
        loyalty.identify(email="ann@example.com")

    async def closed_async() -> None:
        shop = _local(tmp_path, AsyncLoyalty)
        await shop.aclose()
        await shop.evaluate({"id": "b", "currency": "EUR", "lines": [
            {"id": "1", "sku": "A", "quantity": 1, "unit_price": {"amount": "1", "currency": "EUR"}}]})

    with pytest.raises(ConfigError, match="closed"):
        asyncio.run(closed_async())


@pytest.mark.parametrize("orders", [None, 42, "ORD-1"])
def test_export_of_something_that_is_not_orders_is_an_invalid_request(tmp_path, orders):
    with _local(tmp_path) as loyalty:
        with pytest.raises(InvalidRequestError) as info:
            loyalty.export_orders(orders)
        assert info.value.field == "orders"
        assert loyalty.adapter.engine.calls["export"] == 0
