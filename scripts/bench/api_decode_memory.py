"""Benchmark: how much a server's peak memory grows when clients send images that decode large.

``--clients`` clients at once each send one ``--side`` x ``--side`` PNG of one colour (about
100 KB on the wire for 6000 px, 108 MB as RGB) to ``POST /v1/classify`` (``mode=crops``). The
server (``tigertrap serve`` with the tiny test bundle, as ``api_load.py`` starts it) runs with
``MAX_PROCESS_PIXELS=--budget`` and a ``RETRY_AFTER_S`` long enough that every request waits its
turn. Printed: the status counts, the seconds taken and the growth of the server's peak resident
memory (``VmHWM`` after the burst minus ``VmHWM`` after one warm-up request).

To measure code from before the pixel budget, export that tree and put it first on the path:
``git archive <commit> shared services/classify | tar -x -C /tmp/old`` and run with
``PYTHONPATH=/tmp/old/shared:/tmp/old/services/classify`` (the server inherits it).

Run: ``.venv/bin/python scripts/bench/api_decode_memory.py [--clients 8] [--side 6000]``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from api_load import Server, _memory_kib  # noqa: E402
from classify_engine import machine  # noqa: E402

from tests.api.conftest import class_png  # noqa: E402
from tests.api.raw_http import solid_png  # noqa: E402

WAIT_FOR_BUDGET_S = 600


async def burst(url: str, image: bytes, clients: int) -> list[httpx.Response]:
    """One request per client, all at once."""
    async with httpx.AsyncClient(base_url=url, timeout=WAIT_FOR_BUDGET_S) as http:
        return list(await asyncio.gather(*(
            http.post("/v1/classify", data={"mode": "crops"},
                      files=[("images", (f"{i}.png", image, "image/png"))])
            for i in range(clients))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--side", type=int, default=6000, help="image width and height")
    parser.add_argument("--budget", type=int, default=40_000_000, help="MAX_PROCESS_PIXELS")
    args = parser.parse_args()
    tiger = class_png("tiger")
    colour = Image.open(io.BytesIO(tiger)).getpixel((0, 0))
    image = solid_png(args.side, args.side, colour)
    with tempfile.TemporaryDirectory() as work:
        server = Server(Path(work), {"MAX_PROCESS_PIXELS": str(args.budget),
                                     "RETRY_AFTER_S": str(WAIT_FOR_BUDGET_S)})
        try:
            httpx.post(f"{server.url}/v1/classify", timeout=60,
                       files=[("images", ("warm.png", tiger, "image/png"))]).raise_for_status()
            before = _memory_kib(server.pid, "VmHWM") or 0
            start = time.perf_counter()
            responses = asyncio.run(burst(server.url, image, args.clients))
            elapsed = time.perf_counter() - start
            after = _memory_kib(server.pid, "VmHWM") or 0
        finally:
            server.stop()
    decoded_mb = args.side * args.side * 3 / 1e6
    print(machine())
    print(f"{args.clients} clients x one {args.side}x{args.side} PNG ({len(image) / 1e3:.0f} KB, "
          f"{decoded_mb:.0f} MB as RGB), MAX_PROCESS_PIXELS={args.budget}")
    print(f"statuses: {dict(Counter(r.status_code for r in responses))} in {elapsed:.1f} s")
    print(f"peak RSS growth: {(after - before) / 1024:.0f} MiB "
          f"(all decoded at once would be {args.clients * decoded_mb:.0f} MB)")


if __name__ == "__main__":
    main()
