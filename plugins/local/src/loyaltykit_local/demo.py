"""``loyaltykit demo``: one complete checkout on the embedded engine, printed step by step.

The demo seeds a program and two members into a fresh database in a temporary directory (so every
run starts from the same state and prints the same thing), then drives the public facade
:class:`loyaltykit.Loyalty` exactly as a shop would, down to the member's statement and wallet. Only
seeding uses the engine's admin API, which a shop's back office would use too.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

from rich.console import Console, JustifyMethod
from rich.panel import Panel
from rich.table import Table

from loyaltykit import (
    BalanceKind,
    Basket,
    CashbackSpend,
    Customer,
    CustomerIdentifier,
    Evaluation,
    Line,
    Loyalty,
    LoyaltySettings,
    Money,
    Order,
    RefundLine,
    Reversal,
    VoucherError,
    VoucherRedemption,
)
from loyaltykit.members import Statement, StatementQuery, WalletQuery
from loyaltykit.outbox import Outbox

from .program import load_program
from .service import LocalEngine
from .store import Store

CURRENCY = "EUR"
ORDER_REF = "ORD-1001"


def demo_program_path() -> Path:
    return Path(str(resources.files("loyaltykit_local") / "programs" / "demo.toml"))


def _eur(amount: str) -> Money:
    return Money.of(amount, CURRENCY)


def _step(console: Console, number: int, title: str) -> None:
    console.print()
    console.rule(f"[bold]{number}. {title}")


def _customer_table(customer: Customer) -> Table:
    table = Table(show_header=True, header_style="bold")
    for column in ("member", "tier", "beans", "cashback"):
        table.add_column(column)
    table.add_row(customer.id, customer.tier or "-", str(customer.points), str(customer.cashback_in(CURRENCY)))
    return table


def _basket_table(basket: Basket) -> Table:
    table = Table(title=f"basket {basket.id}", header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("line", "left"), ("sku", "left"), ("category", "left"), ("qty", "right"), ("unit price", "right"), ("subtotal", "right"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for line in basket.lines:
        table.add_row(line.id, line.sku, line.category or "-", str(line.quantity), str(line.unit_price), str(line.subtotal))
    table.add_row("", "shipping", "", "", "", str(basket.shipping or "-"))
    return table


def _quote_tables(quote: Evaluation) -> list[Table]:
    discounts = Table(title="discounts", header_style="bold")
    for column in ("on", "amount", "why"):
        discounts.add_column(column)
    for discount in quote.discounts:
        where = f"line {discount.line_id}" if discount.line_id else discount.target.value
        discounts.add_row(where, f"-{discount.amount}", discount.label or "")
    summary = Table(title="quote", header_style="bold", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("subtotal", str(quote.subtotal))
    summary.add_row("discounts", f"-{quote.discount_total}")
    summary.add_row("shipping" + (" (free)" if quote.free_shipping else ""), str(quote.shipping_total))
    summary.add_row("total", str(quote.total))
    for entry in quote.points_lines:
        summary.add_row(f"paid in beans: line {entry.line_id} ({entry.quantity} x {entry.sku})", f"{entry.points} beans")
    for earn in quote.earn:
        value = f"+{earn.points} beans" if earn.kind is BalanceKind.POINTS else f"+{earn.money}"
        summary.add_row(f"to earn: {earn.label}", value)
    for item in quote.free_items:
        summary.add_row(f"free gift: {item.label}", f"{item.quantity} x {item.sku}")
    for code in quote.codes:
        summary.add_row(f"code {code.code}", code.status.value + (f" ({code.reason})" if code.reason else ""))
    tables = [discounts, summary]
    if quote.messages:
        messages = Table(title="messages for the shopper", header_style="bold")
        messages.add_column("message")
        for message in quote.messages:
            messages.add_row(message.text)
        tables.append(messages)
    if quote.catalog or quote.wallet:
        offers = Table(title="offers at checkout", header_style="bold")
        for column in ("kind", "item", "price", "available"):
            offers.add_column(column)
        for catalog_item in quote.catalog:
            offers.add_row("points catalog", catalog_item.name or catalog_item.sku,
                           f"{catalog_item.points_price} beans",
                           "yes" if catalog_item.affordable else "not enough beans")
        for offer in quote.wallet:
            value = f"{offer.percent} %" if offer.percent is not None else str(offer.amount)
            offers.add_row("wallet offer", offer.label or offer.id, value, "yes" if offer.applicable else "no")
        tables.append(offers)
    return tables


def _statement_table(statement: Statement) -> Table:
    table = Table(title=f"statement of {statement.customer_id} (newest first)", header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("date", "left"), ("entry", "left"), ("amount", "right"), ("order", "left"), ("rule", "left"), ("label", "left"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for entry in statement.entries:
        if entry.points is not None:
            amount = f"{entry.points:+} points"
        elif entry.money is not None:
            amount = f"{entry.money.amount:+} {entry.money.currency}"
        else:
            amount = entry.tier or ""
        table.add_row(f"{entry.at:%Y-%m-%d}", entry.kind.value, amount, entry.order_ref or "", entry.rule_id or "",
                      entry.label or "")
    return table


def seed(engine: LocalEngine) -> None:
    """The demo's members: Ann (a regular with beans and cashback) and Bob (a reseller partner)."""
    ann = engine.create_customer(
        id="CUST-ANN", identifiers={"email": "ann@example.com", "membership": "BC-0001"}, display_name="Ann",
        segments=["vip"], points=620, cashback=_eur("12.00"),
    )
    engine.issue_offer(ann, "BEANS-2", code="BEANS-2-ANN")
    engine.create_customer(id="CUST-BOB", identifiers={"email": "bob@example.com"}, display_name="Bob",
                           role="partner")


def demo_settings(workdir: str | Path | None = None) -> LoyaltySettings:
    """Settings for the embedded engine with the demo program and its members (Ann: ann@example.com,
    12.00 EUR of cashback, the WELCOME10 voucher) in a fresh database, so that an example runs as
    written on a fresh clone. ``workdir`` defaults to a new temporary directory."""
    folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="loyaltykit-example-"))
    database_url = f"sqlite:///{folder / 'demo.sqlite3'}"
    program_file = demo_program_path()
    store = Store(database_url)
    try:
        admin = LocalEngine(store, load_program(program_file))
        if admin.identify(CustomerIdentifier.email("ann@example.com")) is None:
            seed(admin)
    finally:
        store.dispose()
    return LoyaltySettings(engine="local", engines={"local": {
        "database_url": database_url, "program_file": str(program_file)}})


def run(console: Console) -> None:
    with tempfile.TemporaryDirectory(prefix="loyaltykit-demo-") as workdir:
        database_url = f"sqlite:///{Path(workdir) / 'demo.sqlite3'}"
        program_file = demo_program_path()
        admin_store = Store(database_url)
        admin = LocalEngine(admin_store, load_program(program_file))
        try:
            seed(admin)
            settings = LoyaltySettings(engine="local", engines={"local": {
                "database_url": database_url, "program_file": str(program_file)}})
            with Loyalty(settings) as loyalty:
                _walk(console, loyalty, admin)
        finally:
            admin_store.dispose()


def _walk(console: Console, loyalty: Loyalty, admin: LocalEngine) -> None:
    console.print(Panel.fit(
        f"[bold]loyaltykit demo[/bold] — one checkout on the embedded engine ({loyalty.engine})\n"
        f"program: {admin.program.name}, {len(admin.program.rules)} rules, "
        f"{len(admin.program.catalog)} points-catalog items, cashback {admin.program.cashback.earn_percent} %",
    ))

    _step(console, 1, "Identify the shopper by e-mail")
    customer = loyalty.identify(email="ann@example.com")
    if customer is None:
        raise AssertionError("customer is set here")
    console.print(_customer_table(customer))
    console.print(f"unknown e-mail → {loyalty.identify(email='nobody@example.com')!r}")

    _step(console, 2, "Evaluate the basket (a quote: nothing is written)")
    basket = Basket(
        id="cart-42", currency=CURRENCY, customer_id=customer.id, channel="web", shipping=_eur("4.90"),
        lines=[
            Line(id="1", sku="BEANS-ESPRESSO-1KG", name="Espresso beans 1 kg", quantity=2,
                 unit_price=_eur("18.00"), category="coffee"),
            Line(id="2", sku="BEANS-HOUSE-1KG", name="House blend 1 kg", quantity=1,
                 unit_price=_eur("14.00"), category="coffee"),
            Line(id="3", sku="FILTER-100", name="Filter papers x100", quantity=1,
                 unit_price=_eur("4.00"), category="accessories"),
            # from the points catalog: sent at 0.00, the quote prices it in beans
            Line(id="4", sku="MUG-CLUB", name="Bean Club mug", quantity=1, unit_price=_eur("0.00")),
        ],
    )
    console.print(_basket_table(basket))
    for table in _quote_tables(loyalty.evaluate(basket)):
        console.print(table)

    _step(console, 3, "Apply a voucher")
    try:
        loyalty.redeem_voucher(VoucherRedemption(code="SUMMER99", order_ref=ORDER_REF, customer_id=customer.id,
                                                 basket=basket))
    except VoucherError as exc:
        console.print(f"code SUMMER99 → refused: [yellow]{exc.code}[/yellow]")
    basket = basket.model_copy(update={"coupon_codes": ("WELCOME10",)})
    quote = loyalty.evaluate(basket)
    redemption = loyalty.redeem_voucher(VoucherRedemption(code="WELCOME10", order_ref=ORDER_REF,
                                                          customer_id=customer.id, basket=basket))
    console.print(f"code WELCOME10 → {redemption.status.value}: -{redemption.discount} ({redemption.label}), "
                  f"engine ref {redemption.receipt.engine_ref}")
    again = loyalty.redeem_voucher(VoucherRedemption(code="WELCOME10", order_ref=ORDER_REF,
                                                     customer_id=customer.id, basket=basket))
    console.print(f"the same redemption sent again → replayed={again.receipt.replayed} (burned once)")
    for table in _quote_tables(quote):
        console.print(table)

    _step(console, 4, "Pay part of the order with cashback, and the mug with beans")
    spend = loyalty.spend_cashback(CashbackSpend(customer_id=customer.id, order_ref=ORDER_REF, amount=_eur("5.00"),
                                                 amount_due=quote.total))
    console.print(f"cashback spent: {spend.value}; left: {spend.remaining.money if spend.remaining else '?'}")
    beans = loyalty.spend_cashback(CashbackSpend.for_points_lines(quote, customer_id=customer.id, order_ref=ORDER_REF))
    console.print(f"points-catalog line {', '.join(beans.receipt.line_ids)} paid in beans: {beans.points} beans "
                  f"({beans.value} in money); left: {beans.remaining.points if beans.remaining else '?'} beans")

    _step(console, 5, "Place the order")
    order = Order.from_evaluation(ORDER_REF, basket, quote, [redemption.receipt, spend.receipt, beans.receipt])
    table = Table(title=f"order {order.ref}", header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("line", "left"), ("sku", "left"), ("subtotal", "right"), ("discounts", "right"), ("net paid", "right"),
        ("in beans", "right"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for allocation in order.allocations:
        table.add_row(allocation.line_id, order.lines[[line.id for line in order.lines].index(allocation.line_id)].sku,
                      str(allocation.subtotal), f"-{allocation.discount_total}", str(allocation.net),
                      str(allocation.points) if allocation.points else "")
    table.add_row("", "shipping", "", "", str(order.shipping_total))
    table.add_row("", "total", str(order.subtotal), f"-{order.discount_total}", str(order.total), str(order.points_due))
    table.add_row("", "paid with cashback", "", "", f"-{order.balance_paid}")
    table.add_row("", "[bold]amount to pay by card[/bold]", "", "", f"[bold]{order.amount_due}[/bold]")
    console.print(table)

    _step(console, 6, "Export the order (the engine credits what it earned)")
    report = loyalty.export_orders([order])
    resent = loyalty.export_orders([order])
    table = Table(header_style="bold")
    for column in ("order", "status", "engine ref", "beans earned"):
        table.add_column(column)
    table.add_row(order.ref, report.results[0].status.value, report.results[0].engine_ref or "-",
                  str(report.results[0].points_earned))
    table.add_row(order.ref + " (sent again)", resent.results[0].status.value, resent.results[0].engine_ref or "-", "-")
    console.print(table)

    _step(console, 7, "Refund one line (the filter papers)")
    refund = loyalty.reverse(Reversal(order=order, kind="refund", lines=(RefundLine(line_id="3", quantity=1),),
                                      reference="RMA-7"))
    table = Table(header_style="bold", show_header=False)
    table.add_column("what")
    table.add_column("amount", justify="right")
    if refund.refund is None:
        raise AssertionError("refund.refund is set here")
    table.add_row("net paid for the returned goods", str(refund.refund.goods))
    table.add_row("[bold]refunded to the card[/bold]", f"[bold]{refund.refund.to_card}[/bold]")
    table.add_row("cashback returned to the wallet", str(refund.cashback_returned))
    table.add_row("beans returned", str(refund.points_returned))
    table.add_row("beans clawed back", str(refund.points_clawed_back))
    table.add_row("cashback clawed back", str(refund.cashback_clawed_back))
    console.print(table)

    _step(console, 8, "A second order whose card payment is declined")
    second = basket.model_copy(update={"id": "cart-43", "coupon_codes": (), "lines": basket.lines[:3]})
    second_quote = loyalty.evaluate(second)
    paid = loyalty.spend_cashback(CashbackSpend(customer_id=customer.id, order_ref="ORD-1002",
                                                amount=_eur("2.00"), amount_due=second_quote.total))
    declined = Order.from_evaluation("ORD-1002", second, second_quote, [paid.receipt])
    with tempfile.TemporaryDirectory(prefix="loyaltykit-demo-outbox-") as folder:
        outbox = Outbox(Path(folder) / "outbox.sqlite3")
        outbox.add(declined)
        cancelled = loyalty.cancel_order(declined, outbox=outbox, reason="payment declined")
        queued = outbox.entry(declined.ref)
        if queued is None:
            raise AssertionError("the declined order is in the outbox")
        state = queued.state
        outbox.close()
    if cancelled.refund is None:
        raise AssertionError("cancelled.refund is set here")
    console.print(f"order {declined.ref}: {declined.amount_due} to pay by card → declined; "
                  f"cancel_order gave back {cancelled.cashback_returned} of cashback, the outbox entry is {state} "
                  f"(never exported)")

    _step(console, 9, "Final balances and the member's statement (\"my account\")")
    customer = loyalty.identify(email="ann@example.com")
    if customer is None:
        raise AssertionError("customer is set here")
    console.print(_customer_table(customer))
    console.print(_statement_table(loyalty.statement(StatementQuery(customer_id=customer.id, page_size=20))))

    _step(console, 10, "The member's wallet (\"my offers\", usable in any channel)")
    wallet = loyalty.wallet(WalletQuery(customer_id=customer.id))
    offers = Table(title=f"wallet of {customer.id}", header_style="bold")
    for column in ("offer", "code", "value", "valid until"):
        offers.add_column(column)
    for offer in wallet.offers:
        value = f"{offer.percent} %" if offer.percent is not None else str(offer.amount or offer.sku or "-")
        offers.add_row(offer.label or offer.id, offer.code or "-", value,
                       f"{offer.expires_at:%Y-%m-%d}" if offer.expires_at else "-")
    console.print(offers if wallet.offers else "the wallet is empty")
    console.print("\n[green]Done.[/green] Every step above went through loyaltykit.Loyalty, as a shop's code would.")
