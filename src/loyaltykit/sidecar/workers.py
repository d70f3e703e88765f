"""Several worker processes on one port, each with its own listening socket (``SO_REUSEPORT``: the
kernel spreads connections over them).

Why not uvicorn's ``workers=N``: it binds one socket and hands it to spawned workers, and the
rebuilt socket loses its protocol number, so asyncio no longer sets ``TCP_NODELAY`` on accepted
connections; every response then waits ~40 ms for a delayed ACK (measured: 44 ms per ``/livez``
against 1.8 ms with one worker). A socket bound in the worker itself keeps it.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import time
from multiprocessing.context import SpawnProcess
from types import FrameType

APP = "loyaltykit.sidecar.app:create_app"
EARLY_DEATH = 10.0  # seconds: a worker that exits sooner is failing to start
MAX_EARLY_DEATHS = 3


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int, log_level: str) -> None:
    import uvicorn

    config = uvicorn.Config(APP, factory=True, log_level=log_level, access_log=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[listening_socket(host, port)])


def serve(host: str, port: int, workers: int, log_level: str) -> None:
    """Run ``workers`` processes until SIGINT/SIGTERM; a worker that dies is started again."""
    context = multiprocessing.get_context("spawn")
    # Bound here first so a taken port fails at once, and held so the port stays ours meanwhile.
    guard = listening_socket(host, port)
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> SpawnProcess:
        process = context.Process(target=_worker, args=(host, port, log_level), daemon=False)
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    started = [time.monotonic()] * workers
    guard.close()  # each worker listens on its own socket now
    early_deaths = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    # A worker that dies at start (an unmigrated database, a bad setting) would die again:
                    # give up after a few in a row instead of restarting it forever.
                    early_deaths = early_deaths + 1 if time.monotonic() - started[index] < EARLY_DEATH else 0
                    if early_deaths >= MAX_EARLY_DEATHS:
                        raise SystemExit(f"the sidecar's workers exit at start ({early_deaths} in a row): see the"
                                         " error above")
                    processes[index] = start()
                    started[index] = time.monotonic()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(30)
