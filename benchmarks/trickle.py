"""An engine that trickles bytes: how long a sync ``evaluate`` and a sync write take to give up.

The engine (a raw socket server in this process) answers every request one byte at a time, a
byte every 50 ms, for ~8x the budget: each read returns well inside httpx's per-read timeout, so
only a deadline for the whole exchange stops the call. Targets: ``evaluate`` returns (degraded)
within its budget + 5 %, a write fails (a timeout, or ``OutcomeUnknownError`` once sent) within
the write deadline + 5 %.
The baseline is the budget itself.

    python benchmarks/trickle.py [--budget 0.5] [--repetitions 5]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_note, verdict
from _http import basket

from loyaltykit import BalanceKind, CashbackSpend, Loyalty, LoyaltyError, LoyaltySettings


class TricklingEngine:
    def __init__(self, seconds: float) -> None:
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        body = b'{"payload": {}}'.ljust(int(seconds / 0.05))
        self.answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for byte in self.answer:
                    if self.stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(0.05)
            except OSError:
                return

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def __enter__(self) -> TricklingEngine:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.listener.close()


def adapter(url: str):  # the SessionM adapter with its three hosts on the trickling engine
    from loyaltykit_sessionm.adapter import SessionMAdapter
    from loyaltykit_sessionm.testing import harness_settings

    settings = harness_settings()
    for key in ("core_base_url", "connect_base_url", "pos_base_url"):
        settings[key] = url
    return SessionMAdapter(settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    print(load_note())
    budget = args.budget
    ok = True
    with TricklingEngine(budget * 8) as engine:
        settings = LoyaltySettings(evaluate_budget=budget, write_deadline=budget, read_deadline=budget)
        with Loyalty(settings, adapter=adapter(engine.url), load_entry_points=False) as loyalty:
            cart = basket("USD", 5, "member-1")
            evaluate_times, write_times = [], []
            for n in range(args.repetitions):
                started = time.monotonic()
                result = loyalty.evaluate(cart)
                evaluate_times.append(time.monotonic() - started)
                assert result.degraded, "the trickling engine cannot have answered"
                started = time.monotonic()
                # a timeout on its look-up, or an unknown outcome on the write
                with contextlib.suppress(LoyaltyError):
                    loyalty.spend_cashback(CashbackSpend(customer_id="member-1", order_ref=f"O-{n}",
                                                         kind=BalanceKind.POINTS, points=Decimal(1)))
                write_times.append(time.monotonic() - started)
    for name, times in (("sync evaluate (trickling engine)", evaluate_times), ("sync write (trickling engine)", write_times)):
        taken = statistics.median(times)
        print(f"  {name:<36} median {taken:.3f} s, worst {max(times):.3f} s, budget {budget:.3f} s")
        ok &= verdict(name, f"{max(times):.3f} s (worst)", f"{budget:.3f} s budget", max(times) / budget,
                      "<= 1.05x", max(times) <= budget * 1.05)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
