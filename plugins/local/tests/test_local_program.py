"""The program file: the demo program loads; malformed files name the file, location and field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from loyaltykit import ConfigError, Loyalty, LoyaltySettings
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.demo import demo_program_path
from loyaltykit_local.program import Program, empty_program, load_program, parse_program


def test_demo_program_loads_with_exact_decimals():
    program = load_program(demo_program_path())
    assert program.name == "Bean Club"
    roasted = next(t for t in program.tiers if t.name == "roasted")
    assert roasted.multiplier == Decimal("1.5") and isinstance(roasted.multiplier, Decimal)
    assert {r.id for r in program.rules} >= {"welcome-gift", "big-basket", "espresso-lovers"}


def test_the_empty_program_equals_a_validated_empty_program():
    # made without validation (the engine's default at start): the same fields, set and unset, as Program()
    made, validated = empty_program(), Program()
    assert made == validated and repr(made) == repr(validated)
    assert made.model_dump() == validated.model_dump() and made.currencies == ["EUR"]
    assert made.model_fields_set == validated.model_fields_set == set()
    assert made.currencies is not empty_program().currencies and made.rules is not empty_program().rules


def _error(text: str, tmp_path: Path) -> ConfigError:
    path = tmp_path / "club.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_program(path)
    return info.value


@pytest.mark.parametrize(
    ("text", "location", "words"),
    [
        ('[[rules]]\nid="r"\nthen={action="percent_off_order", percent=300}', "rules[0].then.percent", "less than or equal to 100"),
        ('[[rules]]\nid="a"\nthen={action="message", text="hi"}\n[[rules]]\nid="b"\nthen=[{action="message", text="x"}, {action="fixed_off_order"}]',
         "rules[1].then[1].amount", "Field required"),
        ('[[rules]]\nid="r"\nthen={action="teleport"}', "rules[0].then.action", "teleport"),
        ('[[rules]]\nid="r"\nwhen={colour="red"}\nthen={action="free_shipping"}', "rules[0].when.colour", "Extra inputs"),
        ('[[rules]]\nid="r"\nwhen={basket_amount={min=-5}}\nthen={action="free_shipping"}', "rules[0].when.basket_amount.min", "greater than or equal to 0"),
        ('[[vouchers]]\ncode="X"\nkind="percent"', "vouchers[0].percent", "required"),
        ('[[vouchers]]\ncode="X"\nkind="item"\namount=2', "vouchers[0].sku", "required"),
        ('currency = "ZZZ"', "currency", "ZZZ"),
        ('[[tiers]]\nname="gold"\n[[tiers]]\nname="gold"', "tiers[1].name", "duplicate"),
        ('[points]\nper_currency_unit = "lots"', "points.per_currency_unit", "decimal"),
    ],
)
def test_malformed_program_names_file_location_and_field(text, location, words, tmp_path):
    error = _error(text, tmp_path)
    assert str(tmp_path / "club.toml") in error.message
    assert error.field == location
    assert f": {location}: " in error.message
    assert words.lower() in error.message.lower()


def test_toml_syntax_error_names_the_file(tmp_path):
    error = _error("rules = [", tmp_path)
    assert "club.toml" in error.message and "not valid TOML" in error.message


def test_missing_program_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_program(tmp_path / "absent.toml")


def test_bad_program_file_stops_the_facade_at_start(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[rules]]\nid="r"\nthen={action="percent_off_line", percent=0}')
    settings = LoyaltySettings(engine="local", engines={"local": {
        "database_url": f"sqlite:///{tmp_path / 'db.sqlite3'}", "program_file": str(path)}})
    with pytest.raises(ConfigError) as info:
        Loyalty(settings)
    assert "rules[0].then.percent" in str(info.value)


def test_per_currency_amounts_and_accepted_currencies():
    program = parse_program('currency="EUR"\ncurrencies=["EUR","USD"]\n[[rules]]\nid="r"\n'
                            'when={basket_amount={min={EUR=20, USD=22}}}\nthen={action="free_shipping"}')
    assert program.accepted_currencies == {"EUR", "USD"}
    assert program.rules[0].when.basket_amount.min == {"EUR": Decimal(20), "USD": Decimal(22)}
    with pytest.raises(ConfigError, match="currencies"):
        parse_program('currency="EUR"\ncurrencies=["USD"]')


def test_adapter_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOYALTYKIT_LOCAL_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    monkeypatch.setenv("LOYALTYKIT_LOCAL_PROGRAM_FILE", str(demo_program_path()))
    monkeypatch.setenv("LOYALTYKIT_LOCAL_CREATE_SCHEMA", "true")
    adapter = LocalAdapter()
    try:
        assert adapter.engine.program.name == "Bean Club"
        assert (tmp_path / "env.sqlite3").exists()
        assert "sqlite" not in repr(adapter)  # settings (a database URL may hold a password) stay out of reprs
    finally:
        adapter.close()
