"""The ``loyaltykit`` command: ``adapters`` lists installed engine adapters, ``demo`` runs a checkout,
``serve`` runs the HTTP sidecar (optional extra).

The demo itself belongs to a plugin: the core looks up the ``loyaltykit.demo`` entry-point group
(the embedded engine publishes ``local`` there) and calls it with a rich console. The core never
imports a plugin by name.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.table import Table

from .errors import ConfigError, LoyaltyError
from .plugins import discover

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Loyalty and promotions at checkout.")
console = Console()

DEMO_GROUP = "loyaltykit.demo"


@app.command()
def adapters() -> None:
    """List installed engine adapters and plugins: name, version, hooks and capabilities."""
    try:
        found = discover()
        for item in found:
            item.load()  # listing capabilities needs the code, unlike a facade
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = Table(title="loyaltykit plugins")
    table.add_column("name")
    table.add_column("kind")
    table.add_column("version")
    table.add_column("hooks")
    table.add_column("capabilities")
    for item in found:
        if item.is_adapter:
            caps = item.obj.capabilities
            supported = caps.supported()
            if caps.identify_by:
                supported[supported.index("identify")] = "identify(" + ",".join(sorted(k.value for k in caps.identify_by)) + ")"
            hooks = "all operation hooks"
            table.add_row(item.name, "engine adapter", item.version or item.obj.version, hooks, ", ".join(supported) or "-")
        else:
            hooks = sorted(name for name in dir(item.obj) if name.startswith("loyaltykit_"))
            table.add_row(item.name, "plugin", item.version or "-", ", ".join(hooks) or "-", "-")
    if not found:
        console.print("No loyaltykit plugins installed. Install an adapter, e.g. `pip install -e plugins/local`.")
        return
    console.print(table)


@app.command()
def demo(
    engine: str = typer.Option("local", help="Which installed demo to run (entry point name)."),
) -> None:
    """Walk one complete checkout on the embedded engine, printing every step."""
    demos = {ep.name: ep for ep in entry_points(group=DEMO_GROUP)}
    if engine not in demos:
        available = ", ".join(sorted(demos)) or "none"
        console.print(
            f"[red]No demo named {engine!r} is installed[/red] (available: {available}).\n"
            "The demo runs on the embedded engine, published by the `loyaltykit-local` plugin: "
            "install it with `python -m pip install -e plugins/local` (or the README's first command)."
        )
        raise typer.Exit(1)
    run = demos[engine].load()
    try:
        run(console)
    except LoyaltyError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from None


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

        from .sidecar.settings import SidecarSettings, hash_key
        from .sidecar.settings import new_key as make_key
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
