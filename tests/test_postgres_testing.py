"""The PostgreSQL test helper skips without a server, and fails instead where CI=true."""

from __future__ import annotations

import unittest

import pytest

from loyaltykit.postgres_testing import URL_VARIABLE, PostgresUnavailableError, fresh_database, server_url

pytest_plugins = ["pytester"]

_SERVER_VARIABLES = (URL_VARIABLE, "PGHOST", "PGPORT", "PGDATABASE", "PGSERVICE")


@pytest.fixture
def no_server(monkeypatch):
    for name in _SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_without_a_server_the_tests_skip_with_the_reason(no_server, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(unittest.SkipTest, match="no PostgreSQL server configured"):
        server_url()
    with pytest.raises(unittest.SkipTest, match="pg_virtualenv"), fresh_database():
        pass


def test_without_a_server_in_ci_the_tests_fail(no_server, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(PostgresUnavailableError, match="must run in CI"):
        server_url()


def test_an_unreachable_server_skips_naming_the_error(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(URL_VARIABLE, "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    with pytest.raises(unittest.SkipTest, match="not reachable"), fresh_database():
        pass


def test_pytest_reports_the_helpers_skip_as_a_skip(pytester, monkeypatch):
    for name in _SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile("""
        from loyaltykit.postgres_testing import fresh_database

        def test_needs_postgres():
            with fresh_database():
                raise AssertionError("must not run")
    """)
    # (the inner run reads no project configuration: pytest-asyncio's loop scope is given here)
    result = pytester.runpytest_inprocess("-rs", "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no PostgreSQL server configured*"])
