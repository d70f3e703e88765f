"""Settings (environment, TOML file, adapter sections) and the ``loyaltykit`` command."""

from __future__ import annotations

import re

import pytest
from loyaltykit_core_test_helpers import API_KEY, BASE_URL, FakeEntryPoint, adapter_settings, fake_entry_points
from pydantic import SecretStr
from typer.testing import CliRunner

from loyaltykit import ConfigError, Loyalty, LoyaltySettings, cli as cli_module, plugins as plugins_module
from loyaltykit_reference.adapter import ReferenceAdapter


class Observer:
    from loyaltykit import hookimpl

    @hookimpl(wrapper=True)
    def loyaltykit_identify(self, identifier, ctx):
        return (yield)


@pytest.fixture
def installed(monkeypatch):
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(
        FakeEntryPoint("reference", ReferenceAdapter, dist="loyaltykit-reference", version="1.2.3"),
        FakeEntryPoint("audit", Observer(), dist="shop-audit", version="0.4.0")))


def configure_reference(monkeypatch):
    """The reference adapter selected and configured through its own environment prefix."""
    monkeypatch.setenv("LOYALTYKIT_ENGINE", "reference")
    monkeypatch.setenv("LOYALTYKIT_REFERENCE_BASE_URL", BASE_URL)
    monkeypatch.setenv("LOYALTYKIT_REFERENCE_AUTH", "api_key")
    monkeypatch.setenv("LOYALTYKIT_REFERENCE_API_KEY", API_KEY)


# -- settings --------------------------------------------------------------------------------------


def test_defaults():
    settings = LoyaltySettings()
    assert settings.engine == "local"
    assert settings.plugins_allow is None and settings.plugins_block == []
    assert 0 < settings.evaluate_budget <= settings.read_deadline <= settings.write_deadline


def test_list_and_mapping_defaults_are_not_shared_between_instances():
    first, second = LoyaltySettings(), LoyaltySettings()
    first.plugins_block.append("audit")
    first.engines["local"] = {"database_url": "sqlite://"}
    assert second.plugins_block == [] and second.engines == {}
    assert LoyaltySettings().plugins_block == [] and LoyaltySettings().engines == {}


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("LOYALTYKIT_ENGINE", "reference")
    monkeypatch.setenv("LOYALTYKIT_EVALUATE_BUDGET", "0.75")
    monkeypatch.setenv("LOYALTYKIT_PLUGINS_BLOCK", '["audit"]')
    monkeypatch.setenv("LOYALTYKIT_ENGINES__REFERENCE__CLIENT_ID", "from-env")
    settings = LoyaltySettings()
    assert settings.engine == "reference"
    assert settings.evaluate_budget == 0.75
    assert settings.plugins_block == ["audit"]
    assert settings.engine_section("reference") == {"client_id": "from-env"}


def test_toml_file_from_loyaltykit_config(monkeypatch, tmp_path):
    path = tmp_path / "elsewhere.toml"
    path.write_text(
        'engine = "reference"\nread_deadline = 2.5\nplugins_allow = ["reference"]\n\n'
        '[engines.reference]\nbase_url = "http://toml.test"\nclient_id = "cid"\nclient_secret = "toml-secret-value"\n'
    )
    monkeypatch.setenv("LOYALTYKIT_CONFIG", str(path))
    settings = LoyaltySettings()
    assert settings.engine == "reference" and settings.read_deadline == 2.5 and settings.plugins_allow == ["reference"]
    assert settings.engine_section("reference")["base_url"] == "http://toml.test"
    monkeypatch.setenv("LOYALTYKIT_READ_DEADLINE", "4")
    assert LoyaltySettings().read_deadline == 4.0, "environment wins over the file"


def test_loyaltykit_toml_in_working_directory_is_read(tmp_path):
    (tmp_path / "loyaltykit.toml").write_text('engine = "from-cwd"\n')
    assert LoyaltySettings().engine == "from-cwd"


def test_missing_config_file_is_a_config_error(monkeypatch, tmp_path, installed):
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("LOYALTYKIT_CONFIG", str(missing))
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        Loyalty()


def test_invalid_settings_are_a_config_error_naming_the_field(monkeypatch, installed):
    monkeypatch.setenv("LOYALTYKIT_ENGINE", "reference")
    monkeypatch.setenv("LOYALTYKIT_EVALUATE_BUDGET", "-1")
    with pytest.raises(ConfigError, match="evaluate_budget"):
        Loyalty()


def test_unknown_setting_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text('engine = "reference"\nevaluate_budgett = 1\n')
    monkeypatch.setenv("LOYALTYKIT_CONFIG", str(path))
    with pytest.raises(ConfigError, match="evaluate_budgett"):
        Loyalty()


def test_adapter_section_reaches_the_adapter_settings_model(monkeypatch, tmp_path, installed):
    path = tmp_path / "c.toml"
    path.write_text('engine = "reference"\n[engines.reference]\nbase_url = "http://toml.test"\nclient_id = "cid"\n'
                    'client_secret = "toml-secret-value"\nmax_attempts = 2\n')
    monkeypatch.setenv("LOYALTYKIT_CONFIG", str(path))
    with Loyalty() as loyalty:
        adapter_settings = loyalty.adapter.settings
        assert adapter_settings.base_url == "http://toml.test"
        assert adapter_settings.max_attempts == 2
        assert isinstance(adapter_settings.client_secret, SecretStr)
        assert adapter_settings.client_secret.get_secret_value() == "toml-secret-value"
        assert loyalty.client_config.services["default"].base_url == "http://toml.test"
        for text in (repr(adapter_settings), str(adapter_settings), repr(loyalty.settings), repr(loyalty.adapter),
                     repr(loyalty.client_config)):
            assert "toml-secret-value" not in text


def test_invalid_adapter_section_is_a_config_error(monkeypatch, tmp_path, installed):
    configure_reference(monkeypatch)
    monkeypatch.setenv("LOYALTYKIT_ENGINES__REFERENCE__MAX_ATTEMPTS", "many")
    with pytest.raises(ConfigError, match="max_attempts"):
        Loyalty()


def test_breaker_settings_reach_the_engine_client(installed):
    settings = LoyaltySettings(engine="reference", breaker_threshold=7, breaker_reset=1.5,
                               engines={"reference": adapter_settings()})
    with Loyalty(settings) as loyalty:
        breaker = loyalty.client_config.breaker
        assert (breaker.failure_threshold, breaker.reset_after) == (7, 1.5)


# -- CLI ---------------------------------------------------------------------------------------------


def test_adapters_lists_installed_adapters_and_plugins(installed, monkeypatch):
    configure_reference(monkeypatch)
    monkeypatch.setattr(cli_module.console, "width", 250)
    result = CliRunner().invoke(cli_module.app, ["adapters"])
    assert result.exit_code == 0, result.output
    out = result.output
    row = next(line for line in out.splitlines() if re.search(r"\breference\b", line))
    assert "engine adapter" in row and "1.2.3" in row
    for capability in ("identify(email,external_id)", "evaluate", "redeem_voucher", "spend_cashback",
                       "export_orders", "cancel", "refund"):
        assert capability in row
    assert "partial_refund" not in row and "price_products" not in row
    audit_row = next(line for line in out.splitlines() if re.search(r"\baudit\b", line))
    assert "plugin" in audit_row and "loyaltykit_identify" in audit_row and "0.4.0" in audit_row


def test_adapters_with_nothing_installed(monkeypatch):
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points())
    result = CliRunner().invoke(cli_module.app, ["adapters"])
    assert result.exit_code == 0
    assert "No loyaltykit plugins installed" in result.output


def test_adapters_reports_a_broken_plugin(monkeypatch):
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(
        FakeEntryPoint("broken", None, error=ImportError("no module named broken_mod"))))
    result = CliRunner().invoke(cli_module.app, ["adapters"])
    assert result.exit_code == 2
    assert "broken" in result.output


def test_demo_without_a_demo_installed_exits_non_zero_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(cli_module, "entry_points", lambda group=None, **_: [])
    result = CliRunner().invoke(cli_module.app, ["demo"])
    assert result.exit_code != 0
    output = " ".join(result.output.split())
    assert "No demo named 'local' is installed" in output
    assert "pip install loyaltykit-local" in output and "plugins/" not in output, "a package, not a repository path"


def test_demo_runs_an_installed_demo(monkeypatch):
    ran = []
    monkeypatch.setattr(cli_module, "entry_points", lambda group=None, **_: [
        FakeEntryPoint("local", lambda console: ran.append(console))])
    result = CliRunner().invoke(cli_module.app, ["demo"])
    assert result.exit_code == 0, result.output
    assert len(ran) == 1


def test_version_is_printed():
    from loyaltykit import __version__

    result = CliRunner().invoke(cli_module.app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"loyaltykit {__version__}"


def test_adapters_json_lists_plugins_and_the_configured_instance(installed, monkeypatch):
    import json

    configure_reference(monkeypatch)
    monkeypatch.setenv("LOYALTYKIT_REFERENCE_MAX_ATTEMPTS", "2")
    result = CliRunner().invoke(cli_module.app, ["adapters", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {p["name"]: p["kind"] for p in data["plugins"]} == {"reference": "engine adapter", "audit": "plugin"}
    assert data["configured"]["engine"] == "reference" and data["configured"]["settings_valid"] is True
    assert "identify(email,external_id)" in data["configured"]["capabilities"]


def test_adapters_is_a_doctor_for_invalid_settings(installed, monkeypatch):
    configure_reference(monkeypatch)
    monkeypatch.setenv("LOYALTYKIT_REFERENCE_MAX_ATTEMPTS", "not-a-number")
    result = CliRunner().invoke(cli_module.app, ["adapters"])
    assert result.exit_code == 1
    assert "max_attempts" in result.stderr and "not-a-number" not in result.stderr
    assert "max_attempts" not in result.stdout, "errors go to stderr"


def test_adapters_names_the_package_of_a_missing_configured_engine(installed, monkeypatch):
    monkeypatch.setenv("LOYALTYKIT_ENGINE", "acme")
    result = CliRunner().invoke(cli_module.app, ["adapters"])
    assert result.exit_code == 1 and "loyaltykit-acme" in result.stderr


def test_fake_of_an_engine_that_is_not_installed_is_an_error_on_stderr(monkeypatch):
    monkeypatch.setattr(cli_module, "entry_points", lambda group=None, **_: [])
    result = CliRunner().invoke(cli_module.app, ["fake", "acme", "--port", "0"])
    assert result.exit_code == 1 and "No fake named 'acme'" in result.stderr and result.stdout == ""


def test_fake_serves_an_installed_engine_as_a_process():
    """``loyaltykit fake reference --port 0 --seed demo`` answers HTTP like the engine."""
    import subprocess
    import sys

    import httpx

    pytest.importorskip("loyaltykit_reference", reason="the reference adapter package is not installed")
    proc = subprocess.Popen([sys.executable, "-u", "-m", "loyaltykit.cli", "fake", "reference", "--port", "0",
                             "--seed", "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert url, line + proc.stderr.read()
        settings = {}
        for _ in range(5):
            found = re.match(r"\s+export (\w+)=(\S+)", proc.stdout.readline())
            if found:
                settings[found.group(1)] = found.group(2)
        assert settings["LOYALTYKIT_REFERENCE_BASE_URL"] == url.group(1)
        token = httpx.post(url.group(1) + "/oauth/token", data={
            "grant_type": "client_credentials", "client_id": settings["LOYALTYKIT_REFERENCE_CLIENT_ID"],
            "client_secret": settings["LOYALTYKIT_REFERENCE_CLIENT_SECRET"]}).json()["access_token"]
        member = httpx.get(url.group(1) + "/members", params={"email": "ann@example.com"},
                           headers={"Authorization": f"Bearer {token}"}).json()
        assert member["ok"] is True and member["member"]["id"] == "m1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_adapters_names_an_invalid_kit_setting_without_its_value(installed, monkeypatch):
    monkeypatch.setenv("LOYALTYKIT_ENGINE", "reference")
    monkeypatch.setenv("LOYALTYKIT_EVALUATE_BUDGET", "-7.25")
    result = CliRunner().invoke(cli_module.app, ["adapters"])
    assert result.exit_code == 1 and "evaluate_budget" in result.stderr and "-7.25" not in result.stderr
