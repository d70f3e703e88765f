"""``loyaltykit-local``: operate the embedded engine's database.

``loyaltykit-local migrate`` creates or upgrades the schema at the URL the settings name
(``[engines.local] database_url`` in loyaltykit.toml, or ``LOYALTYKIT_LOCAL_DATABASE_URL``), or
at ``--url``. Run it once per release before starting the workers; it is safe to run concurrently.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console

from loyaltykit import ConfigError, LoyaltySettings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The embedded loyalty engine's database.")
console = Console()


def _url(url: str | None) -> str:
    if url:
        return url
    from .adapter import LocalSettings

    return LocalSettings(**LoyaltySettings().engine_section("local")).database_url.get_secret_value()


@app.command()
def migrate(
    url: str = typer.Option(None, "--url", help="SQLAlchemy URL (default: the settings' database_url)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create or upgrade the embedded engine's schema."""
    from .store import SCHEMA_VERSION, Store

    try:
        store = Store(_url(url), create=False)
        try:
            before = store.migrate()
        finally:
            store.dispose()
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps({"from_version": before, "to_version": SCHEMA_VERSION}))
    elif before == SCHEMA_VERSION:
        console.print(f"schema already at version {SCHEMA_VERSION}: nothing to do")
    else:
        console.print(f"schema migrated from version {before} to {SCHEMA_VERSION}")


@app.callback()
def _root() -> None:
    """The embedded loyalty engine's database."""


def main() -> None:
    app()
