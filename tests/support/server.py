"""Waiting for a `cds-service serve` process under test to answer on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def wait_until_healthy(process: subprocess.Popen, url: str, output: Callable[[], str], timeout: float = 60) -> None:
    """Poll GET {url}/healthz; fail the test with the server's output if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"cds-service serve exited with {process.returncode}:\n{output()}")
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"cds-service serve did not answer /healthz within {timeout:.0f} s")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_service(env: Mapping[str, str], log_file: Path, workers: int = 2) -> Iterator[str]:
    """`cds-service serve` on a free loopback port with ``env`` added; yields its base URL."""
    port = free_port()
    environment = {name: value for name, value in os.environ.items() if not name.startswith("CDS_")}
    environment.update(env)
    environment.setdefault("CDS_PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    command = [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with open(log_file, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, url, lambda: log_file.read_text(errors="replace"))
        yield url
        assert process.poll() is None, "the server died during the tests"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
