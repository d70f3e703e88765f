"""Test support: a fresh PostgreSQL database per test, or a skip that says why (a failure in CI).

The server comes from ``LOYALTYKIT_TEST_POSTGRES_URL`` (a SQLAlchemy URL), else from the libpq
variables (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE``) — what
``pg_virtualenv`` exports around a command::

    pg_virtualenv -t python -m pytest

Without a server the PostgreSQL tests skip with that reason; where ``CI=true`` they fail instead,
so they can never pass silently. The skip is the standard library's ``unittest.SkipTest``, which
pytest and unittest both report as a skip, so this module needs no test runner at import or run time.
"""

from __future__ import annotations

import os
import unittest
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

URL_VARIABLE = "LOYALTYKIT_TEST_POSTGRES_URL"
_LIBPQ = ("PGHOST", "PGPORT", "PGDATABASE", "PGSERVICE")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server where ``CI=true``: the tests that need one fail instead of skipping."""


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        raise PostgresUnavailableError(f"PostgreSQL tests must run in CI: {reason}")
    raise unittest.SkipTest(reason)


def server_url() -> str:
    """The admin URL of the configured server (``postgresql+psycopg://``), or skip/fail."""
    explicit = os.environ.get(URL_VARIABLE)
    if explicit:
        return explicit
    if any(os.environ.get(name) for name in _LIBPQ):
        return "postgresql+psycopg://"  # psycopg fills everything in from the PG* variables
    _unavailable(f"no PostgreSQL server configured (set {URL_VARIABLE} or PGHOST..., or run under pg_virtualenv)")


@contextmanager
def fresh_database(prefix: str = "lk_test") -> Iterator[str]:
    """Create an empty database on the configured server; yield its URL; drop it afterwards."""
    try:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
    except ImportError:
        _unavailable("SQLAlchemy and psycopg are not installed (pip install 'loyaltykit[postgres]')")
    admin_url = make_url(server_url())
    if admin_url.drivername in ("postgresql", "postgres"):
        admin_url = admin_url.set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the server is configured but not reachable
        admin.dispose()
        _unavailable(f"PostgreSQL server not reachable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    try:
        url = admin_url.set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
