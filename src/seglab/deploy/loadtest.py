"""A load and fault test of ``seglab serve`` on loopback: N clients for M seconds, bounded, stopping by itself.

Each client loops over cases (a valid image whose answer is known, an oversize upload, a corrupt file, a
non-image) and checks every answer: the valid image must come back as exactly the expected bytes, the bad
ones as their 4xx. It reports wrong answers, server errors (5xx), busy answers (503), p50/p95 latency of the
valid requests, throughput, and the server's RSS after the warm-up and after the run. Only 127.0.0.1 /
localhost / ::1 are accepted as targets: this is a test of one's own server, not a load generator.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from seglab.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Case:
    """One kind of request: its body and what a right answer is (``check(status, body)``)."""

    name: str
    body: bytes
    check: Callable[[int, bytes], bool]


@dataclass
class LoadReport:
    """What the run measured (latencies of valid requests only; RSS in MiB, ``None`` off Linux)."""

    clients: int
    seconds: float
    requests: int = 0
    by_case: dict[str, int] = field(default_factory=dict)
    wrong: int = 0
    server_errors: int = 0
    busy: int = 0
    failures: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    rss_warm_mib: float | None = None
    rss_after_mib: float | None = None

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 50)) if self.latencies_ms else float("nan")

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else float("nan")

    @property
    def throughput(self) -> float:
        """Answered requests per second (all cases)."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def rss_growth(self) -> float | None:
        """RSS after the run relative to after the warm-up (0.05 = 5 % more)."""
        if not self.rss_warm_mib or self.rss_after_mib is None:
            return None
        return self.rss_after_mib / self.rss_warm_mib - 1.0

    def summary(self) -> dict:
        """The JSON record (benchmarks/ and the CLI print this)."""
        return {"clients": self.clients, "seconds": round(self.seconds, 2), "requests": self.requests,
                "by_case": self.by_case, "wrong": self.wrong, "server_errors": self.server_errors, "busy": self.busy,
                "p50_ms": round(self.p50_ms, 2), "p95_ms": round(self.p95_ms, 2),
                "throughput_rps": round(self.throughput, 2), "rss_warm_mib": self.rss_warm_mib,
                "rss_after_mib": self.rss_after_mib, "failures": self.failures[:10]}


def rss_mib(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB (``/proc``; ``None`` where there is none)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def post(host: str, port: int, body: bytes, timeout: float = 60.0) -> tuple[int, bytes]:
    """One ``POST /predict`` on a fresh connection: ``(status, body)``."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run_load(host: str, port: int, cases: list[Case], *, clients: int = 8, seconds: float = 30.0,
             max_requests: int = 100_000, warmup: int = 2, server_pid: int | None = None) -> LoadReport:
    """Drive the server with ``clients`` threads for ``seconds`` (or ``max_requests`` in all), then stop. Every
    client first sends each case ``warmup`` times (not measured); the server's RSS is read then and at the end."""
    if host not in LOOPBACK:
        raise ConfigError(f"the load test runs against 127.0.0.1 / localhost only, not {host!r}.")
    if clients < 1 or not seconds > 0:
        raise ConfigError(f"Expected clients >= 1 and seconds > 0, but got {clients} and {seconds}.")
    report = LoadReport(clients=clients, seconds=seconds)
    lock = threading.Lock()

    def one(case: Case, measured: bool) -> None:
        started = time.perf_counter()
        try:
            status, body = post(host, port, case.body)
        except OSError as e:
            status, body = -1, str(e).encode()
        ms = (time.perf_counter() - started) * 1000
        with lock:
            if not measured:
                return
            report.requests += 1
            report.by_case[case.name] = report.by_case.get(case.name, 0) + 1
            if status == 503:
                report.busy += 1
            elif status >= 500:
                report.server_errors += 1
            if status != 503 and not case.check(status, body):
                report.wrong += 1
                report.failures.append(f"{case.name}: HTTP {status} {body[:120]!r}")
            if status == 200:
                report.latencies_ms.append(ms)

    _threads(clients, lambda i: [one(c, False) for _ in range(warmup) for c in cases])
    report.rss_warm_mib = rss_mib(server_pid) if server_pid else None
    started, count = time.monotonic(), iter(range(max_requests))
    stop_at = started + seconds

    def client(i: int) -> None:
        k = i
        while time.monotonic() < stop_at and next(count, None) is not None:
            one(cases[k % len(cases)], True)
            k += 1

    _threads(clients, client)
    report.seconds = time.monotonic() - started
    report.rss_after_mib = rss_mib(server_pid) if server_pid else None
    return report


def _threads(n: int, target: Callable[[int], object]) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def standard_cases(valid: bytes, expected: bytes, max_bytes: int) -> list[Case]:
    """The mix: a valid image (answer must equal ``expected``), an upload past ``max_bytes`` (413), a truncated
    file (400), bytes that are no image (400). Valid requests are half of the mix."""
    oversize = valid + b"\0" * max(0, max_bytes + 1 - len(valid))
    return [Case("valid", valid, lambda s, b: s == 200 and b == expected),
            Case("oversize", oversize, lambda s, b: s == 413),
            Case("valid", valid, lambda s, b: s == 200 and b == expected),
            Case("corrupt", valid[: max(16, len(valid) // 3)], lambda s, b: s == 400),
            Case("valid", valid, lambda s, b: s == 200 and b == expected),
            Case("not_image", b"plain text, not an image\n" * 20, lambda s, b: s == 400)]
