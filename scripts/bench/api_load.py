"""Benchmark: N clients for T seconds against a real API server, a mix of crops and /health.

Each client loops: with probability ``--health-share`` a ``GET /health``, otherwise a
``POST /v1/classify`` (``mode=crops``) of one 600 px JPEG snip cut from the real fixture images
(``classify_engine.py``'s snips). It prints the requests, the status counts and p50/p99 latency
per route, and the server's resident memory: its peak while the load ran (``VmRSS`` sampled every
``SAMPLE_S``) and over its life (``VmHWM``, model loading included). Goal: no 5xx at 32 clients.

By default the script starts its own server on loopback: ``tigertrap serve`` (uvicorn, one
worker, ``BACKEND=onnx``) with a tiny bundle built as the tests build it
(``tests/train/bundle_factory.py``, cached) and a real Redis (``start_redis``; no stage workers,
so ``/health`` says ``degraded``, still 200). ``--url`` targets a running server instead (give
``--server-pid`` to sample its memory). Clients are httpx on asyncio in this process, so on a
small machine they share the CPUs with the server.

Run: ``.venv/bin/python scripts/bench/api_load.py [--clients 32] [--seconds 45]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from classify_engine import CACHE, machine, make_snips  # noqa: E402

from tigertrap.core.redis_server import free_port, start_redis  # noqa: E402

CLASSES = ["tiger", "leopard", "sambar"]
BUNDLE = "tiny"
SNIPS = 64
START_TIMEOUT_S = 180
POLL_S = 0.2
SAMPLE_S = 0.1
REQUEST_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60


def _memory_kib(pid: int, field: str) -> int | None:
    """``VmRSS``/``VmHWM`` of ``pid`` in KiB (None once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _build_bundle(data: Path) -> None:
    code = ("from tests.train.bundle_factory import build_tiny_bundle; "
            f"build_tiny_bundle({str(data / 'models' / 'classifiers' / BUNDLE)!r}, {CLASSES!r})")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"})


class Server:
    """``tigertrap serve`` on a free loopback port with the tiny bundle and a real Redis."""

    def __init__(self, work: Path, extra_env: dict[str, str]) -> None:
        data = work / "data"
        _build_bundle(data)
        self.redis = start_redis(work / "redis")
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "TIGERTRAP_DATA": str(data), "MODEL": BUNDLE, "BACKEND": "onnx",
               "REDIS_URL": self.redis.url, **extra_env}
        env.pop("TIGERTRAP_API_KEY", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tigertrap.core", "serve", "--port",
             self.url.rsplit(":", 1)[1], "--log-level", "warning"],
            env=env, start_new_session=True)
        self.pid = self.process.pid
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

    def stop(self) -> float | None:
        """SIGTERM the server; seconds until it exited (None: it did not, and was killed)."""
        start = time.monotonic()
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
            return time.monotonic() - start
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait()
            return None
        finally:
            self.redis.stop()


async def _sample_rss(pid: int | None, peak: list[int], stop: asyncio.Event) -> None:
    while pid is not None and not stop.is_set():
        rss = _memory_kib(pid, "VmRSS")
        if rss is not None:
            peak[0] = max(peak[0], rss)
        await asyncio.sleep(SAMPLE_S)


async def load(url: str, crops: list[bytes], clients: int, seconds: float,
               health_share: float, pid: int | None, seed: int
               ) -> tuple[dict[str, Counter[str]], dict[str, list[float]], float, int]:
    """Status counts and latencies per route, the elapsed time and the peak VmRSS (KiB)."""
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    latencies: dict[str, list[float]] = defaultdict(list)
    end = time.monotonic() + seconds
    stop, peak = asyncio.Event(), [0]

    async def client(number: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed + number)
        while time.monotonic() < end:
            route = "/health" if rng.random() < health_share else "/v1/classify"
            start = time.perf_counter()
            try:
                if route == "/health":
                    response = await http.get(route)
                else:
                    body = crops[rng.randrange(len(crops))]
                    response = await http.post(route, data={"mode": "crops"},
                                               files=[("images", ("snip.jpg", body, "image/jpeg"))])
                outcome = str(response.status_code)
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            latencies[route].append(time.perf_counter() - start)
            statuses[route][outcome] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
        sampler = asyncio.create_task(_sample_rss(pid, peak, stop))
        started = time.perf_counter()
        await asyncio.gather(*(client(n, http) for n in range(clients)))
        elapsed = time.perf_counter() - started
        stop.set()
        await sampler
    return statuses, latencies, elapsed, peak[0]


def _report(statuses: dict[str, Counter[str]], latencies: dict[str, list[float]],
            elapsed: float) -> int:
    """Print the per-route table; the number of 5xx answers and transport errors."""
    print(f"{'route':<14}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    bad = 0
    everything: list[float] = []
    for route in sorted(statuses):
        times = np.asarray(latencies[route]) * 1000
        everything.extend(times)
        count = sum(statuses[route].values())
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(statuses[route].items()))
        bad += sum(n for code, n in statuses[route].items() if code[0] not in "234")
        print(f"{route:<14}{count:>10}{count / elapsed:>9.1f}{np.percentile(times, 50):>9.1f}"
              f"{np.percentile(times, 99):>9.1f}  {codes}")
    all_times = np.asarray(everything)
    print(f"{'all':<14}{len(all_times):>10}{len(all_times) / elapsed:>9.1f}"
          f"{np.percentile(all_times, 50):>9.1f}{np.percentile(all_times, 99):>9.1f}")
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--health-share", type=float, default=0.5,
                        help="fraction of requests that are GET /health")
    parser.add_argument("--url", help="a running server (default: start one on loopback)")
    parser.add_argument("--server-pid", type=int, help="with --url: the process to sample")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the started server (repeatable), e.g. MAX_QUEUE=256")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    crops = [path.read_bytes() for path in make_snips(CACHE / "snips", SNIPS)]
    server = None
    with tempfile.TemporaryDirectory(prefix="tigertrap-api-load-") as work:
        if args.url is None:
            extra = dict(item.split("=", 1) for item in args.env)
            server = Server(Path(work), extra)
        url, pid = (server.url, server.pid) if server else (args.url, args.server_pid)
        try:
            rss_before = _memory_kib(pid, "VmRSS") if pid else None
            statuses, latencies, elapsed, peak = asyncio.run(load(
                url, crops, args.clients, args.seconds, args.health_share, pid, args.seed))
            try:
                after = httpx.get(f"{url}/health", timeout=REQUEST_TIMEOUT_S).json()["status"]
            except httpx.HTTPError as error:
                after = f"no answer ({type(error).__name__})"
            hwm = _memory_kib(pid, "VmHWM") if pid else None
        finally:
            stopped = server.stop() if server else False

    print(f"machine: {machine()}; {args.clients} clients for {elapsed:.1f} s, "
          f"{args.health_share:.0%} /health, {len(crops)} distinct 600 px JPEG snips")
    bad = _report(statuses, latencies, elapsed)
    if pid:
        print(f"server RSS: {rss_before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB "
              f"under load, VmHWM {hwm / 1024:.0f} MiB (life peak, model load included)")
    print(f"/health afterwards: {after}")
    if stopped is None:
        print(f"server still running {STOP_TIMEOUT_S} s after SIGTERM: killed")
    elif stopped is not False:
        print(f"server stopped {stopped:.1f} s after SIGTERM")
    print(f"5xx or transport errors: {bad}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
