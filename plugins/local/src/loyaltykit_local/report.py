"""Program reporting on the embedded engine (``loyaltykit report``).

Per period (day, week or month): points and cashback issued, redeemed, expired and reversed, new
members and orders; then what is outstanding now — the liability, in money when the program says
what a point is worth (``[points] value``, or ``--point-value``) — the redemption rate, members by
tier, and the rules and campaigns that cost the most (bonus points and offers issued).

:func:`build_report` reads the store (one read transaction); :func:`print_report` renders rich
tables; :func:`render_html` writes one self-contained HTML page (inline CSS and SVG charts, no
script, nothing fetched) and needs the optional plotting extra: ``pip install loyaltykit-local[report]``.
"""

from __future__ import annotations

import html
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from loyaltykit import ConfigError, Money
from loyaltykit.money import exponent

from .program import amount_in
from .store import from_db
from .tables import customers, ledger, member_events, orders, rule_costs

if TYPE_CHECKING:
    from rich.console import Console

    from .service import LocalEngine

Period = Literal["day", "week", "month"]
PERIODS: tuple[str, ...] = ("day", "week", "month")


def period_of(moment: datetime, period: str) -> str:
    """The label of the period holding ``moment`` (UTC): ``2025-05-15``, ``2025-W20``, ``2025-05``."""
    if period == "day":
        return f"{moment:%Y-%m-%d}"
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{moment:%Y-%m}"
    raise ValueError(f"period: one of {', '.join(PERIODS)}")


@dataclass
class PeriodFigures:
    period: str
    points_issued: int = 0
    points_redeemed: int = 0
    points_expired: int = 0
    points_reversed: int = 0  # net: burned points returned less earned points clawed back
    cashback_issued: Decimal = Decimal(0)
    cashback_redeemed: Decimal = Decimal(0)
    cashback_reversed: Decimal = Decimal(0)
    orders: int = 0
    new_members: int = 0


@dataclass
class RuleCost:
    rule_id: str
    label: str
    applied: int = 0  # orders it applied to
    bonus_points: int = 0
    offers_issued: int = 0
    discount_minor: int = 0  # discounts given, in the program currency's minor units
    cost: Money | None = None  # discounts given plus bonus points at the point value (discounts only without one)


@dataclass
class ProgramReport:
    program: str
    currency: str
    period: str
    generated_at: datetime
    since: datetime | None
    until: datetime | None
    periods: list[PeriodFigures]
    points_outstanding: int
    cashback_outstanding: Money
    point_value: Decimal | None
    members: int
    members_by_tier: dict[str, int]
    top_rules: list[RuleCost]
    totals: PeriodFigures = field(default_factory=lambda: PeriodFigures("total"))

    @property
    def points_liability(self) -> Money | None:
        if self.point_value is None:
            return None
        return Money(amount=self.point_value * self.points_outstanding, currency=self.currency)

    @property
    def liability(self) -> Money | None:
        """Outstanding points at their value plus outstanding cashback."""
        points = self.points_liability
        return None if points is None else points + self.cashback_outstanding

    @property
    def redemption_rate(self) -> Decimal | None:
        """Points redeemed over points issued, in the window (None when none were issued)."""
        if not self.totals.points_issued:
            return None
        return (Decimal(self.totals.points_redeemed) / Decimal(self.totals.points_issued)).quantize(Decimal("0.0001"))

    def as_dict(self) -> dict[str, Any]:
        def money(value: Money | None) -> str | None:
            return None if value is None else f"{value.amount} {value.currency}"

        return {
            "program": self.program, "currency": self.currency, "period": self.period,
            "generated_at": self.generated_at.isoformat(),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "periods": [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in vars(p).items()}
                        for p in self.periods],
            "points_outstanding": self.points_outstanding,
            "cashback_outstanding": money(self.cashback_outstanding),
            "point_value": str(self.point_value) if self.point_value is not None else None,
            "liability": money(self.liability),
            "redemption_rate": str(self.redemption_rate) if self.redemption_rate is not None else None,
            "members": self.members, "members_by_tier": self.members_by_tier,
            "top_rules": [{"rule_id": r.rule_id, "label": r.label, "applied": r.applied,
                           "discounts": str(_major(r.discount_minor, self.currency)),
                           "bonus_points": r.bonus_points, "offers_issued": r.offers_issued,
                           "cost": money(r.cost)} for r in self.top_rules],
        }


def _major(units: int, currency: str) -> Decimal:
    return Decimal(units).scaleb(-exponent(currency))


def build_report(engine: LocalEngine, *, period: str = "month", since: datetime | None = None,
                 until: datetime | None = None, point_value: Decimal | None = None, top: int = 10) -> ProgramReport:
    """Figures of the program between ``since`` and ``until`` (outstanding balances: as of now)."""
    if period not in PERIODS:
        raise ConfigError(f"period: one of {', '.join(PERIODS)}, not {period!r}")
    if since is not None and until is not None and since >= until:
        raise ConfigError("since: must be before until")
    program = engine.program
    currency = program.currency
    if point_value is None:
        point_value = amount_in(program.points.spend_value, program.currency, program.currency)  # the liability
    now = engine.now()
    figures: dict[str, PeriodFigures] = {}

    def bucket(moment: datetime) -> PeriodFigures | None:
        if (since is not None and moment < since) or (until is not None and moment >= until):
            return None
        label = period_of(moment, period)
        return figures.setdefault(label, PeriodFigures(label))

    labels = {rule.label or rule.id: rule.id for rule in program.rules}
    rules = {rule.id: RuleCost(rule.id, rule.label or rule.id) for rule in program.rules}
    with engine.store.sqlalchemy_read() as conn:
        points_outstanding = 0
        cashback_units = 0
        for row in conn.execute(select(ledger.c.created_at, ledger.c.balance, ledger.c.currency, ledger.c.entry,
                                       ledger.c.amount, ledger.c.label)).yield_per(2000):
            moment = from_db(row.created_at)
            if row.balance == "points":
                points_outstanding += row.amount
            elif row.currency == currency:
                cashback_units += row.amount
            target = bucket(moment) if moment is not None else None
            if target is None or (row.balance == "cashback" and row.currency != currency):
                continue
            if row.balance == "points":
                if row.entry == "earn":
                    target.points_issued += row.amount
                    rule_id = labels.get(row.label or "")
                    if rule_id is not None:
                        rules[rule_id].bonus_points += row.amount
                elif row.entry == "burn":
                    target.points_redeemed -= row.amount
                elif row.entry == "expire":
                    target.points_expired -= row.amount
                else:
                    target.points_reversed += row.amount
            else:
                value = _major(row.amount, currency)
                if row.entry == "earn":
                    target.cashback_issued += value
                elif row.entry == "burn":
                    target.cashback_redeemed -= value
                else:
                    target.cashback_reversed += value
        for placed in conn.execute(select(orders.c.placed_at, orders.c.rules)):
            target = bucket(from_db(placed.placed_at))
            if target is not None:
                target.orders += 1
                for rule_id in placed.rules or ():  # the rules applied to the order (guests' too)
                    rules.setdefault(rule_id, RuleCost(rule_id, rule_id)).applied += 1
        members = 0
        by_tier: Counter[str] = Counter()
        for row in conn.execute(select(customers)):
            members += 1
            by_tier[engine._tier(conn, row) or "(none)"] += 1
            target = bucket(from_db(row.created_at))
            if target is not None:
                target.new_members += 1
        # Points whose date passed and that no write recorded yet are not outstanding any more.
        points_outstanding -= sum(engine._pending_expiry(conn, cid, now)
                                  for cid in conn.execute(select(customers.c.id)).scalars())
        for event in conn.execute(select(member_events.c.rule_id, member_events.c.created_at)
                                  .where(member_events.c.kind == "voucher", member_events.c.rule_id.is_not(None))):
            moment = from_db(event.created_at)
            if moment is not None and bucket(moment) is not None:
                rules.setdefault(event.rule_id, RuleCost(event.rule_id, event.rule_id)).offers_issued += 1
        for spent in conn.execute(select(rule_costs.c.rule_id, rule_costs.c.discount_minor, rule_costs.c.created_at)
                                  .where(rule_costs.c.currency == currency)):
            moment = from_db(spent.created_at)
            if moment is not None and bucket(moment) is not None:
                rules.setdefault(spent.rule_id, RuleCost(spent.rule_id, spent.rule_id)).discount_minor += spent.discount_minor
    for cost in rules.values():
        amount = _major(cost.discount_minor, currency)
        if point_value is not None:
            amount += point_value * cost.bonus_points
        cost.cost = Money(amount=amount, currency=currency)
    ranked = sorted((r for r in rules.values() if r.applied or r.bonus_points or r.offers_issued or r.discount_minor),
                    key=lambda r: (-(r.cost.amount if r.cost else 0), -r.bonus_points, -r.offers_issued, -r.applied,
                                   r.rule_id))
    periods = [figures[label] for label in sorted(figures)]
    totals = PeriodFigures("total")
    for figure in periods:
        for name, value in vars(figure).items():
            if name != "period":
                setattr(totals, name, getattr(totals, name) + value)
    return ProgramReport(
        program=program.name, currency=currency, period=period, generated_at=now, since=since, until=until,
        periods=periods, totals=totals, points_outstanding=max(0, points_outstanding),
        cashback_outstanding=Money(amount=_major(cashback_units, currency), currency=currency),
        point_value=point_value, members=members, members_by_tier=dict(sorted(by_tier.items())),
        top_rules=ranked[:top],
    )


# ---------------------------------------------------------------------------------------------
# Terminal
# ---------------------------------------------------------------------------------------------


def _rate(report: ProgramReport) -> str:
    rate = report.redemption_rate
    return "-" if rate is None else f"{rate * 100:.1f} %"


def print_report(report: ProgramReport, console: Console) -> None:
    from rich.table import Table

    console.print(f"[bold]{report.program}[/bold] — program report per {report.period}, "
                  f"generated {report.generated_at:%Y-%m-%d %H:%M} UTC", highlight=False)
    table = Table(title="points and cashback", header_style="bold")
    columns = ("period", "points issued", "redeemed", "expired", "reversed",
               f"cashback issued ({report.currency})", "redeemed", "orders", "new members")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in [*report.periods, report.totals]:
        table.add_row(row.period, str(row.points_issued), str(row.points_redeemed), str(row.points_expired),
                      f"{row.points_reversed:+d}", str(row.cashback_issued), str(row.cashback_redeemed),
                      str(row.orders), str(row.new_members), end_section=row is report.periods[-1] if report.periods else False)
    console.print(table)
    summary = Table(title="outstanding now", header_style="bold", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("points outstanding", str(report.points_outstanding))
    summary.add_row("point value", f"{report.point_value} {report.currency}" if report.point_value is not None
                    else "not set ([points] value or --point-value)")
    summary.add_row("points liability", str(report.points_liability or "-"))
    summary.add_row("cashback outstanding", str(report.cashback_outstanding))
    summary.add_row("total liability", str(report.liability or "-"))
    summary.add_row("redemption rate (redeemed / issued)", _rate(report))
    summary.add_row("members", str(report.members))
    console.print(summary)
    tiers = Table(title="members by tier", header_style="bold")
    tiers.add_column("tier")
    tiers.add_column("members", justify="right")
    for tier, count in report.members_by_tier.items():
        tiers.add_row(tier, str(count))
    console.print(tiers)
    top = Table(title="top rules and campaigns by cost", header_style="bold")
    for index, column in enumerate(("rule", "label", "orders", "discounts", "bonus points", "offers issued", "cost")):
        top.add_column(column, justify="left" if index < 2 else "right")
    for rule in report.top_rules:
        top.add_row(rule.rule_id, rule.label, str(rule.applied), str(_major(rule.discount_minor, report.currency)),
                    str(rule.bonus_points), str(rule.offers_issued), str(rule.cost or "-"))
    console.print(top)


# ---------------------------------------------------------------------------------------------
# HTML with charts (optional extra: matplotlib)
# ---------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ConfigError("the HTML report draws charts with matplotlib: "
                          "pip install 'loyaltykit-local[report]'") from None
    matplotlib.use("Agg", force=True)  # no display: render to SVG only
    matplotlib.rcParams["svg.hashsalt"] = "loyaltykit"  # stable element ids from run to run
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text (searchable, small)
    import matplotlib.pyplot as plt

    return plt


def _svg(plt: Any, figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: inline in the page


def _charts(report: ProgramReport) -> dict[str, str]:
    plt = _pyplot()
    charts: dict[str, str] = {}
    labels = [p.period for p in report.periods] or ["-"]
    positions = range(len(labels))
    width = 0.27
    figure, axes = plt.subplots(figsize=(8, 3.2))
    for offset, (name, values) in enumerate((
        ("issued", [p.points_issued for p in report.periods] or [0]),
        ("redeemed", [p.points_redeemed for p in report.periods] or [0]),
        ("expired", [p.points_expired for p in report.periods] or [0]),
    )):
        axes.bar([x + (offset - 1) * width for x in positions], values, width, label=name)
    axes.set_xticks(list(positions), labels)
    axes.set_ylabel("points")
    axes.set_title(f"Points per {report.period}")
    axes.legend()
    charts["points"] = _svg(plt, figure)

    figure, axes = plt.subplots(figsize=(8, 3.2))
    axes.bar([x - 0.2 for x in positions], [float(p.cashback_issued) for p in report.periods] or [0], 0.4,
             label="issued")
    axes.bar([x + 0.2 for x in positions], [float(p.cashback_redeemed) for p in report.periods] or [0], 0.4,
             label="redeemed")
    axes.set_xticks(list(positions), labels)
    axes.set_ylabel(report.currency)
    axes.set_title(f"Cashback per {report.period}")
    axes.legend()
    charts["cashback"] = _svg(plt, figure)

    figure, axes = plt.subplots(figsize=(5, 3))
    tiers = list(report.members_by_tier) or ["-"]
    axes.barh(tiers, [report.members_by_tier.get(t, 0) for t in tiers])
    axes.set_xlabel("members")
    axes.set_title("Members by tier")
    charts["tiers"] = _svg(plt, figure)

    if report.top_rules:
        figure, axes = plt.subplots(figsize=(6, 0.5 + 0.4 * len(report.top_rules)))
        names = [r.rule_id for r in reversed(report.top_rules)]
        axes.barh(names, [float(r.cost.amount) if r.cost else 0.0 for r in reversed(report.top_rules)])
        axes.set_xlabel(report.currency if report.point_value is not None else f"{report.currency} (discounts only)")
        axes.set_title("Top rules and campaigns by cost")
        charts["rules"] = _svg(plt, figure)
    return charts


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} tr.total td{font-weight:600;border-top:2px solid #888}
.cards{display:flex;gap:1rem;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem}
.card b{display:block;font-size:1.3rem} figure{margin:1rem 0} .muted{color:#666}
"""


def _cell(value: Any, numeric: bool = True) -> str:
    return f'<td class="n">{html.escape(str(value))}</td>' if numeric else f"<td>{html.escape(str(value))}</td>"


def render_html(report: ProgramReport) -> str:
    """One self-contained HTML page: inline style, inline SVG charts, no script, no external resource."""
    charts = _charts(report)
    e = html.escape
    rows = []
    for row in [*report.periods, report.totals]:
        css = ' class="total"' if row is report.totals else ""
        rows.append(f"<tr{css}>" + _cell(row.period, False) + "".join(_cell(v) for v in (
            row.points_issued, row.points_redeemed, row.points_expired, f"{row.points_reversed:+d}",
            row.cashback_issued, row.cashback_redeemed, row.orders, row.new_members)) + "</tr>")
    heads = "".join(f'<th class="n">{e(h)}</th>' for h in (
        "points issued", "redeemed", "expired", "reversed", f"cashback issued ({report.currency})", "redeemed",
        "orders", "new members"))
    cards = "".join(f'<div class="card"><span class="muted">{e(title)}</span><b>{e(value)}</b></div>' for title, value in (
        ("points outstanding", str(report.points_outstanding)),
        ("liability", str(report.liability) if report.liability is not None else "point value not set"),
        ("cashback outstanding", str(report.cashback_outstanding)),
        ("redemption rate", _rate(report)),
        ("members", str(report.members)),
    ))
    tiers = "".join(f"<tr>{_cell(tier, False)}{_cell(count)}</tr>" for tier, count in report.members_by_tier.items())
    rules = "".join(
        "<tr>" + _cell(r.rule_id, False) + _cell(r.label, False) + _cell(r.applied)
        + _cell(_major(r.discount_minor, report.currency)) + _cell(r.bonus_points)
        + _cell(r.offers_issued) + _cell(r.cost or "-") + "</tr>" for r in report.top_rules)
    window = " to ".join(f"{m:%Y-%m-%d}" for m in (report.since, report.until) if m) or "all time"
    figures = "".join(f"<figure>{charts[name]}</figure>" for name in ("points", "cashback") if name in charts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(report.program)} — program report</title>
<style>{_STYLE}</style></head><body>
<h1>{e(report.program)} — program report</h1>
<p class="muted">per {e(report.period)}, {e(window)}; generated {report.generated_at:%Y-%m-%d %H:%M} UTC;
amounts in {e(report.currency)}</p>
<div class="cards">{cards}</div>
<h2>Points and cashback per {e(report.period)}</h2>
<table><thead><tr><th>period</th>{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table>
{figures}
<h2>Members by tier</h2>
<table><thead><tr><th>tier</th><th class="n">members</th></tr></thead><tbody>{tiers}</tbody></table>
<figure>{charts['tiers']}</figure>
<h2>Top rules and campaigns by cost</h2>
<table><thead><tr><th>rule</th><th>label</th><th class="n">orders</th><th class="n">discounts</th><th class="n">bonus points</th>
<th class="n">offers issued</th><th class="n">cost</th></tr></thead><tbody>{rules}</tbody></table>
{f"<figure>{charts['rules']}</figure>" if 'rules' in charts else '<p class="muted">no rule has cost anything yet</p>'}
</body></html>
"""


# ---------------------------------------------------------------------------------------------
# The CLI's entry point (group ``loyaltykit.report``)
# ---------------------------------------------------------------------------------------------


def run(section: dict[str, Any], console: Console, *, period: str = "month", since: datetime | None = None,
        until: datetime | None = None, point_value: Decimal | None = None, html_path: Any = None,
        as_json: bool = False) -> None:
    """Report on the engine configured by ``section`` (``[engines.local]``)."""
    from .adapter import LocalAdapter

    since = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    until = until.replace(tzinfo=UTC) if until is not None and until.tzinfo is None else until
    adapter = LocalAdapter(section)
    try:
        report = build_report(adapter.engine, period=period, since=since, until=until, point_value=point_value)
    finally:
        adapter.close()
    if as_json:
        import json

        console.print_json(json.dumps(report.as_dict()))
    else:
        print_report(report, console)
    if html_path is not None:
        page = render_html(report)
        with open(html_path, "w", encoding="utf-8") as handle:
            handle.write(page)
        if not as_json:
            console.print(f"HTML report written to {html_path}", highlight=False)


__all__ = ["PERIODS", "PeriodFigures", "ProgramReport", "RuleCost", "build_report", "period_of", "print_report",
           "render_html", "run"]
