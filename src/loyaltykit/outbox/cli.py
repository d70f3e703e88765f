"""``loyaltykit outbox status | list | retry | drop | drain | migrate``: operate the export outbox.

The outbox is the one at ``--url``, else ``outbox_url`` from the settings (``LOYALTYKIT_OUTBOX_URL``
or loyaltykit.toml). Every command takes ``--json`` for scripts. Exit codes: 0 done, 1 nothing
matched (``drop``, ``retry``), 2 bad input or configuration.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import LoyaltyError
from . import DEAD, DROPPED, REJECTED, STATES, Outbox

outbox_app = typer.Typer(no_args_is_help=True, help="Operate the export outbox: status, list, retry, drop, drain.")
console = Console()

URL = typer.Option(None, "--url", help="Outbox URL (default: outbox_url from the settings).")
JSON = typer.Option(False, "--json", help="Print JSON for scripts.")


def _open(url: str | None) -> Outbox:
    try:
        if url:
            return Outbox(url)
        return Outbox.from_settings()
    except LoyaltyError as exc:
        _fail(exc)
        raise


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(2)


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


@outbox_app.command()
def status(url: str = URL, as_json: bool = JSON) -> None:
    """Orders per state, and how many are due now or being exported."""
    with _open(url) as outbox:
        counts = outbox.status()
        where = outbox.store.display
    if as_json:
        print(json.dumps({"store": where, **counts}))
        return
    table = Table(title="outbox", caption=where)
    table.add_column("state")
    table.add_column("orders", justify="right")
    for name in (*STATES, "due", "leased"):
        table.add_row(name, str(counts.get(name, 0)))
    console.print(table)


@outbox_app.command("list")
def list_entries(
    state: str = typer.Option(None, "--state", help=f"Only this state: {', '.join(STATES)}."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many, oldest first."),
    url: str = URL,
    as_json: bool = JSON,
) -> None:
    """Orders in the outbox, oldest first, with attempts and the last error."""
    with _open(url) as outbox:
        try:
            entries = outbox.entries(state, limit=limit)
        except LoyaltyError as exc:
            _fail(exc)
    if as_json:
        print(json.dumps([e.as_dict() for e in entries]))
        return
    table = Table(title=f"outbox: {state or 'all states'}")
    for column in ("ref", "state", "attempts", "next attempt", "last status", "last reason"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.ref, e.state + (" (leased)" if e.leased else ""), str(e.attempts), _when(e.next_attempt),
                      e.last_status or "-", e.last_reason or "-")
    console.print(table)


@outbox_app.command()
def retry(
    refs: list[str] = typer.Argument(None, help="Order refs to queue again (default: with --all, every one)."),
    states: list[str] = typer.Option([DEAD], "--state", help="Which settled states may be retried (repeatable)."),
    everything: bool = typer.Option(False, "--all", help="Every order in those states."),
    url: str = URL,
    as_json: bool = JSON,
) -> None:
    """Queue dead (or rejected / dropped, with --state) orders again, due now."""
    if not refs and not everything:
        _fail(ValueError("name order refs, or pass --all"))
    if any(s not in (DEAD, REJECTED, DROPPED) for s in states):
        _fail(ValueError("--state takes dead, rejected or dropped"))
    with _open(url) as outbox:
        count = outbox.retry(None if everything and not refs else refs, states=states)
    if as_json:
        print(json.dumps({"retried": count}))
    else:
        console.print(f"{count} order(s) queued again")
    if count == 0:
        raise typer.Exit(1)


@outbox_app.command()
def drop(
    ref: str = typer.Argument(..., help="The order ref."),
    reason: str = typer.Option(..., "--reason", help="Why (kept with the order)."),
    url: str = URL,
    as_json: bool = JSON,
) -> None:
    """Cancel a pending order before it is exported (not one in flight or exported)."""
    with _open(url) as outbox:
        try:
            dropped = outbox.drop(ref, reason=reason)
        except LoyaltyError as exc:
            _fail(exc)
        entry = outbox.entry(ref)
    if as_json:
        print(json.dumps({"ref": ref, "dropped": dropped, "state": entry.state if entry else None}))
    elif dropped:
        console.print(f"{ref} dropped")
    else:
        console.print(f"{ref} not dropped: " + (f"it is {entry.state}" + (" and in flight" if entry.leased else "")
                                                if entry else "no such order"))
    if not dropped:
        raise typer.Exit(1)


@outbox_app.command()
def drain(
    batch: int = typer.Option(100, "--batch", min=1, max=500, help="Orders per export call."),
    url: str = URL,
    as_json: bool = JSON,
) -> None:
    """Export every due order now through the configured engine, with a progress bar and a summary."""
    from ..facade import Loyalty

    with _open(url) as outbox:
        try:
            loyalty = Loyalty()
        except LoyaltyError as exc:
            _fail(exc)
        with loyalty:
            due = outbox.status()["due"]
            if as_json:
                summary = outbox.drain(loyalty, batch=batch)
            else:
                columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
                with Progress(*columns, console=console, transient=True) as progress:
                    task = progress.add_task("drain", total=due or None)
                    summary = outbox.drain(loyalty, batch=batch, progress=lambda n: progress.advance(task, n))
            left = outbox.status()
    if as_json:
        print(json.dumps({**summary.as_dict(), "pending": left["pending"], "dead_total": left["dead"]}))
        return
    table = Table(title="outbox drained")
    table.add_column("outcome")
    table.add_column("orders", justify="right")
    for name, value in summary.as_dict().items():
        table.add_row(name, str(value))
    table.add_row("still pending (backing off or in flight)", str(left["pending"]))
    console.print(table)


@outbox_app.command()
def migrate(url: str = URL, as_json: bool = JSON) -> None:
    """Create or upgrade the outbox table (safe to run from several hosts at once)."""
    try:
        outbox = Outbox(url, create_schema=False) if url else Outbox.from_settings(create_schema=False)
    except LoyaltyError as exc:
        _fail(exc)
    with outbox:
        outbox.migrate()
        where = outbox.store.display
    if as_json:
        print(json.dumps({"store": where, "migrated": True}))
    else:
        console.print(f"outbox table ready in {where}")
