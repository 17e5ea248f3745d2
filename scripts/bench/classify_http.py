"""Benchmark: crops per second through the HTTP API at 16 concurrent clients, against the
inference engine's offline rate on the same model and crops; p50 and p99 latency.

Offline: ``scripts/bench/classify_engine.py``'s method (c): two decoding threads feed
:class:`tigertrap.classify.engine.InferenceEngine` batches of 32 (ONNX Runtime).
HTTP: ``tigertrap serve`` in its own process (uvicorn, one worker, ``BACKEND=onnx``); 16 clients
(httpx, asyncio, in this process) each POST one crop at a time to ``/v1/classify``
(``mode=crops``) until the requests are used up. The server's engine batches the crops of
concurrent requests (dynamic batching). Model and crops are classify_engine.py's:
EfficientNetV2B0 at 224 px (random weights), 600 px JPEG snips cut from the fixture images.
Target: HTTP throughput at least 70 % of the offline rate.

Run: ``.venv/bin/python scripts/bench/classify_http.py [--requests 384] [--clients 16]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

# The model and crops of the sibling benchmark (classify_engine.py), so the figures compare.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_engine import (
    BACKBONE,
    BATCH_SIZE,
    CACHE,
    INPUT_SIZE,
    build_bundle,
    engine_predict,
    machine,
    make_snips,
)

from tigertrap.classify.engine import InferenceEngine
from tigertrap.core.redis_server import free_port

TARGET = 0.70
START_TIMEOUT_S = 180
POLL_S = 0.2


def _crops_per_second(run: Callable[[], int]) -> float:
    start = time.perf_counter()
    crops = run()
    return crops / (time.perf_counter() - start)


def offline_rate(bundle: Path, snips: list[Path], rounds: int) -> float:
    """Best crops/s of decode threads + engine batches over ``snips``."""
    with InferenceEngine(bundle, backend="onnx", max_batch_size=BATCH_SIZE) as engine:
        run = engine_predict(engine, snips)
        run()  # warm-up
        return max(_crops_per_second(run) for _ in range(rounds))


class Server:
    """``tigertrap serve`` on a free port with the benchmark bundle."""

    def __init__(self, bundle: Path, data: Path, max_wait_ms: float) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "TIGERTRAP_DATA": str(data), "MODEL": str(bundle),
               "BACKEND": "onnx", "BATCH_SIZE": str(BATCH_SIZE),
               "MAX_WAIT_MS": str(max_wait_ms), "REDIS_URL": "redis://127.0.0.1:1/0"}
        env.pop("TIGERTRAP_API_KEY", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tigertrap.core", "serve", "--port",
             self.url.rsplit(":", 1)[1], "--log-level", "warning"],
            env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("the API server exited during start-up")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=5).json()["models"]:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(POLL_S)
        raise SystemExit("the API server did not start")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


async def http_round(url: str, crops: list[bytes], requests: int, clients: int
                     ) -> tuple[float, np.ndarray]:
    """Crops/s and per-request latencies (s) of ``requests`` POSTs by ``clients`` at once."""
    next_request = iter(range(requests))
    latencies: list[float] = []

    async def client(http: httpx.AsyncClient) -> None:
        for number in next_request:
            body = crops[number % len(crops)]
            start = time.perf_counter()
            response = await http.post("/v1/classify", data={"mode": "crops"},
                                       files=[("images", (f"{number}.jpg", body, "image/jpeg"))])
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"request {number}: {response.status_code} {response.text}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return requests / elapsed, np.asarray(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=384, help="POSTs per HTTP round")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--crops", type=int, default=256, help="distinct crops")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best counts")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="server MAX_WAIT_MS")
    args = parser.parse_args()

    bundle = build_bundle(CACHE / "bundle-en0-224")
    snips = make_snips(CACHE / "snips", args.crops)
    offline = offline_rate(bundle, snips, args.rounds)

    crops = [path.read_bytes() for path in snips]
    with tempfile.TemporaryDirectory() as data:
        server = Server(bundle, Path(data), args.max_wait_ms)
        try:
            asyncio.run(http_round(server.url, crops, 2 * args.clients, args.clients))  # warm-up
            rounds = [asyncio.run(http_round(server.url, crops, args.requests, args.clients))
                      for _ in range(args.rounds)]
        finally:
            server.stop()
    rate, latencies = max(rounds, key=lambda r: r[0])
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000

    print(f"model {BACKBONE} {INPUT_SIZE}px, 600 px JPEG crops; engine batch {BATCH_SIZE}, "
          f"server MAX_WAIT_MS {args.max_wait_ms:g}; best of {args.rounds} rounds; {machine()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'way':<58} {'crops/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'offline: decode threads + InferenceEngine.predict':<58} {offline:>8.1f}")
    label = f"HTTP POST /v1/classify, {args.clients} clients x 1 crop, {args.requests} requests"
    print(f"{label:<58} {rate:>8.1f} {p50:>8.1f} {p99:>8.1f}")
    ratio = rate / offline
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"HTTP / offline = {ratio:.0%} (target >= {TARGET:.0%}: {verdict})")


if __name__ == "__main__":
    main()
