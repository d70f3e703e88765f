"""Repository-level glue for the contract suite (not part of the installed distribution).

The suite itself is the ``loyaltykit_contract`` pytest plugin, registered by installing
``./contract_tests``; without it the scenarios here cannot run, so say so loudly. The self-test
needs pytester, which is registered here rather than in the plugin so that installing the suite
changes nothing in other projects' test runs.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    names = {getattr(plugin, "__name__", "") for plugin in config.pluginmanager.get_plugins()}
    if "loyaltykit_contract.plugin" not in names:
        raise pytest.UsageError(
            "the loyaltykit contract suite is not installed: run `python -m pip install -e ./contract_tests` "
            "(or pass -p loyaltykit_contract.plugin when plugin autoloading is disabled)"
        )
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")
