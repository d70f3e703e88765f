"""What a process using an in-process engine loads: never the HTTP stack.

Each check runs in a fresh interpreter (this test process has loaded everything already) and
lists which of the HTTP-only modules ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: modules only engines that speak HTTP need: the client, its retries and deadlines, auth, the
#: circuit breaker and the cross-process key locks
HTTP_ONLY = ["httpx", "httpcore", "tenacity", "loyaltykit.http", "loyaltykit.auth", "loyaltykit.deadlines",
             "loyaltykit.breaker", "loyaltykit.reconcile"]

REPORT = f"import json, sys; print(json.dumps(sorted(m for m in {HTTP_ONLY!r} if m in sys.modules)))"


def loaded(code: str, env: dict[str, str] | None = None) -> list[str]:
    completed = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + "\n" + REPORT],
                               capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    result: list[str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_a_sync_in_process_adapter_never_loads_the_http_stack():
    code = """
        from loyaltykit import (Capabilities, EngineAdapter, ExportReport, ExportStatus, Line, Loyalty,
                                LoyaltySettings, Money, Order, OrderExportResult)
        from loyaltykit.flows import in_process as flow

        class InProcess(EngineAdapter):
            name = "inproc"
            in_process = True
            capabilities = Capabilities(export_orders=True)

            @flow
            def export_orders(self, orders, ctx):
                return ExportReport(engine=self.name, results=tuple(
                    OrderExportResult(order_ref=o.ref, status=ExportStatus.ACCEPTED) for o in orders))

        price = Money.of("2.50", "EUR")
        order = Order(ref="o1", currency="EUR", total=price,
                      lines=[Line(id="1", sku="s", quantity=1, unit_price=price)])
        with Loyalty(LoyaltySettings(engine="inproc"), adapter=InProcess(), load_entry_points=False) as loyalty:
            assert loyalty.export_orders([order]).results[0].status is ExportStatus.ACCEPTED
    """
    assert loaded(code) == []


def test_the_embedded_engine_built_from_settings_never_loads_the_http_stack(tmp_path: Path):
    from loyaltykit_local.store import Store

    url = f"sqlite:///{tmp_path / 'start.sqlite3'}"
    store = Store(url, create=False)
    store.migrate()
    store.dispose()
    code = """
        from loyaltykit import Loyalty

        Loyalty().close()  # engine and database from the environment, plugins discovered
    """
    env = {"LOYALTYKIT_ENGINE": "local", "LOYALTYKIT_LOCAL_DATABASE_URL": url}
    assert loaded(code, env) == []


def test_the_check_sees_the_http_stack_when_it_is_loaded():
    # the listing above is not vacuous: the same report run after building an HTTP runner names it
    assert "loyaltykit.http" in loaded("import loyaltykit.http")
