"""A `seglab serve` subprocess on 127.0.0.1 for the server tests (a bundle of the shared tiny U-Net)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture(scope="session")
def get_json() -> Callable[[int, str], tuple[int, dict]]:
    """``get_json(port, path)`` -> ``(status, decoded JSON body)`` from the server on 127.0.0.1."""
    return get


@pytest.fixture(scope="session")
def bundle_file(semantic_bundle: Path) -> Path:
    return semantic_bundle


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen, int]]]:
    """``start(model, *flags)`` -> ``(process, port)`` once /health answers; every server is stopped after."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    started: list[subprocess.Popen] = []

    def start(model: Path, *flags: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        log = open(tmp_path / f"server-{port}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "seglab", "serve", str(model), "--port", str(port),
                                 "--threads", "1", *flags], stdout=log, stderr=subprocess.STDOUT)
        started.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if get(port, "/health")[0] == 200:
                    return proc, port
            except OSError:
                time.sleep(0.1)
            if proc.poll() is not None:
                break
        raise AssertionError(f"server did not start: {(tmp_path / f'server-{port}.log').read_text()}")

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
