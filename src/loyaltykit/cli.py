"""The ``loyaltykit`` command: ``adapters`` lists installed engine adapters, ``demo`` runs a checkout,
``outbox`` operates the export outbox.

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


# -- outbox operations (status, list, retry, drop, drain, migrate) ------------------------------
from .outbox.cli import outbox_app  # noqa: E402

app.add_typer(outbox_app, name="outbox")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
