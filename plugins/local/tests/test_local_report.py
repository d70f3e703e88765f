"""Program reporting: exact figures per period, the liability in money, tiers, top rules; the terminal
tables, the self-contained HTML page with its charts, and the ``loyaltykit report`` command."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from rich.console import Console
from typer.testing import CliRunner

from loyaltykit import ConfigError, Order, cli as cli_module
from loyaltykit_local.report import build_report, period_of, print_report, render_html
from loyaltykit_local.testing import eur, line

PROGRAM = """
name = "Report Club"
currency = "EUR"

[points]
per_currency_unit = 1
expire_after_days = 40
spend_value = { EUR = 0.01 }

[cashback]
earn_percent = 10

[[tiers]]
name = "green"
threshold = 0

[[tiers]]
name = "gold"
threshold = 100

[[offers]]
id = "THANKS"
kind = "fixed_off_check"
amount = 3

[[rules]]
id = "double-up"
label = "Bonus on big baskets"
when = { basket_amount = { min = 50 } }
then = { action = "bonus_points", points = 25 }

[[rules]]
id = "espresso-off"
label = "10% off espresso"
when = { skus = { any = ["ESPRESSO"] } }
then = { action = "percent_off_line", percent = 10, skus = ["ESPRESSO"] }

[[rules]]
id = "first-thanks"
label = "Thanks for your first order"
when = { first_order = true }
then = { action = "issue_offer", offer = "THANKS" }
"""


def _order(ref: str, customer_id: str, price: str, placed_at: datetime) -> Order:
    return Order(ref=ref, currency="EUR", lines=(line("l1", "BEANS", price),), total=eur(price),
                 customer_id=customer_id, placed_at=placed_at)


@pytest.fixture
def club(make_shop, clock):
    """Two months of activity: May (two members, two orders, a spend), June (an order, expiry)."""
    shop = make_shop(PROGRAM)
    clock.now = datetime(2025, 5, 10, 12, tzinfo=UTC)
    ann = shop.customer(id="ANN")
    bob = shop.customer(id="BOB")
    shop.loyalty.export_orders([_order("o-1", ann, "60.00", clock.now)])  # 60 + 25 bonus, 6.00 cashback, offer
    shop.loyalty.export_orders([_order("o-2", bob, "20.00", clock.now)])  # 20, 2.00 cashback, offer
    shop.loyalty.spend_cashback({"customer_id": ann, "order_ref": "o-3", "amount": eur("1.50")})
    shop.loyalty.spend_cashback({"customer_id": ann, "order_ref": "o-3", "kind": "points", "points": 5})
    clock.now = datetime(2025, 6, 5, 12, tzinfo=UTC)
    shop.loyalty.export_orders([_order("o-4", ann, "30.00", clock.now)])  # 30, 3.00 cashback -> ann 110: gold
    espresso = Order(ref="o-5", currency="EUR", lines=(line("l1", "ESPRESSO", "40.00"),), total=eur("36.00"),
                     customer_id=None, placed_at=clock.now)  # a guest: no points, 4.00 off espresso
    shop.loyalty.export_orders([espresso])
    clock.now = datetime(2025, 6, 25, 12, tzinfo=UTC)  # the May points (ann 80 left, bob 20) expired: 40 days
    shop.engine.expire_points()
    return shop


def test_figures_per_month_outstanding_and_liability(club):
    report = build_report(club.engine, period="month")
    may, june = report.periods
    assert (may.period, may.points_issued, may.points_redeemed, may.points_expired) == ("2025-05", 105, 5, 0)
    assert (may.cashback_issued, may.cashback_redeemed, may.orders, may.new_members) == (
        Decimal("8.00"), Decimal("1.50"), 2, 2)
    assert (june.period, june.points_issued, june.points_expired, june.orders) == ("2025-06", 30, 100, 2)
    assert report.totals.points_issued == 135 and report.redemption_rate == Decimal("0.0370")
    assert report.points_outstanding == 135 - 5 - 100
    assert report.cashback_outstanding == eur("9.50")
    assert report.points_liability == eur("0.30") and report.liability == eur("9.80")
    assert report.members == 2 and report.members_by_tier == {"gold": 1, "green": 1}
    top = {r.rule_id: r for r in report.top_rules}
    assert (top["double-up"].applied, top["double-up"].bonus_points, top["double-up"].cost) == (1, 25, eur("0.25"))
    assert (top["espresso-off"].applied, top["espresso-off"].discount_minor, top["espresso-off"].cost) == (
        1, 400, eur("4.00"))
    assert top["first-thanks"].offers_issued == 2
    assert [r.rule_id for r in report.top_rules[:2]] == ["espresso-off", "double-up"]  # the costliest first


def test_window_and_periods(club):
    june = build_report(club.engine, period="day", since=datetime(2025, 6, 1, tzinfo=UTC))
    assert [p.period for p in june.periods] == ["2025-06-05", "2025-06-25"]
    assert june.totals.points_issued == 30 and june.totals.new_members == 0
    assert june.points_outstanding == 30  # outstanding is as of now, whatever the window
    assert period_of(datetime(2025, 5, 15, tzinfo=UTC), "week") == "2025-W20"
    with pytest.raises(ConfigError):
        build_report(club.engine, period="year")
    with pytest.raises(ConfigError):
        build_report(club.engine, since=datetime(2025, 6, 2, tzinfo=UTC), until=datetime(2025, 6, 1, tzinfo=UTC))


def test_terminal_tables(club):
    buffer = io.StringIO()
    print_report(build_report(club.engine), Console(file=buffer, width=160, color_system=None))
    text = buffer.getvalue()
    for expected in ("2025-05", "2025-06", "9.80 EUR", "3.7 %", "gold", "double-up", "Bonus on big baskets",
                     "espresso-off", "4.00 EUR"):
        assert expected in text, expected


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)
        self._in_cell = tag == "td"

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data.strip())


def test_html_page_is_self_contained_with_charts_and_figures(club):
    page = render_html(build_report(club.engine))
    parser = _Page()
    parser.feed(page)
    assert parser.tags[0] == "html" and "script" not in parser.tags and "link" not in parser.tags
    assert parser.external == [], parser.external  # nothing fetched: opens offline, mails as one file
    assert parser.tags.count("svg") == 4  # points, cashback, tiers, top rules
    assert page.count('id="patch_') > 10  # bars were drawn (matplotlib draws each bar as a patch)
    for figure in ("2025-05", "105", "2025-06", "8.00", "double-up", "0.25 EUR", "gold", "espresso-off", "4.00 EUR"):
        assert figure in parser.cells, figure
    assert "9.80 EUR" in page and "Report Club" in page
    assert render_html(build_report(club.engine)) == page  # stable output: diffable from run to run


def test_html_without_the_plotting_extra_names_the_extra(club, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ConfigError, match=r"loyaltykit-local\[report\]"):
        render_html(build_report(club.engine))


def test_the_report_command(club, tmp_path, monkeypatch):
    program = tmp_path / "club.toml"
    program.write_text(PROGRAM)
    monkeypatch.setenv("LOYALTYKIT_ENGINE", "local")
    monkeypatch.setenv("LOYALTYKIT_LOCAL_DATABASE_URL", str(club.store.url))
    monkeypatch.setenv("LOYALTYKIT_LOCAL_PROGRAM_FILE", str(program))
    monkeypatch.delenv("LOYALTYKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli_module.app, ["report", "--json", "--point-value", "0.02", "--html", str(out),
                                                 "--since", "2025-05-01", "--until", "2025-06-01"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # the command runs on today's clock: every 2025 point has expired by now; cashback does not expire
    assert data["point_value"] == "0.02" and data["points_outstanding"] == 0
    assert data["liability"] == "9.50 EUR" and data["cashback_outstanding"] == "9.50 EUR"
    assert [p["period"] for p in data["periods"]] == ["2025-05"]
    assert out.read_text().count("<svg") == 4
    bad = CliRunner().invoke(cli_module.app, ["report", "--point-value", "cheap"])
    assert bad.exit_code == 1 and "--point-value" in bad.output


def test_the_report_command_on_an_engine_without_reports(monkeypatch, tmp_path):
    monkeypatch.setenv("LOYALTYKIT_ENGINE", "reference")
    monkeypatch.delenv("LOYALTYKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli_module.app, ["report"])
    assert result.exit_code == 1 and "has no program report" in result.output


def test_expired_but_unrecorded_points_are_not_outstanding(make_shop, clock):
    shop = make_shop("[points]\nexpire_after_days = 10\nspend_value = { EUR = 0.01 }\n")
    shop.customer(points=100)
    clock.advance(days=11)
    report = build_report(shop.engine)
    assert report.points_outstanding == 0 and report.points_liability == eur("0.00")
