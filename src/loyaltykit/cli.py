"""The ``loyaltykit`` command.

* ``adapters`` lists installed engine adapters and plugins, then checks the configured engine (the
  ``engine`` setting): whether its settings validate and what the configured instance supports.
  Exit 1 when they do not validate, 2 when a plugin fails to load (a "doctor").
* ``demo`` runs a checkout on an installed demo (the ``loyaltykit.demo`` entry-point group; the
  embedded engine publishes ``local``).
* ``report`` prints the configured engine's program report (points and cashback issued, redeemed,
  expired, outstanding; members by tier; top rules) and writes it as an HTML page with ``--html``
  (the ``loyaltykit.report`` entry-point group; the embedded engine publishes ``local``).
* ``fake ENGINE`` serves an installed engine's fake (the ``loyaltykit.fakes`` group) over HTTP on
  127.0.0.1, so a shop can be pointed at it.

Listings take ``--json``. Errors go to stderr with a non-zero exit. The core never imports a
plugin by name.
"""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import ConfigError, LoyaltyError
from .plugins import Discovered, discover

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Loyalty and promotions at checkout.")
console = Console()
err_console = Console(stderr=True)

DEMO_GROUP = "loyaltykit.demo"
REPORT_GROUP = "loyaltykit.report"
FAKES_GROUP = "loyaltykit.fakes"  # the same name as loyaltykit.testing.FAKES_GROUP (not imported: it pulls httpx)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        console.print(f"loyaltykit {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Loyalty and promotions at checkout."""


def _capabilities(caps: Any) -> list[str]:
    supported: list[str] = caps.supported()
    if caps.identify_by:
        kinds = ",".join(sorted(k.value for k in caps.identify_by))
        supported[supported.index("identify")] = f"identify({kinds})"
    return supported


def _row(item: Discovered) -> dict[str, Any]:
    if item.is_adapter:
        return {
            "name": item.name, "kind": "engine adapter", "distribution": item.distribution,
            "version": item.version or item.obj.version, "hooks": "all operation hooks",
            "capabilities": _capabilities(item.obj.capabilities),
        }
    hooks = sorted(name for name in dir(item.obj) if name.startswith("loyaltykit_"))
    return {"name": item.name, "kind": "plugin", "distribution": item.distribution, "version": item.version,
            "hooks": hooks, "capabilities": []}


def _configured(found: list[Discovered]) -> dict[str, Any]:
    """The configured engine: do its settings validate, and what does that instance support?"""
    from .settings import LoyaltySettings  # pydantic-settings: only when checking the configuration

    try:
        settings = LoyaltySettings()
    except ConfigError as exc:  # names the field and its source, never the value (it may be a secret)
        return {"engine": None, "settings_valid": False, "problem": f"invalid kit settings: {exc.message}"}
    adapters = {item.name: item for item in found if item.is_adapter}
    engine = settings.engine
    if engine not in adapters:
        return {"engine": engine, "settings_valid": False,
                "problem": f"no engine adapter named {engine!r} is installed (install the loyaltykit-{engine} package)"}
    try:
        adapter = adapters[engine].obj(settings.engine_section(engine))
    except LoyaltyError as exc:
        return {"engine": engine, "settings_valid": False, "problem": exc.message}
    try:
        caps = _capabilities(adapter.capabilities)
    finally:
        adapter.close()
    return {"engine": engine, "settings_valid": True, "problem": None, "capabilities": caps}


@app.command()
def adapters(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List installed adapters and plugins, and check the configured engine's settings (doctor)."""
    try:
        found = discover()
        rows = [_row(item) for item in found]  # listing capabilities needs the code, unlike a facade
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    configured = _configured(found) if any(item.is_adapter for item in found) else None
    if as_json:
        console.print_json(json.dumps({"plugins": rows, "configured": configured}))
    elif not found:
        console.print("No loyaltykit plugins installed. Install an adapter package, e.g. "
                      "`python -m pip install loyaltykit-local` (the embedded engine).")
    else:
        table = Table(title="loyaltykit plugins")
        for column in ("name", "kind", "version", "hooks", "capabilities"):
            table.add_column(column)
        for row in rows:
            hooks = row["hooks"] if isinstance(row["hooks"], str) else ", ".join(row["hooks"]) or "-"
            table.add_row(row["name"], row["kind"], row["version"] or "-", hooks,
                          ", ".join(row["capabilities"]) or "-")
        console.print(table)
        if configured is not None and configured["settings_valid"]:
            console.print(f"configured engine: {configured['engine']} — settings valid; supports "
                          f"{', '.join(configured['capabilities']) or 'nothing'}", highlight=False)
    if configured is not None and not configured["settings_valid"]:
        raise _fail(f"configured engine {configured['engine']!r}: {configured['problem']}", 1)


@app.command()
def demo(
    engine: str = typer.Option("local", help="Which installed demo to run (entry point name)."),
) -> None:
    """Walk one complete checkout on the embedded engine, printing every step."""
    demos = {ep.name: ep for ep in entry_points(group=DEMO_GROUP)}
    if engine not in demos:
        available = ", ".join(sorted(demos)) or "none"
        raise _fail(
            f"No demo named {engine!r} is installed (available: {available}). The demo runs on the "
            "embedded engine: install the `loyaltykit-local` package (`python -m pip install loyaltykit-local`)."
        )
    run = demos[engine].load()
    try:
        run(console)
    except LoyaltyError as exc:
        raise _fail(f"demo failed: {exc}") from None


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"--{name}: not an ISO date or date-time ({value!r})") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@app.command()
def report(
    period: str = typer.Option("month", help="Group figures per day, week or month."),
    since: str | None = typer.Option(None, help="From this ISO date or date-time (UTC unless given)."),
    until: str | None = typer.Option(None, help="Up to (excluding) this ISO date or date-time."),
    point_value: str | None = typer.Option(None, "--point-value",
                                           help="What one point is worth, in the program's currency "
                                                "(default: the program's own setting)."),
    html: Path | None = typer.Option(None, "--html", help="Also write a self-contained HTML page with charts."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Report on the configured engine's program: issued, redeemed, expired, outstanding, tiers, top rules."""
    from .settings import LoyaltySettings  # pydantic-settings: only when a command needs the configuration

    if period not in ("day", "week", "month"):
        raise _fail(f"--period: one of day, week, month (not {period!r})")
    value = None
    if point_value is not None:
        try:
            value = Decimal(point_value)
        except InvalidOperation:
            raise _fail(f"--point-value: not a decimal number ({point_value!r})") from None
        if not value.is_finite() or value < 0:
            raise _fail("--point-value: must be a finite number >= 0")
    try:
        settings = LoyaltySettings()
    except Exception as exc:  # pydantic's ValidationError: name the type, never the values
        raise _fail(f"invalid kit settings: {type(exc).__name__}") from None
    reports = {ep.name: ep for ep in entry_points(group=REPORT_GROUP)}
    if settings.engine not in reports:
        available = ", ".join(sorted(reports)) or "none"
        raise _fail(f"the configured engine {settings.engine!r} has no program report (engines with one: "
                    f"{available}). Reports read the embedded engine's store: set engine = \"local\".")
    try:
        reports[settings.engine].load()(
            settings.engine_section(settings.engine), console, period=period, since=_moment(since, "since"),
            until=_moment(until, "until"), point_value=value, html_path=html, as_json=as_json)
    except LoyaltyError as exc:
        raise _fail(exc.message) from None


@app.command()
def fake(
    engine: str = typer.Argument(..., help="The engine whose fake to serve (entry point name)."),
    port: int = typer.Option(8765, help="TCP port on 127.0.0.1 (0: any free port)."),
    seed: str = typer.Option("demo", help="Seed data: 'demo' or 'empty' (as the fake defines)."),
) -> None:
    """Serve an installed engine's fake over HTTP on 127.0.0.1 until interrupted."""
    fakes = {ep.name: ep for ep in entry_points(group=FAKES_GROUP)}
    if engine not in fakes:
        available = ", ".join(sorted(fakes)) or "none"
        raise _fail(f"No fake named {engine!r} is installed (available: {available}). Fakes come with adapter "
                    f"packages, e.g. `python -m pip install loyaltykit-reference`.")
    from .testing import serve  # httpx and the HTTP server only for this command

    try:
        engine_fake = fakes[engine].load()(seed)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        served = serve(engine_fake.handle, port)
    except OSError as exc:
        raise _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    with served:
        console.print(f"fake {engine} engine ({seed}) at {served.url} — Ctrl-C stops it", highlight=False)
        settings = engine_fake.shop_settings(served.url)
        if settings:
            console.print("point a shop at it with:", highlight=False)
            for key, value in settings.items():
                console.print(f"  export {key}={value}", highlight=False)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


# -- outbox operations (status, list, retry, drop, drain, migrate) ------------------------------
from .outbox.cli import outbox_app  # noqa: E402

app.add_typer(outbox_app, name="outbox")


# -- serve: the HTTP sidecar (optional extra `loyaltykit[sidecar]`) -----------------------------------
@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (they share the stores)."),
    new_key: str = typer.Option(None, "--new-key", metavar="CLIENT",
                                help="Print a fresh API key for CLIENT and its hashed settings line, then exit."),
    dev_key: bool = typer.Option(False, "--dev-key",
                                 help="No clients configured? Make one (client `dev`) for this run and print its key."),
    log_level: str = typer.Option("warning", help="Server log level (access logs are JSON on stderr)."),
) -> None:
    """Serve every facade operation over HTTP (/v1), for SFCC cartridges, POS systems and other platforms."""
    import json
    import os
    import tempfile

    try:
        import uvicorn

        from .sidecar.settings import SidecarSettings, hash_key, new_key as make_key
    except ImportError:
        typer.echo("The sidecar is an optional extra: python -m pip install 'loyaltykit[sidecar]'", err=True)
        raise typer.Exit(1) from None
    if new_key:
        key = make_key()
        typer.echo(f"API key for {new_key} (shown once; store it in the client): {key}")
        typer.echo(f'settings: LOYALTYKIT_SIDECAR_CLIENTS=\'[{{"name": "{new_key}", "keys": ["{hash_key(key)}"]}}]\'')
        return
    try:
        settings = SidecarSettings()
    except Exception as exc:  # pydantic's message names the setting
        console.print(f"[red]invalid sidecar settings:[/red] {exc}")
        raise typer.Exit(2) from None
    if not settings.clients:
        if not dev_key:
            console.print("[red]No API clients configured.[/red] Set LOYALTYKIT_SIDECAR_CLIENTS (see "
                          "`loyaltykit serve --new-key NAME`), or pass --dev-key for a throw-away key.")
            raise typer.Exit(2)
        key = make_key()
        os.environ["LOYALTYKIT_SIDECAR_CLIENTS"] = json.dumps([{"name": "dev", "keys": [hash_key(key)]}])
        typer.echo(f"dev API key for this run (client `dev`): {key}", err=True)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker writes its metrics there, so any worker's /metrics answers for all.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="loyaltykit-metrics-")
    if workers == 1:
        uvicorn.run("loyaltykit.sidecar.app:create_app", factory=True, host=host, port=port,
                    log_level=log_level, access_log=False, proxy_headers=False)
    else:
        from .sidecar.workers import serve as serve_workers

        serve_workers(host, port, workers, log_level)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
