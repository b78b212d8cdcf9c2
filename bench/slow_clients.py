"""Slow clients against a running service: does a normal client still get served?

Holds ``slow`` connections open against the server, half of them dripping header lines (slowloris)
and half sending full headers then dripping the body, reconnecting any the server closes (as an
attacker would), while one normal client sends ``calls`` requests one after another and records
each latency. Used by tests/test_slow_clients.py (a bounded version) and by hand:

    .venv/bin/python -m bench.slow_clients http://127.0.0.1:8000 --slow 64 --calls 300
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

DRIP_INTERVAL = 1.0  # seconds between two dripped fragments


@dataclass
class SlowClients:
    """``count`` connections kept open and dripping, in one thread."""

    host: str
    port: int
    count: int
    path: str = "/cds-services/b12-neuropathy-order-select"
    opened: int = 0
    closed_by_server: int = 0
    _sockets: list[tuple[socket.socket, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SlowClients:
        for index in range(self.count):
            self._sockets.append(self._open("header" if index % 2 == 0 else "body"))
        self._thread = threading.Thread(target=self._drip, daemon=True, name="slow-clients")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for sock, _kind in self._sockets:
            sock.close()

    def _open(self, kind: str) -> tuple[socket.socket, str]:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.settimeout(0.5)
        self.opened += 1
        head = f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
        if kind == "body":
            head += "Content-Length: 1000000\r\n\r\n{"
        sock.sendall(head.encode())
        return sock, kind

    def _drip(self) -> None:
        while not self._stop.wait(DRIP_INTERVAL):
            for index, (sock, kind) in enumerate(self._sockets):
                try:
                    sock.sendall(b"X-Drip: 1\r\n" if kind == "header" else b" ")
                except OSError:
                    self.closed_by_server += 1
                    sock.close()
                    try:
                        self._sockets[index] = self._open(kind)
                    except OSError:
                        pass


def measure(base: str, slow: int, calls: int, call: Callable[[requests.Session], int] | None = None,
            settle: float = 3.0) -> dict[str, float | int]:
    """Latency of ``calls`` sequential normal requests while ``slow`` slow clients are held open."""
    parts = urlsplit(base)
    call = call or (lambda session: session.get(f"{base}/healthz", timeout=30).status_code)
    latencies: list[float] = []
    failures = 0
    with SlowClients(parts.hostname or "127.0.0.1", parts.port or 80, slow) as clients:
        time.sleep(settle)  # let the slow clients take whatever they can take
        with requests.Session() as session:
            for _ in range(calls):
                started = time.perf_counter()
                try:
                    status = call(session)
                except requests.RequestException:
                    status = 0
                latencies.append(time.perf_counter() - started)
                failures += status != 200
        opened, closed = clients.opened, clients.closed_by_server
    latencies.sort()
    return {
        "slow_clients": slow, "calls": calls, "failures": failures,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "slow_connections_opened": opened, "slow_connections_closed_by_server": closed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--slow", type=int, default=64)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(measure(args.base, args.slow, args.calls), indent=2))


if __name__ == "__main__":
    main()
