"""Shared pieces of the benchmark scripts: interleaved timing, the verdict line, canned HTTP.

Every script measures the kit and its baseline in the same run, interleaved (kit, baseline, kit,
baseline, ...) so that a burst of load on the machine hits both, and reports medians over the
repetitions with process CPU time beside wall time. The last line of each script is machine
readable for ``run_all.py``::

    RESULT <row> | kit <figure> | baseline <figure> | ratio <x> | target <text> | PASS
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # process CPU seconds (all threads)


def measure(fn: Callable[[], Any]) -> Sample:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Sample(time.perf_counter() - wall, time.process_time() - cpu)


def interleave(
    subjects: dict[str, Callable[[], Any]], repetitions: int, warmup: int = 1
) -> dict[str, list[Sample]]:
    """Run every subject ``warmup`` times, then ``repetitions`` rounds of each in turn."""
    for fn in subjects.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[Sample]] = {name: [] for name in subjects}
    for _ in range(repetitions):
        for name, fn in subjects.items():
            samples[name].append(measure(fn))
    return samples


def median_wall(samples: list[Sample]) -> float:
    return statistics.median(s.wall for s in samples)


def median_cpu(samples: list[Sample]) -> float:
    return statistics.median(s.cpu for s in samples)


def describe(name: str, samples: list[Sample], unit: float = 1e3, label: str = "ms", per: int = 1) -> str:
    """One line: median wall and CPU per operation (``per`` operations per sample)."""
    wall = median_wall(samples) / per * unit
    cpu = median_cpu(samples) / per * unit
    return f"  {name:<44} wall {wall:10.3f} {label}   cpu {cpu:10.3f} {label}"


def verdict(row: str, kit: str, baseline: str, ratio: float | None, target: str, passed: bool) -> bool:
    shown = f"{ratio:.2f}x" if ratio is not None else "-"
    print(f"RESULT {row} | kit {kit} | baseline {baseline} | ratio {shown} | target {target} | "
          f"{'PASS' if passed else 'FAIL'}")
    return passed


def load_note() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return ""
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


# ---------------------------------------------------------------------------------------------
# Canned HTTP: record an engine's answers once from its fake, then serve them from a subprocess
# ---------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    url: str
    headers: list[tuple[str, str]]
    content: bytes
    status: int
    response_headers: list[tuple[str, str]]
    body: bytes


class Recorder(httpx.BaseTransport):
    """Wraps a transport and keeps every request with its response."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        response = self.inner.handle_request(request)
        body = response.read()
        self.exchanges.append(Exchange(
            request.method, str(request.url), list(request.headers.multi_items()), content,
            response.status_code, list(response.headers.multi_items()), body,
        ))
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)


def local_path(url: str) -> str:
    """A recorded URL as a path on the canned server: its host becomes the first segment."""
    parsed = httpx.URL(url)
    return f"/{parsed.host}{parsed.raw_path.decode().split('?', 1)[0]}"


def local_url(server: str, url: str) -> str:
    parsed = httpx.URL(url)
    return f"{server}/{parsed.host}{parsed.raw_path.decode()}"


def rewrite_hosts(text: str, hosts: set[str], server: str) -> str:
    for host in sorted(hosts, key=len, reverse=True):
        text = text.replace(f"https://{host}", f"{server}/{host}").replace(f"http://{host}", f"{server}/{host}")
    return text


class CannedServer:
    """``canned_server.py`` in a subprocess, answering the recorded bodies by method and path."""

    def __init__(self, exchanges: list[Exchange], workdir: Path) -> None:
        self.hosts = {httpx.URL(e.url).host for e in exchanges}
        self.answers_file = Path(tempfile.mkdtemp(dir=workdir)) / "answers.json"  # one per server
        self.exchanges = exchanges
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> CannedServer:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "canned_server.py"), "--port", "0", "--answers", str(self.answers_file)],
            stdout=subprocess.PIPE, text=True,
        )
        # The server needs its own URL inside the bodies (an OAuth instance_url, say): it waits for
        # the answers file until it has printed its port.
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline().split()[-1])
        self.url = f"http://127.0.0.1:{port}"
        answers = {}
        for exchange in self.exchanges:
            body = rewrite_hosts(exchange.body.decode(), self.hosts, self.url)
            headers = [(k, v) for k, v in exchange.response_headers
                       if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")]
            answers[f"{exchange.method} {local_path(exchange.url)}"] = {
                "status": exchange.status, "headers": headers, "body": body,
            }
        tmp = self.answers_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(answers))
        tmp.rename(self.answers_file)
        assert self.process.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)

    def settings_for(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Adapter settings with every recorded host pointed at this server."""
        return {key: rewrite_hosts(value, self.hosts, self.url) if isinstance(value, str) else value
                for key, value in settings.items()}

    def replay_requests(self, exchanges: list[Exchange]) -> list[tuple[str, str, list[tuple[str, str]], bytes]]:
        """The recorded requests, aimed at this server, for a hand-written client to send."""
        replay = []
        for exchange in exchanges:
            headers = [(k, v) for k, v in exchange.headers if k.lower() not in ("host", "content-length")]
            replay.append((exchange.method, local_url(self.url, exchange.url), headers, exchange.content))
        return replay


def bulk_queue(outbox: Any, rows: Any) -> None:
    """Queue many orders in one transaction of the SQLite outbox store: ``add()`` commits once per
    order, which is not what the export benchmarks measure. ``rows`` are ``(ref, payload, now, created)``;
    each order is its own delivery group (distinct customers), as in a shop's real backlog. Each row
    carries the payload's digest, as ``add()`` writes it."""
    from loyaltykit.outbox.store import payload_digest

    with outbox.store._write() as db:
        db.executemany(
            "INSERT INTO outbox (ref, group_key, payload, digest, state, next_attempt, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
            ((ref, ref, payload, payload_digest(payload), now, created, now) for ref, payload, now, created in rows),
        )
