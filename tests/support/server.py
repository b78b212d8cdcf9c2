"""Waiting for a `cds-service serve` process under test to answer on loopback."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest
import requests


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
