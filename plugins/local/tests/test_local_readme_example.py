"""The README's checkout example runs as written, on the embedded engine with the demo program."""

from __future__ import annotations

import re
from pathlib import Path

from loyaltykit import Money
from loyaltykit.outbox import DONE
from loyaltykit_local.demo import demo_program_path, seed
from loyaltykit_local.program import load_program
from loyaltykit_local.service import LocalEngine
from loyaltykit_local.store import Store

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_checkout_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## A checkout, as a shop writes it", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "the README's checkout section has a python block"
    return match.group(1)


def test_the_readme_checkout_example_runs_and_does_what_it_says(tmp_path, monkeypatch):
    database_url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    program_file = demo_program_path()
    store = Store(database_url)
    admin = LocalEngine(store, load_program(program_file))
    seed(admin)  # Ann: ann@example.com, 12.00 EUR cashback
    (tmp_path / "loyaltykit.toml").write_text(
        f'engine = "local"\n\n[engines.local]\ndatabase_url = "{database_url}"\nprogram_file = "{program_file.as_posix()}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOYALTYKIT_CONFIG", raising=False)

    namespace: dict = {}
    try:
        exec(compile(readme_checkout_example(), str(README), "exec"), namespace)
    finally:
        if "loyalty" in namespace:
            namespace["loyalty"].close()
        store.dispose()

    receipts = namespace["receipts"]
    assert [r.operation for r in receipts] and len(receipts) == 2, "the voucher and the cashback both went through"
    order = namespace["order"]
    assert namespace["outbox"].entry(order.ref).state == DONE
    assert not namespace["quote"].degraded
    points, cashback = admin.balances("CUST-ANN", "EUR")
    assert cashback < Money.of("12.00", "EUR"), "5.00 EUR of cashback paid part of the order"
