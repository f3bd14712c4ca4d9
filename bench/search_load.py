"""Driving load at the search benchmark's targets: client processes sending requests on fresh
loopback connections, first all targets interleaved (latency), then each alone (throughput)."""

from __future__ import annotations

import http.client
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

WARMUP_SECONDS = 2.0
THROUGHPUT_ROUNDS = 4
SLICE_WARMUP_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to measure: a name and how to send its requests."""

    name: str
    method: str
    urls: list[str]
    bodies: list[bytes] | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    """One target at one concurrency: latencies (ms) from the interleaved phase, where every
    target shares the same moments of machine load, and the throughput of the isolated phase,
    where the target has the clients to itself."""

    target: str
    concurrency: int
    latencies_ms: list[float]
    errors: int
    throughput: float
    isolated_p50: float

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def load_client() -> httpx.Client:
    """A keep-alive client for the one-off correctness checks."""
    return httpx.Client(timeout=30.0)


def send(url: str, method: str, body: bytes | None, headers: dict[str, str]) -> int:
    """One request on a fresh loopback connection; returns the status after reading the body.

    A fresh connection per request, as a shopper's browser arriving at the site would open, and
    the same for every target (raw Meilisearch included), so the comparison is like for like.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def drive(
    target: Target, worker: int, start_at: float, warmup_s: float, measure_s: float
) -> tuple[list[float], int]:
    """One client process: requests back to back (round-robin over the target's URLs) from
    `start_at`; latencies recorded only after the warm-up."""
    latencies: list[float] = []
    errors = 0
    index = worker * 7
    headers = target.headers or {}
    while time.time() < start_at:
        time.sleep(0.001)
    record_from = start_at + warmup_s
    stop_at = record_from + measure_s
    while time.time() < stop_at:
        position = index % len(target.urls)
        index += 1
        body = target.bodies[position] if target.bodies else None
        began = time.perf_counter()
        try:
            ok = send(target.urls[position], target.method, body, headers) == 200
        except OSError:
            ok = False
        elapsed_ms = (time.perf_counter() - began) * 1000
        if time.time() > record_from:
            if ok:
                latencies.append(elapsed_ms)
            else:
                errors += 1
    return latencies, errors


def drive_interleaved(
    targets: list[Target], worker: int, start_at: float, warmup_s: float, measure_s: float
) -> dict[str, tuple[list[float], int]]:
    """One client process sending one request to each target in turn (rotated per worker), so
    every target is measured under the same background load."""
    samples: dict[str, tuple[list[float], int]] = {t.name: ([], 0) for t in targets}
    errors = dict.fromkeys(samples, 0)
    order = targets[worker % len(targets) :] + targets[: worker % len(targets)]
    index = worker * 7
    while time.time() < start_at:
        time.sleep(0.001)
    record_from = start_at + warmup_s
    stop_at = record_from + measure_s
    while time.time() < stop_at:
        index += 1
        for target in order:
            position = index % len(target.urls)
            body = target.bodies[position] if target.bodies else None
            began = time.perf_counter()
            try:
                ok = send(target.urls[position], target.method, body, target.headers or {}) == 200
            except OSError:
                ok = False
            elapsed_ms = (time.perf_counter() - began) * 1000
            if time.time() > record_from:
                if ok:
                    samples[target.name][0].append(elapsed_ms)
                else:
                    errors[target.name] += 1
    return {name: (values, errors[name]) for name, (values, _) in samples.items()}


def measure(targets: list[Target], concurrency: int, seconds: float) -> list[Measurement]:
    """Latency with all targets interleaved, then each target's throughput on its own.

    The throughput phase alternates the targets in THROUGHPUT_ROUNDS slices of seconds/rounds
    each (after one warm-up per slice), so a burst of background load on this shared machine
    falls on every target rather than on whichever happened to run then.
    """
    start_at = time.time() + 1.0
    with ProcessPoolExecutor(max_workers=concurrency) as pool:
        futures = [
            pool.submit(drive_interleaved, targets, worker, start_at, WARMUP_SECONDS, seconds * 2)
            for worker in range(concurrency)
        ]
        mixed = [future.result() for future in futures]
    slice_seconds = seconds / THROUGHPUT_ROUNDS
    alone: dict[str, list[tuple[list[float], int]]] = {target.name: [] for target in targets}
    with ProcessPoolExecutor(max_workers=concurrency) as pool:
        for _round in range(THROUGHPUT_ROUNDS):
            for target in targets:
                start_at = time.time() + 0.2
                futures = [
                    pool.submit(
                        drive, target, worker, start_at, SLICE_WARMUP_SECONDS, slice_seconds
                    )
                    for worker in range(concurrency)
                ]
                alone[target.name].extend(future.result() for future in futures)
    measurements = []
    for target in targets:
        isolated = [value for values, _ in alone[target.name] for value in values]
        measurements.append(
            Measurement(
                target=target.name,
                concurrency=concurrency,
                latencies_ms=[v for result in mixed for v in result[target.name][0]],
                errors=sum(result[target.name][1] for result in mixed)
                + sum(count for _, count in alone[target.name]),
                throughput=len(isolated) / seconds,
                isolated_p50=percentile(isolated, 50),
            )
        )
    return measurements
